import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ANNOTATIONS, API_GROUP, API_VERSION, sessionChildName, subjects } from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionObject, templateObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  installCrds,
  kube,
  ServiceProcess,
} from './harness.js';
import { Scrape } from './metrics-scrape.js';
import { type PrivateNats, startPrivateNats } from './private-nats.js';

/**
 * Controls users cannot switch off, on the real API server with the real watcher, reconciler and
 * idle reaper: a forged reaper record, the opt-out annotation and timeouts of 0 do not keep a
 * desktop up past the platform's limits; resources above the ceiling do not start; scratch
 * volumes keep their size limit.
 */

const k = kube();
const MAX_IDLE = 4_000;
const MAX_DURATION = 15_000;
let namespace: string;
let nats: PrivateNats;
let nc: NatsConnection;
const services: ServiceProcess[] = [];
let reaper: ServiceProcess;
let reconciler: ServiceProcess;
let stopActivity = () => {};

interface StoredSession {
  metadata: { name: string; creationTimestamp: string; annotations?: Record<string, string> };
  spec: { state: string; idleTimeout?: string; resources?: unknown };
  status?: {
    phase?: string;
    stateChange?: { by?: string; reason?: string; at?: string };
    conditions?: {
      type: string;
      status: string;
      reason: string;
      message: string;
      lastTransitionTime: string;
    }[];
  };
}

const FORGED = {
  [ANNOTATIONS.stateChangedBy]: 'idle-reaper',
  [ANNOTATIONS.stateChangeReason]: 'Idle',
  [ANNOTATIONS.stateChangedAt]: '2999-01-01T00:00:00Z',
};

const SESSIONS: Record<string, { spec: Record<string, unknown>; annotations?: Record<string, string> }> = {
  forged: { spec: { idleTimeout: '3s', maxSessionDuration: '1h' }, annotations: FORGED },
  'opted-out': {
    spec: { idleTimeout: '3s', maxSessionDuration: '1h' },
    annotations: { [ANNOTATIONS.reaperDisabled]: 'true' },
  },
  'never-idle': { spec: { idleTimeout: '0', maxSessionDuration: '1h' } },
  forever: { spec: { idleTimeout: '3s', maxSessionDuration: '0' } },
  big: { spec: { idleTimeout: '1h', resources: { requests: { memory: '32Gi' } } } },
};

async function getSession(name: string): Promise<StoredSession> {
  return (await k.custom.getNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
    name,
  })) as StoredSession;
}

/** When the Session became Running (its Ready condition turning True), watched closely. */
function runningSince(name: string): Promise<number> {
  return eventually(
    async () => {
      const ready = (await getSession(name)).status?.conditions?.find((c) => c.type === 'Ready');
      expect(ready?.status, `${name} is not Running yet`).toBe('True');
      return Date.parse(ready!.lastTransitionTime);
    },
    60_000,
    100,
  );
}

async function waitState(name: string, state: string, timeoutMs = 30_000): Promise<StoredSession> {
  return eventually(
    async () => {
      const s = await getSession(name);
      expect(s.spec.state, name).toBe(state);
      expect(s.status?.stateChange?.at, `${name} status.stateChange`).toBeDefined();
      return s;
    },
    timeoutMs,
    100,
  );
}

