import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KV, Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ANNOTATIONS, API_GROUP, API_VERSION, BUCKETS, subjects } from '@streamspace/shared';
import { readStoredActivity } from '../../services/idle-reaper/src/activity-store.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionObject, templateObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  followSessions,
  installCrds,
  kube,
  kubectl,
  ServiceProcess,
} from './harness.js';

/**
 * The idle reaper on the real control plane and NATS, with the real watcher and reconciler
 * bringing Sessions to Running, two reaper replicas, and second-scale timeouts.
 *
 * Bringing a Session to Running takes several seconds on this cluster, so every Session is
 * created at once at the start; a watch records when each one became Running (its Ready
 * condition's transition time), which later statuses overwrite.
 */

const k = kube();
const TOKEN = 'test-activity-token-0123456789';
let namespace: string;
let nc: NatsConnection;
let kv: KV;
const pipeline: ServiceProcess[] = [];
const reapers: ServiceProcess[] = [];
/** Every Ready=True transition time seen, per Session. */
const becameRunning = new Map<string, number[]>();
let stopWatch: (() => void) | undefined;
const activityLoops: (() => void)[] = [];

interface StoredSession {
  metadata: { name: string; uid: string; creationTimestamp: string; annotations?: Record<string, string> };
  spec: { state: string };
  status?: {
    phase?: string;
    lastActivity?: string;
    conditions?: { type: string; status: string; lastTransitionTime: string }[];
  };
}

const reaperEnv = () => ({
  WATCH_NAMESPACE: namespace,
  ACTIVITY_TOKEN: TOKEN,
  LAST_ACTIVITY_WRITE_INTERVAL: '1s',
  // Well below the 3 s idle timeouts below: another replica learns of a report this late.
  ACTIVITY_FLUSH_INTERVAL: '500ms',
  COMMAND_RETRY_INTERVAL: '5s',
});

function startReaper(env: Record<string, string> = {}): ServiceProcess {
  const reaper = new ServiceProcess('idle-reaper', { ...reaperEnv(), ...env });
  reapers.push(reaper);
  return reaper;
}

async function apply(object: object): Promise<void> {
  const result = await kubectl(['apply', '-f', '-'], JSON.stringify(object));
  if (result.code !== 0) throw new Error(`kubectl apply failed: ${result.stderr}`);
}

function session(name: string, spec: Record<string, unknown>) {
  return sessionObject(namespace, name, `${name}@example.com`, 'firefox', spec);
}

async function getSession(name: string): Promise<StoredSession> {
  return (await k.custom.getNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
    name,
  })) as StoredSession;
}

/** Waits until the Session has become Running (after `after`) and returns when it did. */
async function runningSince(name: string, after = 0, timeoutMs = 30_000): Promise<number> {
  return eventually(() => {
    const since = becameRunning.get(name)?.filter((t) => t > after);
    expect(since?.length, `${name} has not become Running`).toBeGreaterThan(0);
    return since![0]!;
  }, timeoutMs);
}

async function waitState(name: string, state: string, timeoutMs = 20_000): Promise<StoredSession> {
  return eventually(
    async () => {
      const s = await getSession(name);
      expect(s.spec.state, name).toBe(state);
      return s;
    },
    timeoutMs,
    100,
  );
}

function changedAt(s: StoredSession): number {
  return Date.parse(s.metadata.annotations?.[ANNOTATIONS.stateChangedAt] ?? 'NaN');
}

/**
 * The Session's Events of this reason once there is one: the Event is recorded after the state
 * change, by the reaper's second API client, so it can come moments after the change is seen.
 */
function recordedEvents(name: string, reason: string) {
  return eventually(async () => {
    const found = await events(name, reason);
    expect(found.length).toBeGreaterThan(0);
    return found;
  });
}

async function events(name: string, reason: string) {
  const list = await k.core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.name=${name},reason=${reason}`,
  });
  return list.items;
}

async function postActivity(body: unknown, token: string | null = TOKEN, reaper = reapers[0]!) {
  const response = await fetch(`http://127.0.0.1:${reaper.port}/activity`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return {
    status: response.status,
    body: (await response.json()) as { result?: string; error?: string; at?: string },
  };
}

