import { ConfigError, loadConfig } from '@streamspace/shared';
import { describe, expect, it } from 'vitest';
import { metricsConfigSchema } from './metrics-config.js';

describe('metrics configuration', () => {
  it('has defaults that work on their own', () => {
    const config = loadConfig(metricsConfigSchema, {});
    expect(config).toMatchObject({
      METRICS_USER_LABEL: false,
      WATCHER_READY_URL: [],
      PROBE_TIMEOUT: 2000,
    });
    expect(config.WATCH_NAMESPACE).toBeUndefined();
  });

  it('reads the user label switch and a list of watcher URLs', () => {
    const config = loadConfig(metricsConfigSchema, {
      METRICS_USER_LABEL: 'true',
      WATCHER_READY_URL: 'http://w-0:8081/readyz, http://w-1:8081/readyz',
      WATCH_NAMESPACE: 'team-a,team-b',
    });
    expect(config.WATCH_NAMESPACE).toEqual(['team-a', 'team-b']);
    expect(config.METRICS_USER_LABEL).toBe(true);
    expect(config.WATCHER_READY_URL).toEqual(['http://w-0:8081/readyz', 'http://w-1:8081/readyz']);
  });

  it('names each bad variable and what was wrong', () => {
    let error: unknown;
    try {
      loadConfig(metricsConfigSchema, {
        METRICS_USER_LABEL: 'maybe',
        WATCHER_READY_URL: 'watcher:8081',
        PROBE_TIMEOUT: 'soon',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain("METRICS_USER_LABEL: must be 'true' or 'false' (got 'maybe')");
    expect(message).toContain("WATCHER_READY_URL: 'watcher:8081' is not an http(s) URL");
    expect(message).toContain('PROBE_TIMEOUT:');
  });
});
