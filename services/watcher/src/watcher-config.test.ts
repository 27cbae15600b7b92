import { ConfigError, loadConfig } from '@streamspace/shared';
import { describe, expect, it } from 'vitest';
import { watcherConfigSchema } from './watcher-config.js';

describe('watcher configuration', () => {
  it('has defaults for everything', () => {
    const config = loadConfig(watcherConfigSchema, {});
    expect(config.WATCH_NAMESPACE).toBeUndefined();
    expect(config).toMatchObject({
      RESYNC_INTERVAL: 1_800_000,
      RESYNC_RATE: 20,
      EVENTS_MAX_AGE: 86_400_000,
      WATCH_TIMEOUT: 300_000,
      WATCH_SILENCE_TIMEOUT: 360_000,
      WATCH_ANSWER_TIMEOUT: 90_000,
      PUBLISH_QUEUE_LIMIT: 10_000,
      PUBLISH_CONCURRENCY: 64,
      SHUTDOWN_FLUSH_TIMEOUT: 5_000,
    });
  });

  it('reads durations the way the API writes them', () => {
    const config = loadConfig(watcherConfigSchema, {
      RESYNC_INTERVAL: '1m30s',
      EVENTS_MAX_AGE: '7h',
      WATCH_NAMESPACE: 'team-a',
    });
    expect(config.RESYNC_INTERVAL).toBe(90_000);
    expect(config.EVENTS_MAX_AGE).toBe(25_200_000);
    expect(config.WATCH_NAMESPACE).toEqual(['team-a']);
  });

  it('publishes change events of Sessions and Templates by default, of the kinds listed otherwise', () => {
    expect([...loadConfig(watcherConfigSchema, {}).EVENT_KINDS]).toEqual(['session', 'template']);
    expect([...loadConfig(watcherConfigSchema, { EVENT_KINDS: 'pod, session,deployment' }).EVENT_KINDS]).toEqual([
      'pod',
      'session',
      'deployment',
    ]);
    expect(() => loadConfig(watcherConfigSchema, { EVENT_KINDS: ' , ' })).toThrow(/EVENT_KINDS: must name at least one kind/);
    expect(() => loadConfig(watcherConfigSchema, { EVENT_KINDS: 'session,service' })).toThrow(
      /EVENT_KINDS: must be a comma-separated list of session, template, deployment, pod: 'service' is not/,
    );
  });

  it('reads a comma-separated list of namespaces, sorted and without repeats', () => {
    const config = loadConfig(watcherConfigSchema, { WATCH_NAMESPACE: 'team-b, team-a,team-b' });
    expect(config.WATCH_NAMESPACE).toEqual(['team-a', 'team-b']);
    expect(() => loadConfig(watcherConfigSchema, { WATCH_NAMESPACE: 'team-a,Team_B' })).toThrow(
      /WATCH_NAMESPACE: must be a namespace name or a comma-separated list of them .*'Team_B' is not/,
    );
    expect(() => loadConfig(watcherConfigSchema, { WATCH_NAMESPACE: ' , ' })).toThrow(
      /WATCH_NAMESPACE: must name at least one namespace/,
    );
  });

  it('turns periodic resyncs and the event age limit off with 0', () => {
    const config = loadConfig(watcherConfigSchema, { RESYNC_INTERVAL: '0', EVENTS_MAX_AGE: '0' });
    expect(config.RESYNC_INTERVAL).toBe(0);
    expect(config.EVENTS_MAX_AGE).toBe(0);
  });

  it('names each bad variable and what to write instead', () => {
    const attempt = () =>
      loadConfig(watcherConfigSchema, {
        RESYNC_INTERVAL: '5 minutes',
        EVENTS_MAX_AGE: '500ms',
        WATCH_NAMESPACE: 'Team_A',
      });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(
      /RESYNC_INTERVAL: invalid duration '5 minutes': use a number followed by h, m or s/,
    );
    expect(attempt).toThrow(/EVENTS_MAX_AGE: must be at least 1s \(or 0 to disable\) \(got '500ms'\)/);
    expect(attempt).toThrow(/WATCH_NAMESPACE: must be a namespace name/);
  });
});
