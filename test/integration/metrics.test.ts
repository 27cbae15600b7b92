import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ANNOTATIONS, API_GROUP, API_VERSION, STREAMS } from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionObject, templateObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  installCrds,
  kube,
  kubectl,
  ServiceProcess,
} from './harness.js';
import { Scrape } from './metrics-scrape.js';

/**
 * The metrics service on the real control plane, fed by the real watcher and reconciler:
 * sessions are created, hibernated (by a user and as the idle reaper does it), woken,
 * terminated and failed, and every figure on /metrics is checked exactly. Then the service is
 * restarted and its gauges must be right at once, its counters back at zero.
 */

const k = kube();
let namespace: string;
let watcher: ServiceProcess;
let reconciler: ServiceProcess;
let metrics: ServiceProcess;
let nc: NatsConnection;

const DESK = 'desk';
const BROKEN = 'broken';

function template(name: string, image: string) {
  return templateObject(namespace, name, {
    description: 'A desktop for the metrics tests',
    category: 'desktops',
    baseImage: image,
    defaultResources: { requests: { cpu: '100m', memory: '256Mi' } },
  });
}

function session(name: string, user: string, templateName: string) {
  return sessionObject(namespace, name, user, templateName);
}

async function apply(object: object): Promise<void> {
  const result = await kubectl(['apply', '-f', '-'], JSON.stringify(object));
  if (result.code !== 0) throw new Error(`kubectl apply failed: ${result.stderr}`);
}

async function patch(name: string, body: object): Promise<void> {
  const result = await kubectl([
    'patch',
    'session',
    name,
    '-n',
    namespace,
    '--type=merge',
    '-p',
    JSON.stringify(body),
  ]);
  if (result.code !== 0) throw new Error(result.stderr);
}

/** What a person does: change spec.state. */
const setState = (name: string, state: string) => patch(name, { spec: { state } });

/** What the idle reaper does: change spec.state and record who, why and when in one write. */
const reap = (name: string, state: string, reason: 'Idle' | 'MaxDurationExceeded') =>
  patch(name, {
    metadata: {
      annotations: {
        [ANNOTATIONS.stateChangedBy]: 'idle-reaper',
        [ANNOTATIONS.stateChangeReason]: reason,
        [ANNOTATIONS.stateChangedAt]: new Date().toISOString(),
      },
    },
    spec: { state },
  });

async function phaseOf(name: string): Promise<string | undefined> {
  const s = (await k.custom.getNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
    name,
  })) as {
    status?: { phase?: string };
  };
  return s.status?.phase;
}

async function waitPhases(expected: Record<string, string>, timeoutMs = 30_000): Promise<void> {
  await eventually(async () => {
    const actual: Record<string, string | undefined> = {};
    for (const name of Object.keys(expected)) actual[name] = await phaseOf(name);
    expect(actual).toEqual(expected);
  }, timeoutMs);
}

function byPhase(
  counts: Partial<Record<'Pending' | 'Running' | 'Hibernated' | 'Terminated' | 'Failed', number>>,
) {
  return {
    'phase=Failed': counts.Failed ?? 0,
    'phase=Hibernated': counts.Hibernated ?? 0,
    'phase=Pending': counts.Pending ?? 0,
    'phase=Running': counts.Running ?? 0,
    'phase=Terminated': counts.Terminated ?? 0,
  };
}

const reasons = (user: number, idle: number, maxDuration: number) => ({
  'reason=idle': idle,
  'reason=max_duration': maxDuration,
  'reason=user': user,
});

/** Waits until the metrics service shows what `check` expects (the pipeline takes a moment). */
function scraped(check: (m: Scrape) => void, timeoutMs = 20_000): Promise<Scrape> {
  return eventually(async () => {
    const m = await Scrape.of(metrics);
    check(m);
    return m;
  }, timeoutMs);
}

function startMetrics(): ServiceProcess {
  return new ServiceProcess('metrics', {
    WATCH_NAMESPACE: namespace,
    METRICS_USER_LABEL: 'true',
    WATCHER_READY_URL: `http://127.0.0.1:${watcher.port}/readyz`,
  });
}

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('metrics');
  watcher = new ServiceProcess('watcher', { WATCH_NAMESPACE: namespace, RESYNC_INTERVAL: '20s' });
  reconciler = new ServiceProcess('reconciler', {
    WATCH_NAMESPACE: namespace,
    STARTUP_DEADLINE: '3s',
    INGRESS_DOMAIN: 'desktops.test',
  });
  await Promise.all([watcher.waitReady(), reconciler.waitReady()]);
  metrics = startMetrics();
  await metrics.waitReady();
  nc = await connect({ servers: process.env.NATS_URL as string });
});

afterAll(async () => {
  await Promise.all([metrics, watcher, reconciler].filter(Boolean).map((s) => s.stop()));
  await nc?.close();
  await deleteNamespace(namespace);
});

