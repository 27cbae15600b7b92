import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { iso, snapshot } from './session-fixtures.test-support.js';
import { createSessionMetrics } from './session-metrics.js';
import type { SessionSnapshot } from './session-snapshot.js';

function setup(options: { userLabel: boolean; sessions?: SessionSnapshot[]; synced?: boolean }) {
  const registry = new Registry();
  const metrics = createSessionMetrics(registry, {
    sessions: () => options.sessions ?? [],
    templates: () => ['firefox'],
    synced: () => options.synced ?? true,
    userLabel: options.userLabel,
    now: () => Date.parse(iso('10:00:00')),
  });
  return { registry, metrics, text: () => registry.metrics() };
}

const running = snapshot({
  rv: 1,
  user: 'alice',
  template: 'gimp',
  phase: 'Running',
  ready: ['True', 'PodReady', iso('09:00:00')],
});

describe('session metrics', () => {
  it('start every counter series of every known template at zero', async () => {
    const text = await setup({ userLabel: true, sessions: [running] }).text();
    for (const template of ['firefox', 'gimp']) {
      expect(text).toContain(`streamspace_session_starts_total{template="${template}"} 0`);
      for (const reason of ['user', 'idle', 'max_duration']) {
        expect(text).toContain(
          `streamspace_session_hibernations_total{template="${template}",reason="${reason}"} 0`,
        );
        expect(text).toContain(
          `streamspace_session_terminations_total{template="${template}",reason="${reason}"} 0`,
        );
      }
      expect(text).toContain(
        `streamspace_session_failures_total{template="${template}",reason="StartupDeadlineExceeded"} 0`,
      );
      expect(text).toContain(`streamspace_session_start_duration_seconds_count{template="${template}"} 0`);
      expect(text).toContain(`streamspace_session_wake_duration_seconds_count{template="${template}"} 0`);
      expect(text).toContain(
        `streamspace_session_hibernate_duration_seconds_count{template="${template}"} 0`,
      );
    }
    expect(text).toContain('streamspace_active_sessions{user="alice",template="gimp"} 1');
    expect(text).toContain('streamspace_sessions{phase="Running",template="gimp"} 1');
    expect(text).toContain('streamspace_sessions{phase="Pending",template="firefox"} 0');
  });

  it('record transitions: counts, durations, and the ones that could not be timed', async () => {
    const { metrics, text } = setup({ userLabel: true });
    metrics.record({
      type: 'started',
      template: 'firefox',
      from: 'created',
      startSeconds: 1.5,
      wakeSeconds: undefined,
    });
    metrics.record({
      type: 'started',
      template: 'firefox',
      from: 'hibernated',
      startSeconds: 0.4,
      wakeSeconds: 0.4,
    });
    metrics.record({
      type: 'started',
      template: 'firefox',
      from: 'unknown',
      startSeconds: undefined,
      wakeSeconds: undefined,
    });
    metrics.record({ type: 'hibernated', template: 'firefox', reason: 'idle', seconds: 0.9 });
    metrics.record({ type: 'terminated', template: 'firefox', reason: 'max_duration' });
    metrics.record({ type: 'failed', template: 'firefox', reason: 'StartupDeadlineExceeded' });
    metrics.malformed('not_json');
    const out = await text();
    for (const line of [
      'streamspace_session_starts_total{template="firefox"} 3',
      'streamspace_session_start_duration_seconds_count{template="firefox"} 2',
      'streamspace_session_start_duration_seconds_sum{template="firefox"} 1.9',
      'streamspace_session_start_duration_seconds_bucket{le="0.5",template="firefox"} 1',
      'streamspace_session_wake_duration_seconds_count{template="firefox"} 1',
      'streamspace_session_hibernations_total{template="firefox",reason="idle"} 1',
      'streamspace_session_hibernate_duration_seconds_sum{template="firefox"} 0.9',
      'streamspace_session_terminations_total{template="firefox",reason="max_duration"} 1',
      'streamspace_session_failures_total{template="firefox",reason="StartupDeadlineExceeded"} 1',
      'streamspace_metrics_untimed_transitions_total{transition="start"} 1',
      'streamspace_metrics_malformed_events_total{reason="not_json"} 1',
    ]) {
      expect(out).toContain(line);
    }
  });

  it('leave the user label out when it is switched off', async () => {
    const out = await setup({ userLabel: false, sessions: [running] }).text();
    expect(out).toContain('streamspace_active_sessions{template="gimp"} 1');
    expect(out).toContain('streamspace_active_sessions{template="firefox"} 0');
    expect(out).not.toContain('user=');
  });

  it('export no gauge values before the first list rather than wrong zeros', async () => {
    const out = await setup({ userLabel: true, sessions: [running], synced: false }).text();
    expect(out).not.toMatch(/^streamspace_sessions\{/m);
    expect(out).not.toMatch(/^streamspace_active_sessions\{/m);
  });

  it('reads the Sessions once per scrape, and afresh at the next one', async () => {
    const registry = new Registry();
    let sessions: SessionSnapshot[] = [running];
    let reads = 0;
    createSessionMetrics(registry, {
      sessions: () => {
        reads++;
        return sessions;
      },
      templates: () => [],
      synced: () => true,
      userLabel: false,
      now: () => Date.parse(iso('10:00:00')),
    });
    expect(await registry.metrics()).toContain('streamspace_sessions{phase="Running",template="gimp"} 1');
    expect(reads).toBe(1);
    sessions = [running, { ...running, uid: 'u-2', name: 'second' }];
    const second = await registry.metrics();
    expect(second).toContain('streamspace_sessions{phase="Running",template="gimp"} 2');
    expect(second).toContain('streamspace_active_sessions{template="gimp"} 2');
    expect(reads).toBe(2);
  });
});