async function events(name: string, reason: string) {
  const list = await k.core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.name=${name},reason=${reason}`,
  });
  return list.items;
}

async function metric(service: ServiceProcess, name: string, labels: Record<string, string> = {}) {
  return (await Scrape.of(service)).sum(name, labels);
}

const running = new Map<string, Promise<number>>();

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('costs');
  nats = await startPrivateNats();
  nc = await connect({ servers: nats.url });
  const env = { NATS_URL: nats.url, WATCH_NAMESPACE: namespace };
  services.push(new ServiceProcess('watcher', env));
  reconciler = new ServiceProcess('reconciler', {
    ...env,
    INGRESS_DOMAIN: 'desktops.test',
    SESSION_MAX_REQUESTS: 'cpu=2,memory=4Gi',
    SESSION_MAX_LIMITS: 'memory=8Gi',
  });
  reaper = new ServiceProcess('idle-reaper', {
    ...env,
    LAST_ACTIVITY_WRITE_INTERVAL: '1s',
    ACTIVITY_FLUSH_INTERVAL: '500ms',
    COMMAND_RETRY_INTERVAL: '5s',
    MAX_IDLE_TIMEOUT: `${MAX_IDLE / 1000}s`,
    MAX_SESSION_DURATION: `${MAX_DURATION / 1000}s`,
  });
  services.push(reconciler, reaper);
  await Promise.all(services.map((s) => s.waitReady()));
  await k.custom.createNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'templates',
    body: templateObject(undefined, 'firefox', {
      displayName: 'Firefox',
      defaultResources: { requests: { cpu: '250m', memory: '512Mi' } },
      volumeMounts: [
        { name: 'cache', mountPath: '/cache', sizeLimit: '1Gi' },
        { name: 'scratch', mountPath: '/scratch' },
      ],
    }),
  });
  for (const [name, { spec, annotations }] of Object.entries(SESSIONS)) {
    await k.custom.createNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace,
      plural: 'sessions',
      body: sessionObject(
        undefined,
        name,
        `${name}@example.com`,
        'firefox',
        spec,
        annotations ? { annotations } : {},
      ),
    });
    if (name !== 'big') running.set(name, runningSince(name));
  }
  // `forever` stays active, so only its maximum duration can end it.
  let stopped = false;
  void (async () => {
    while (!stopped) {
      nc.publish(
        subjects.activity(namespace, 'forever'),
        JSON.stringify({ namespace, session: 'forever', source: 'test' }),
      );
      await new Promise((r) => setTimeout(r, 700));
    }
  })();
  stopActivity = () => {
    stopped = true;
  };
});

afterAll(async () => {
  stopActivity();
  await Promise.all(services.map((s) => s.stop()));
  await nc?.close();
  await nats?.stop();
  await deleteNamespace(namespace);
});

// First: the maximum duration (15 s) ends every Session of this namespace soon after it starts.
describe('the resource ceiling', () => {
  it('refuses a Session asking for more: nothing runs, the condition and Event name the ceiling, it is counted; fixed, it starts', async () => {
    const refused = await eventually(async () => {
      const s = await getSession('big');
      expect(s.status?.phase).toBe('Failed');
      return s;
    });
    const ready = refused.status?.conditions?.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'False', reason: 'ResourcesExceedCeiling' });
    expect(ready?.message).toContain(
      'requests.memory 32Gi (from the Session) is above the ceiling 4Gi set by SESSION_MAX_REQUESTS (chart value sessions.limits.maxRequests)',
    );
    // The reconciler records the Event after it writes the status: wait for it, then count it.
    const refusals = await eventually(async () => {
      const found = await events('big', 'ResourcesExceedCeiling');
      expect(found.length).toBeGreaterThan(0);
      return found;
    });
    expect(refusals).toHaveLength(1);
    await expect(
      k.apps.readNamespacedDeployment({ namespace, name: sessionChildName('big') }),
    ).rejects.toMatchObject({ code: 404 });
    expect(
      await metric(reconciler, 'streamspace_reconciler_sessions_refused_total', {
        reason: 'ResourcesExceedCeiling',
      }),
    ).toBe(1);

    await k.custom.patchNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace,
      plural: 'sessions',
      name: 'big',
      body: [{ op: 'replace', path: '/spec/resources/requests/memory', value: '2Gi' }],
    });
    const deployment = await eventually(() =>
      k.apps.readNamespacedDeployment({ namespace, name: sessionChildName('big') }),
    );
    // Within the ceiling it runs, with the memory limit it left out set to the ceiling.
    expect(deployment.spec?.template.spec?.containers[0]?.resources).toEqual({
      requests: { cpu: '250m', memory: '2Gi' },
      limits: { memory: '8Gi' },
    });
  });

  it('bounds a desktop that asks for nothing by the ceiling’s limit, and reserves nothing for it', async () => {
    // A Template and a Session without resources: Kubernetes would copy the ceiling's memory limit
    // (8Gi) into the pod's missing request, reserving it; an explicit 0 keeps the reservation off.
    const create = (plural: string, body: object) =>
      k.custom.createNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace,
        plural,
        body,
      });
    await create('templates', templateObject(namespace, 'bare'));
    await create('sessions', sessionObject(namespace, 'bare', 'bare@example.com', 'bare'));
    const deployment = await eventually(() =>
      k.apps.readNamespacedDeployment({ namespace, name: sessionChildName('bare') }),
    );
    expect(deployment.spec?.template.spec?.containers[0]?.resources).toEqual({
      requests: { memory: '0' },
      limits: { memory: '8Gi' },
    });
    const pod = await eventually(async () => {
      const list = await k.core.listNamespacedPod({
        namespace,
        labelSelector: `stream.streamspace.io/session=bare`,
      });
      expect(list.items).toHaveLength(1);
      return list.items[0];
    });
    expect(pod?.spec?.containers[0]?.resources?.requests).toEqual({ memory: '0' });
  });

  it('keeps the Template’s sizeLimit on scratch volumes', async () => {
    const deployment = await eventually(() =>
      k.apps.readNamespacedDeployment({ namespace, name: sessionChildName('forged') }),
    );
    const volumes = deployment.spec?.template.spec?.volumes ?? [];
    expect(volumes.find((v) => v.name === 'cache')?.emptyDir).toEqual({ sizeLimit: '1Gi' });
    expect(volumes.find((v) => v.name === 'scratch')?.emptyDir).toEqual({});
  });
});

describe('the idle reaper, within the platform’s limits', () => {
  it('hibernates on time a session whose annotations forge the reaper’s record, and records its own in status', async () => {
    const since = await running.get('forged')!;
    const s = await waitState('forged', 'hibernated');
    const delay = Date.parse(s.status!.stateChange!.at!) - (since + 3_000);
    expect(delay).toBeGreaterThanOrEqual(0);
    expect(delay).toBeLessThan(2_000);
    expect(s.status?.stateChange).toMatchObject({ by: 'idle-reaper', reason: 'Idle' });
    // The annotations now tell the truth again, for people.
    expect(s.metadata.annotations?.[ANNOTATIONS.stateChangedAt]).toBe(s.status?.stateChange?.at);
  });

  it('ignores the opt-out annotation it does not allow, and says so in an Event', async () => {
    const since = await running.get('opted-out')!;
    const s = await waitState('opted-out', 'hibernated');
    expect(Date.parse(s.status!.stateChange!.at!) - (since + 3_000)).toBeLessThan(2_000);
    // One Event per limit applied (its 1h maxSessionDuration is over the maximum too).
    const [event, ...more] = await eventually(async () => {
      const found = (await events('opted-out', 'LimitApplied')).filter((e) =>
        e.message?.includes(ANNOTATIONS.reaperDisabled),
      );
      expect(found.length).toBeGreaterThan(0);
      return found;
    });
    expect(more).toEqual([]);
    expect(event?.type).toBe('Warning');
    expect(event?.message).toContain(
      'stream.streamspace.io/reaper-disabled=true is ignored: the platform does not allow sessions to opt out',
    );
    expect(event?.message).toContain(
      'REAPER_OPT_OUT_ALLOWED (chart value sessions.limits.allowReaperOptOut)',
    );
    // Nothing else about the Session changed: its own settings stay as written.
    expect(s.metadata.annotations?.[ANNOTATIONS.reaperDisabled]).toBe('true');
    expect(s.spec.idleTimeout).toBe('3s');
  });

  it('hibernates a session with idleTimeout 0 after the maximum idle time', async () => {
    const since = await running.get('never-idle')!;
    const s = await waitState('never-idle', 'hibernated');
    const delay = Date.parse(s.status!.stateChange!.at!) - (since + MAX_IDLE);
    expect(delay).toBeGreaterThanOrEqual(0);
    expect(delay).toBeLessThan(2_000);
    const found = await events('never-idle', 'LimitApplied');
    expect(found.map((e) => e.message).filter((m) => m?.startsWith('spec.idleTimeout'))).toEqual([
      'spec.idleTimeout 0 (never) is beyond what the platform allows: the session is hibernated when idle for 4s, the maximum set by MAX_IDLE_TIMEOUT (chart value sessions.limits.maxIdleTimeout). Set spec.idleTimeout to at most 4s.',
    ]);
  });

  it('terminates an active session with maxSessionDuration 0 at the maximum duration', async () => {
    const s = await waitState('forever', 'terminated', MAX_DURATION + 20_000);
    const delay =
      Date.parse(s.status!.stateChange!.at!) - (Date.parse(s.metadata.creationTimestamp) + MAX_DURATION);
    expect(delay).toBeGreaterThanOrEqual(0);
    expect(delay).toBeLessThan(2_000);
    expect(s.status?.stateChange).toMatchObject({ by: 'idle-reaper', reason: 'MaxDurationExceeded' });
    expect((await events('forever', 'LimitApplied')).map((e) => e.message)).toEqual([
      expect.stringContaining('MAX_SESSION_DURATION (chart value sessions.limits.maxDuration)'),
    ]);
    for (const setting of ['optOut', 'idleTimeout', 'maxSessionDuration'])
      expect(
        await metric(reaper, 'streamspace_reaper_limits_applied_total', { setting }),
        setting,
      ).toBeGreaterThan(0);
  });
});