async function metric(
  reaper: ServiceProcess,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const { body } = await reaper.get('/metrics');
  let total = 0;
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`)))
      total += Number(line.split(' ').at(-1));
  }
  return total;
}

/** Reports activity every `everyMs` until stopped. */
function keepActive(report: () => unknown, everyMs = 700): () => void {
  let stopped = false;
  void (async () => {
    while (!stopped) {
      await Promise.resolve(report()).catch(() => undefined);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  const stop = () => {
    stopped = true;
  };
  activityLoops.push(stop);
  return stop;
}

const natsReport = (name: string) => () =>
  nc.publish(
    subjects.activity(namespace, name),
    JSON.stringify({ namespace, session: name, source: 'test' }),
  );

/** Records each time a Session's Ready condition turned True while it was Running. */
function watchReadyTransitions(): Promise<() => void> {
  return followSessions<StoredSession>(
    k.kc,
    `/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace}/sessions`,
    (object) => {
      const ready = object.status?.conditions?.find((c) => c.type === 'Ready');
      if (object.status?.phase !== 'Running' || ready?.status !== 'True') return;
      const seen = becameRunning.get(object.metadata.name) ?? [];
      const at = Date.parse(ready.lastTransitionTime);
      if (!seen.includes(at)) becameRunning.set(object.metadata.name, [...seen, at]);
    },
  );
}

const SESSIONS: Record<string, Record<string, unknown>> = {
  idle: { idleTimeout: '3s', maxSessionDuration: '0' },
  'nats-user': { idleTimeout: '3s', maxSessionDuration: '0' },
  'http-user': { idleTimeout: '3s', maxSessionDuration: '0' },
  'too-old': { idleTimeout: '0', maxSessionDuration: '8s' },
  'pair-0': { idleTimeout: '3s', maxSessionDuration: '0' },
  'pair-1': { idleTimeout: '3s', maxSessionDuration: '0' },
  guarded: { idleTimeout: '1h', maxSessionDuration: '0' },
  restart: { idleTimeout: '3s', maxSessionDuration: '0' },
};

let stopNatsUser: () => void;
let stopHttpUser: () => void;
let stopRestartUser: () => void;

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('reaper');
  stopWatch = await watchReadyTransitions();
  nc = await connect({ servers: process.env.NATS_URL as string });
  pipeline.push(new ServiceProcess('watcher', { WATCH_NAMESPACE: namespace, RESYNC_INTERVAL: '30s' }));
  pipeline.push(
    new ServiceProcess('reconciler', { INGRESS_DOMAIN: 'desktops.test', WATCH_NAMESPACE: namespace }),
  );
  // Two replicas of the reaper from the start: every decision below is made with both running.
  startReaper();
  startReaper();
  await Promise.all([...pipeline, ...reapers].map((s) => s.waitReady()));
  kv = await new Kvm(nc).open(BUCKETS.activity);
  await apply(
    templateObject(namespace, 'firefox', {
      displayName: 'Firefox',
      description: 'A browser',
      category: 'browsers',
    }),
  );
  await apply({
    apiVersion: 'v1',
    kind: 'List',
    items: Object.entries(SESSIONS).map(([name, spec]) => session(name, spec)),
  });
  stopNatsUser = keepActive(natsReport('nats-user'));
  stopRestartUser = keepActive(natsReport('restart'));
  stopHttpUser = keepActive(() => postActivity({ namespace, session: 'http-user', source: 'test' }));
});

afterAll(async () => {
  for (const stop of activityLoops) stop();
  stopWatch?.();
  await Promise.all([...reapers, ...pipeline].map((s) => s.stop()));
  await nc?.close();
  await deleteNamespace(namespace);
});

describe('decisions on time, with two replicas', () => {
  it('hibernates an idle session within 2 s of its deadline, once', async () => {
    const since = await runningSince('idle');
    const idle = await waitState('idle', 'hibernated');
    const delay = changedAt(idle) - (since + 3_000);
    expect(delay).toBeGreaterThanOrEqual(0);
    expect(delay).toBeLessThan(2_000);
    expect(idle.metadata.annotations?.[ANNOTATIONS.stateChangedBy]).toBe('idle-reaper');
    expect(idle.metadata.annotations?.[ANNOTATIONS.stateChangeReason]).toBe('Idle');
    const [event, ...more] = await recordedEvents('idle', 'Idle');
    expect(more).toEqual([]);
    expect(event?.message).toContain('idleTimeout 3s');
    expect((await kubectl(['describe', 'session', 'idle', '-n', namespace])).stdout).toMatch(
      /Idle\s+.*hibernated by the idle reaper/,
    );
  });

  it('terminates a session past its maximum duration, measured from creation', async () => {
    const old = await waitState('too-old', 'terminated');
    const delay = changedAt(old) - (Date.parse(old.metadata.creationTimestamp) + 8_000);
    expect(delay).toBeGreaterThanOrEqual(0);
    expect(delay).toBeLessThan(2_000);
    expect(old.metadata.annotations?.[ANNOTATIONS.stateChangeReason]).toBe('MaxDurationExceeded');
    const found = await recordedEvents('too-old', 'MaxDurationExceeded');
    expect(found).toHaveLength(1);
    expect(found[0]?.message).toContain('maxSessionDuration 8s');
  });

  it('keeps the sessions reporting activity over NATS and over HTTP running, and hibernates them once they stop', async () => {
    const since = Math.max(await runningSince('nats-user'), await runningSince('http-user'));
    // Well past their 3 s timeout.
    await new Promise((r) => setTimeout(r, Math.max(0, since + 6_000 - Date.now())));
    for (const name of ['nats-user', 'http-user']) {
      const s = await getSession(name);
      expect(s.spec.state, name).toBe('running');
      expect(
        Date.now() - Date.parse(s.status?.lastActivity ?? 'NaN'),
        `${name} status.lastActivity`,
      ).toBeLessThan(3_000);
      expect(await readStoredActivity(kv, `${namespace}.${name}`)).toBeDefined();
    }
    stopNatsUser();
    stopHttpUser();
    const stoppedAt = Date.now();
    for (const name of ['nats-user', 'http-user']) {
      const s = await waitState(name, 'hibernated', 10_000);
      expect(changedAt(s) - stoppedAt).toBeLessThan(3_000 + 2_000);
    }
    const sum = async (name: string, labels: Record<string, string>) =>
      (await Promise.all(reapers.map((r) => metric(r, name, labels)))).reduce((a, b) => a + b, 0);
    expect(
      await sum('streamspace_reaper_activity_reports_total', { source: 'nats', result: 'accepted' }),
    ).toBeGreaterThan(0);
    expect(
      await sum('streamspace_reaper_activity_reports_total', { source: 'http', result: 'accepted' }),
    ).toBeGreaterThan(0);
    expect(
      await sum('streamspace_reaper_decision_delay_seconds_count', { reason: 'Idle' }),
    ).toBeGreaterThanOrEqual(3);
  });

  it('acts once per session: one state change and one Event, with two replicas running', async () => {
    const names = ['idle', 'too-old', 'nats-user', 'http-user', 'pair-0', 'pair-1'];
    for (const name of ['pair-0', 'pair-1']) await waitState(name, 'hibernated');
    // Give a duplicate every chance to show up.
    await new Promise((r) => setTimeout(r, 1_500));
    for (const name of names) {
      // One Event: only the executor whose conditional patch succeeded records one.
      const reason = name === 'too-old' ? 'MaxDurationExceeded' : 'Idle';
      expect(await events(name, reason), name).toHaveLength(1);
      // And at most one of our replicas says it changed the state (a reaper elsewhere on this
      // shared cluster, watching every namespace, may have been the one).
      const changes = reapers.flatMap((r) =>
        r.logs.filter(
          (line) => /"msg":"session (hibernated|terminated)"/.test(line) && line.includes(`"name":"${name}"`),
        ),
      );
      expect(changes.length, name).toBeLessThanOrEqual(1);
    }
    // The decisions went out as commands. Not necessarily from both replicas: each decides only the
    // Sessions it owns (rendezvous hashing over the members), and with six Sessions one replica owns
    // none of them about one run in thirty — asserting each replica published made this test flaky.
    const published = await Promise.all(
      reapers.map((r) => metric(r, 'streamspace_reaper_commands_issued_total', { result: 'published' })),
    );
    expect(published.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it('gives a woken session its full idle timeout again', async () => {
    const hibernatedAt = changedAt(await getSession('idle'));
    await kubectl([
      'patch',
      'session',
      'idle',
      '-n',
      namespace,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { state: 'running' } }),
    ]);
    const wokenSince = await runningSince('idle', hibernatedAt);
    const again = await eventually(
      async () => {
        const s = await getSession('idle');
        expect(s.spec.state).toBe('hibernated');
        expect(changedAt(s)).toBeGreaterThan(hibernatedAt);
        return s;
      },
      20_000,
      100,
    );
    const delay = changedAt(again) - (wokenSince + 3_000);
    expect(delay).toBeGreaterThanOrEqual(0);
    expect(delay).toBeLessThan(2_000);
    // The Event is recorded after the state change it tells of.
    await eventually(async () => expect(await events('idle', 'Idle')).toHaveLength(2));
  });
});

describe('bad input', () => {
  it('answers 401 without a valid token and records nothing; 400 for a malformed report; 404 for an unknown session', async () => {
    await runningSince('guarded');
    const reaper = reapers[0]!;
    const before = await metric(reaper, 'streamspace_reaper_unauthorized_requests_total');

    expect((await postActivity({ namespace, session: 'guarded' }, null)).status).toBe(401);
    expect((await postActivity({ namespace, session: 'guarded' }, 'not-the-token')).status).toBe(401);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await readStoredActivity(kv, `${namespace}.guarded`)).toBeUndefined();
    expect((await getSession('guarded')).status?.lastActivity).toBeUndefined();
    expect(await metric(reaper, 'streamspace_reaper_unauthorized_requests_total')).toBe(before + 2);

    const malformed = await postActivity('{"namespace": ');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toContain('not JSON');
    const wrongShape = await postActivity({ namespace, session: 'Not A Name', at: 'yesterday' });
    expect(wrongShape.status).toBe(400);
    expect(wrongShape.body.error).toMatch(/session.*at/s);
    expect((await postActivity({ namespace, session: 'no-such-session' })).status).toBe(404);

    // Malformed reports over NATS are counted, and the reapers carry on.
    const malformedBefore = (
      await Promise.all(
        reapers.map((r) => metric(r, 'streamspace_reaper_malformed_reports_total', { source: 'nats' })),
      )
    ).reduce((a, b) => a + b, 0);
    nc.publish(subjects.activity(namespace, 'guarded'), 'garbage');
    nc.publish(
      subjects.activity(namespace, 'guarded'),
      JSON.stringify({ namespace, session: 'someone-else' }),
    );
    await eventually(async () => {
      const now = await Promise.all(
        reapers.map((r) => metric(r, 'streamspace_reaper_malformed_reports_total', { source: 'nats' })),
      );
      expect(now.reduce((a, b) => a + b, 0)).toBe(malformedBefore + 2);
    });

    // A timestamp from the future is stored (at the next flush) as the time of receipt.
    const sent = Date.now();
    const future = await postActivity({ namespace, session: 'guarded', at: '2100-01-01T00:00:00Z' });
    expect(future.status).toBe(202);
    expect(future.body.result).toBe('clamped_future');
    const stored = await eventually(async () => {
      const at = await readStoredActivity(kv, `${namespace}.guarded`);
      expect(at).toBeDefined();
      return at as number;
    });
    expect(stored).toBeGreaterThanOrEqual(sent - 1_000);
    expect(stored).toBeLessThanOrEqual(Date.now());
    expect(reapers.every((r) => r.running)).toBe(true);
    expect((await getSession('guarded')).spec.state).toBe('running');
  });

  it('reports not ready, and stays up, while NATS or the API server is unreachable', async () => {
    const deadKubeconfig = join(tmpdir(), `reaper-dead-kubeconfig-${process.pid}.yaml`);
    writeFileSync(
      deadKubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: dead, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]',
        'users: [{name: dead, user: {token: x}}]',
        'contexts: [{name: dead, context: {cluster: dead, user: dead}}]',
        'current-context: dead',
      ].join('\n'),
    );
    const noNats = new ServiceProcess('idle-reaper', { ...reaperEnv(), NATS_URL: 'nats://127.0.0.1:1' });
    const noApi = new ServiceProcess('idle-reaper', { ...reaperEnv(), KUBECONFIG: deadKubeconfig });
    try {
      await Promise.all(
        (
          [
            [noNats, 'nats'],
            [noApi, 'kubernetes'],
          ] as const
        ).map(([service, check]) =>
          eventually(async () => {
            expect(service.running).toBe(true);
            const { status, body } = await service.get('/readyz');
            expect(status).toBe(503);
            expect((JSON.parse(body) as { checks: Record<string, { ok: boolean }> }).checks[check]?.ok).toBe(
              false,
            );
          }),
        ),
      );
      await new Promise((r) => setTimeout(r, 1_000));
      expect(noNats.running && noApi.running).toBe(true);
    } finally {
      await Promise.all([noNats.stop(), noApi.stop()]);
    }
  });
});

describe('restarts', () => {
  it('loses no decision across a restart: what came due while it was down is done at start', async () => {
    await runningSince('restart');
    // Both replicas die while the session is in use; it then goes idle while no reaper runs.
    await Promise.all(reapers.map((r) => r.kill()));
    reapers.length = 0;
    stopRestartUser();
    await new Promise((r) => setTimeout(r, 5_000));
    expect((await getSession('restart')).spec.state).toBe('running');
    const restartedAt = Date.now();
    await startReaper().waitReady();
    const s = await waitState('restart', 'hibernated', 10_000);
    expect(changedAt(s)).toBeGreaterThanOrEqual(restartedAt);
    expect(changedAt(s) - restartedAt).toBeLessThan(5_000);
    expect(await recordedEvents('restart', 'Idle')).toHaveLength(1);
    // Activity stored before the restart was not forgotten: the decision names the last report.
    const [event] = await events('restart', 'Idle');
    const idleSince = Date.parse(/No activity since (\S+),/.exec(event?.message ?? '')?.[1] ?? 'NaN');
    expect(restartedAt - idleSince).toBeLessThan(6_500);
  });

  it('holds reports in memory, writes status.lastActivity coarsely, and hibernates no active session for a report a crash lost', async () => {
    // One reaper that flushes once an hour and writes status.lastActivity at its default (10m):
    // every report it gets stays in its memory.
    await Promise.all(reapers.map((r) => r.stop()));
    reapers.length = 0;
    const holder = startReaper({ ACTIVITY_FLUSH_INTERVAL: '1h', LAST_ACTIVITY_WRITE_INTERVAL: '10m' });
    await holder.waitReady();
    await apply(session('grace', { idleTimeout: '4s', maxSessionDuration: '0' }));
    // The desktop reports every 1.5 s, within its 4 s idle timeout.
    const stopGraceUser = keepActive(natsReport('grace'), 1_500);
    const since = await runningSince('grace');
    const accepted = (r: ServiceProcess) =>
      metric(r, 'streamspace_reaper_activity_reports_total', { source: 'nats', result: 'accepted' });
    // Well past the idle timeout: kept running by reports the bucket has never seen.
    await eventually(async () => {
      expect(Date.now() - since).toBeGreaterThan(6_000);
      expect(await accepted(holder)).toBeGreaterThanOrEqual(4);
    }, 20_000);
    expect(await readStoredActivity(kv, `${namespace}.grace`)).toBeUndefined();
    let s = await getSession('grace');
    expect(s.spec.state).toBe('running');
    expect(s.status?.lastActivity).toBeUndefined();
    expect(await metric(holder, 'streamspace_reaper_last_activity_writes_total', { result: 'written' })).toBe(
      0,
    );

    // It dies with what it held. Its successor knows of no activity newer than the Ready
    // transition (> 4 s ago), yet waits one flush interval (3 s) before deciding on idleness:
    // the desktop's next report lands in that grace.
    await holder.kill();
    reapers.length = 0;
    const successor = startReaper({ ACTIVITY_FLUSH_INTERVAL: '3s', LAST_ACTIVITY_WRITE_INTERVAL: '10m' });
    const startedAt = Date.now();
    await successor.waitReady();
    // The successor has flushed a report of its own (so its grace is over) and the session stands.
    const flushed = await eventually(async () => {
      const at = await readStoredActivity(kv, `${namespace}.grace`);
      expect(at).toBeGreaterThan(startedAt);
      return at as number;
    }, 20_000);
    expect(Date.now() - startedAt).toBeGreaterThan(3_000);
    s = await getSession('grace');
    expect(s.spec.state).toBe('running');
    expect(await events('grace', 'Idle')).toHaveLength(0);

    // Once the desktop stops, the decision writes the precise last activity into the status.
    stopGraceUser();
    await waitState('grace', 'hibernated', 20_000);
    await eventually(async () => {
      const status = (await getSession('grace')).status;
      expect(Date.parse(status?.lastActivity ?? 'NaN')).toBeGreaterThanOrEqual(flushed);
    }, 10_000);
    expect(
      await metric(successor, 'streamspace_reaper_last_activity_writes_total', { result: 'written' }),
    ).toBeGreaterThanOrEqual(1);
  });
});
