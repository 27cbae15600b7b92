import { describe, expect, it } from 'vitest';
import { agentConfigFromEnv } from './agent-config.js';

const env = {
  STREAMSPACE_NAMESPACE: 'team-a',
  STREAMSPACE_SESSION: 'firefox-alice',
  ACTIVITY_URL: 'http://streamspace-idle-reaper.streamspace:8083/activity',
  ACTIVITY_TOKEN_FILE: '/var/run/secrets/streamspace-activity/token',
  DESKTOP_PORT: '3000',
};

describe('agentConfigFromEnv', () => {
  it('reads what the reconciler writes, with the default intervals', () => {
    expect(agentConfigFromEnv(env)).toMatchObject({
      namespace: 'team-a',
      session: 'firefox-alice',
      port: 3000,
      reportIntervalMs: 30_000,
      checkIntervalMs: 5_000,
      procNetDir: '/proc/net',
    });
  });

  it('names every wrong variable and what it should be', () => {
    const problem = () =>
      agentConfigFromEnv({
        ...env,
        STREAMSPACE_SESSION: '',
        ACTIVITY_URL: 'http://user:secret@reaper/activity',
        DESKTOP_PORT: '70000',
        REPORT_INTERVAL_MS: 'often',
      });
    expect(problem).toThrow(/STREAMSPACE_SESSION: must be set/);
    expect(problem).toThrow(/ACTIVITY_URL: must be an http\(s\) URL without credentials/);
    expect(problem).toThrow(/DESKTOP_PORT: must be a whole number from 1 to 65535/);
    expect(problem).toThrow(/REPORT_INTERVAL_MS: must be a whole number/);
    // The URL's credentials are not repeated in the message.
    expect(problem).not.toThrow(/secret/);
    const { DESKTOP_PORT: _, ...noPort } = env;
    expect(() => agentConfigFromEnv(noPort)).toThrow(/DESKTOP_PORT: must be set/);
  });
});