describe('metrics from the cluster and the event stream', () => {
  it('counts every transition exactly and keeps the gauges equal to the cluster', async () => {
    await apply(template(DESK, 'lscr.io/linuxserver/webtop:latest'));
    await apply(template(BROKEN, 'streamspace.invalid/never-starts:latest'));
    // A known template starts with every series at zero.
    await scraped((m) => {
      expect(m.table('streamspace_sessions', { template: DESK })).toEqual(byPhase({}));
      expect(m.value('streamspace_session_starts_total', { template: DESK })).toBe(0);
      expect(m.table('streamspace_session_hibernations_total', { template: DESK })).toEqual(reasons(0, 0, 0));
      expect(
        m.value('streamspace_session_failures_total', {
          template: BROKEN,
          reason: 'StartupDeadlineExceeded',
        }),
      ).toBe(0);
    });

    // Three users start a desktop; a fourth one's image never starts (3 s deadline).
    await Promise.all([
      apply(session('s-alice', 'alice@example.com', DESK)),
      apply(session('s-bob', 'bob@example.com', DESK)),
      apply(session('s-carol', 'carol@example.com', DESK)),
      apply(session('s-dave', 'dave@example.com', BROKEN)),
    ]);
    await waitPhases({ 's-alice': 'Running', 's-bob': 'Running', 's-carol': 'Running' });
    await scraped((m) => {
      expect(m.table('streamspace_active_sessions', { template: DESK })).toEqual({
        'user=alice@example.com': 1,
        'user=bob@example.com': 1,
        'user=carol@example.com': 1,
      });
      expect(m.value('streamspace_session_starts_total', { template: DESK })).toBe(3);
      expect(m.value('streamspace_session_start_duration_seconds_count', { template: DESK })).toBe(3);
      expect(m.value('streamspace_session_wake_duration_seconds_count', { template: DESK })).toBe(0);
    });
    await waitPhases({ 's-dave': 'Failed' });
    const started = await scraped((m) => {
      expect(m.table('streamspace_sessions', { template: DESK })).toEqual(byPhase({ Running: 3 }));
      expect(m.table('streamspace_sessions', { template: BROKEN })).toEqual(byPhase({ Failed: 1 }));
      expect(
        m.value('streamspace_session_failures_total', {
          template: BROKEN,
          reason: 'StartupDeadlineExceeded',
        }),
      ).toBe(1);
      expect(m.value('streamspace_session_starts_total', { template: BROKEN })).toBe(0);
    });
    // Every start was timed, from creation to Running, and on KWOK that is quick.
    const startSum = started.value('streamspace_session_start_duration_seconds_sum', {
      template: DESK,
    }) as number;
    expect(startSum).toBeGreaterThan(0);
    expect(startSum).toBeLessThan(3 * 20);
    expect(started.value('streamspace_metrics_untimed_transitions_total', { transition: 'start' })).toBe(0);

    // alice hibernates her desktop; the idle reaper hibernates bob's.
    await setState('s-alice', 'hibernated');
    await reap('s-bob', 'hibernated', 'Idle');
    await waitPhases({ 's-alice': 'Hibernated', 's-bob': 'Hibernated' });
    await scraped((m) => {
      expect(m.table('streamspace_session_hibernations_total', { template: DESK })).toEqual(reasons(1, 1, 0));
      expect(m.value('streamspace_session_hibernate_duration_seconds_count', { template: DESK })).toBe(2);
      expect(m.table('streamspace_sessions', { template: DESK })).toEqual(
        byPhase({ Running: 1, Hibernated: 2 }),
      );
      expect(m.table('streamspace_active_sessions', { template: DESK })).toEqual({
        'user=carol@example.com': 1,
      });
    });

    // alice wakes hers: one more start, timed as a wake too.
    await setState('s-alice', 'running');
    await waitPhases({ 's-alice': 'Running' });
    const woken = await scraped((m) => {
      expect(m.value('streamspace_session_starts_total', { template: DESK })).toBe(4);
      expect(m.value('streamspace_session_start_duration_seconds_count', { template: DESK })).toBe(4);
      expect(m.value('streamspace_session_wake_duration_seconds_count', { template: DESK })).toBe(1);
      expect(m.table('streamspace_sessions', { template: DESK })).toEqual(
        byPhase({ Running: 2, Hibernated: 1 }),
      );
    });
    const wakeSum = woken.value('streamspace_session_wake_duration_seconds_sum', {
      template: DESK,
    }) as number;
    expect(wakeSum).toBeGreaterThan(0);
    expect(wakeSum).toBeLessThan(20);

    // carol ends hers; bob's reaches its maximum duration (the reaper's older Idle note is replaced).
    await setState('s-carol', 'terminated');
    await reap('s-bob', 'terminated', 'MaxDurationExceeded');
    await waitPhases({ 's-carol': 'Terminated', 's-bob': 'Terminated' });
    await scraped((m) => {
      expect(m.table('streamspace_session_terminations_total', { template: DESK })).toEqual(reasons(1, 0, 1));
      expect(m.table('streamspace_sessions', { template: DESK })).toEqual(
        byPhase({ Running: 1, Terminated: 2 }),
      );
      expect(m.table('streamspace_active_sessions', { template: DESK })).toEqual({
        'user=alice@example.com': 1,
      });
      // Nothing was counted twice, whatever the watcher re-announced meanwhile.
      expect(m.value('streamspace_session_starts_total', { template: DESK })).toBe(4);
      expect(m.table('streamspace_session_hibernations_total', { template: DESK })).toEqual(reasons(1, 1, 0));
      expect(
        m.value('streamspace_session_failures_total', {
          template: BROKEN,
          reason: 'StartupDeadlineExceeded',
        }),
      ).toBe(1);
    });
  });

  it('reports the pipeline: work queue, consumer backlog, dead letters, watcher readiness', async () => {
    const m = await Scrape.of(metrics);
    expect(m.value('streamspace_jetstream_up')).toBe(1);
    expect(m.value('streamspace_work_queue_depth', { stream: STREAMS.work })).toBeGreaterThanOrEqual(0);
    expect(
      m.value('streamspace_work_queue_oldest_age_seconds', { stream: STREAMS.work }),
    ).toBeGreaterThanOrEqual(0);
    expect(
      m.value('streamspace_work_consumer_pending_messages', { consumer: 'reconcilers' }),
    ).toBeGreaterThanOrEqual(0);
    expect(
      m.value('streamspace_work_consumer_ack_pending_messages', { consumer: 'reconcilers' }),
    ).toBeGreaterThanOrEqual(0);
    expect(
      m.value('streamspace_dead_letter_messages', { stream: STREAMS.deadLetter }),
    ).toBeGreaterThanOrEqual(0);
    expect(
      m.value('streamspace_watcher_probe_ready', { target: `http://127.0.0.1:${watcher.port}/readyz` }),
    ).toBe(1);
    expect(
      m.value('streamspace_build_info', {
        service: 'metrics',
        version: '0.1.0',
        node_version: process.version,
      }),
    ).toBe(1);
  });

  it('logs, counts and skips malformed events without stopping, and publishes nothing (read-only)', async () => {
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const subject = `streamspace.events.session.${namespace}.junk`;
    await js.publish(subject, new TextEncoder().encode('{"this is not'));
    const last = await js.publish(
      subject,
      new TextEncoder().encode(JSON.stringify({ type: 'modified', kind: 'session' })),
    );
    await scraped((m) => {
      expect(m.value('streamspace_metrics_malformed_events_total', { reason: 'not_json' })).toBe(1);
      expect(m.value('streamspace_metrics_malformed_events_total', { reason: 'bad_envelope' })).toBe(1);
    });
    // The metrics NATS user may publish nothing: the bad event stays where it is, in the events
    // stream, for a person to look at (the log line names its subject).
    const kept = await jsm.streams.getMessage(STREAMS.events, { last_by_subj: subject });
    expect(kept?.seq).toBe(last.seq);
    expect(metrics.running).toBe(true);
    expect((await metrics.get('/readyz')).status).toBe(200);
    expect(metrics.logs.some((line) => line.includes('skipping a change event that cannot be read'))).toBe(
      true,
    );
  });

  it('is right at once after a restart: gauges from the cluster, counters from zero, nothing re-counted', async () => {
    await metrics.stop();
    metrics = startMetrics();
    await metrics.waitReady();
    // The first scrape after ready, no waiting.
    const m = await Scrape.of(metrics);
    expect(m.table('streamspace_sessions', { template: DESK })).toEqual(
      byPhase({ Running: 1, Terminated: 2 }),
    );
    expect(m.table('streamspace_sessions', { template: BROKEN })).toEqual(byPhase({ Failed: 1 }));
    expect(m.table('streamspace_active_sessions', { template: DESK })).toEqual({
      'user=alice@example.com': 1,
    });
    expect(m.value('streamspace_session_starts_total', { template: DESK })).toBe(0);
    expect(m.table('streamspace_session_hibernations_total', { template: DESK })).toEqual(reasons(0, 0, 0));
    expect(m.table('streamspace_session_terminations_total', { template: DESK })).toEqual(reasons(0, 0, 0));
    expect(
      m.value('streamspace_session_failures_total', { template: BROKEN, reason: 'StartupDeadlineExceeded' }),
    ).toBe(0);

    // And it counts what happens from now on.
    await setState('s-alice', 'hibernated');
    await waitPhases({ 's-alice': 'Hibernated' });
    await scraped((after) => {
      expect(after.table('streamspace_session_hibernations_total', { template: DESK })).toEqual(
        reasons(1, 0, 0),
      );
      expect(after.value('streamspace_session_hibernate_duration_seconds_count', { template: DESK })).toBe(1);
      expect(after.table('streamspace_sessions', { template: DESK })).toEqual(
        byPhase({ Hibernated: 1, Terminated: 2 }),
      );
      expect(after.find('streamspace_active_sessions', { template: DESK })).toEqual([]);
    });
  });
});
