import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EventRecorder, KubeClient } from '@streamspace/kube';
import {
  API_GROUP,
  allowMessageTtl,
  API_VERSION,
  BUCKETS,
  removeStateEntry,
  STATE_DELETE_MARKER_TTL,
  sessionChildName,
  sessionPodsFilter,
  stateKey,
  subjects,
} from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeWriter } from '../../services/reconciler/src/kube-writer.js';
import type { PlannedStatus } from '../../services/reconciler/src/session-plan.js';
import type { StoredSession } from '../../services/reconciler/src/stored-objects.js';
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
import { type PrivateNats, startPrivateNats } from './private-nats.js';

/**
 * Issue 13, part 2: the API server is read by the watcher only; the reconcilers read what it saw
 * from the shared-state bucket on NATS and only write. Proven on the real control plane with the
 * reconcilers' own request counters, the bucket's contents and the children's uids.
 */

const k = kube();
let namespace: string;
let watcher: ServiceProcess;
const reconcilers: ServiceProcess[] = [];
let nc: NatsConnection;
// A nats-server of this file's own: it deletes the state bucket, which would pull the shared state
// from under every other test file's services running at the same time.
let nats: PrivateNats;

function template(name: string) {
  return templateObject(namespace, name, {
    description: 'A browser for tests',
    category: 'browsers',
    defaultResources: { requests: { cpu: '250m', memory: '512Mi' } },
  });
}

function session(name: string, user: string) {
  return sessionObject(namespace, name, user, 'firefox', { persistentHome: true });
}

async function apply(object: object): Promise<void> {
  const result = await kubectl(['apply', '-f', '-'], JSON.stringify(object));
  if (result.code !== 0) throw new Error(`kubectl apply failed: ${result.stderr}`);
}

async function phaseOf(name: string): Promise<string | undefined> {
  const s = (await k.custom.getNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
    name,
  })) as { status?: { phase?: string } };
  return s.status?.phase;
}

async function waitPhase(name: string, phase: string, timeoutMs = 30_000): Promise<void> {
  await eventually(async () => expect(await phaseOf(name)).toBe(phase), timeoutMs);
}

async function setState(name: string, state: string): Promise<void> {
  const result = await kubectl([
    'patch',
    'session',
    name,
    '-n',
    namespace,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { state } }),
  ]);
  if (result.code !== 0) throw new Error(result.stderr);
}

/** The sum over every reconciler of one metric's samples matching `labels`. */
async function reconcilerSum(name: string, labels: Record<string, string> = {}): Promise<number> {
  const scrapes = await Promise.all(reconcilers.map((r) => Scrape.of(r)));
  return scrapes.reduce((sum, scrape) => sum + scrape.sum(name, labels), 0);
}

const REQUESTS = 'streamspace_reconciler_kube_requests_total';
const RECONCILES = 'streamspace_reconciler_reconciles_total';

async function deploymentUid(name: string): Promise<string | undefined> {
  return (await k.apps.readNamespacedDeployment({ namespace, name: sessionChildName(name) })).metadata?.uid;
}

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('shared-state');
  nats = await startPrivateNats();
  // No periodic resync during the measurements: every reconcile counted comes from a change.
  watcher = new ServiceProcess('watcher', {
    NATS_URL: nats.url,
    WATCH_NAMESPACE: namespace,
    RESYNC_INTERVAL: '1h',
  });
  for (let i = 0; i < 2; i++)
    reconcilers.push(
      new ServiceProcess('reconciler', {
        NATS_URL: nats.url,
        STARTUP_DEADLINE: '30s',
        INGRESS_DOMAIN: 'desktops.test',
        WATCH_NAMESPACE: namespace,
      }),
    );
  await Promise.all([watcher, ...reconcilers].map((s) => s.waitReady()));
  await apply(template('firefox'));
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await Promise.all([watcher, ...reconcilers].map((s) => s?.stop()));
  await nc?.close();
  await nats?.stop();
  await deleteNamespace(namespace);
});

describe('the reconciler reads the shared state, not the API server', () => {
  it('takes a Session through create, running, hibernate, wake and terminate with zero GET or LIST', async () => {
    // Events are not state: the recorder may read one back to aggregate a repeat.
    const stateReads = async () =>
      (await reconcilerSum(REQUESTS, { verb: 'get' })) -
      (await reconcilerSum(REQUESTS, { verb: 'get', resource: 'events' }));
    const before = await stateReads();
    const writesBefore = await reconcilerSum(REQUESTS);
    await apply(session('life', 'alice'));
    await waitPhase('life', 'Running');
    await setState('life', 'hibernated');
    await waitPhase('life', 'Hibernated');
    await setState('life', 'running');
    await waitPhase('life', 'Running');
    await setState('life', 'terminated');
    await waitPhase('life', 'Terminated');
    await eventually(async () => {
      const listed = await kubectl(['get', 'deployments', '-n', namespace, '-o', 'name']);
      expect(listed.stdout).not.toContain(sessionChildName('life'));
    });
    const gets = (await stateReads()) - before;
    const requests = (await reconcilerSum(REQUESTS)) - writesBefore;
    console.log(
      `shared-state: a Session's whole life cost the reconcilers ${requests} API requests, ${gets} of them GET/LIST`,
    );
    expect(requests).toBeGreaterThan(0);
    expect(gets).toBe(0);
    await kubectl(['delete', 'session', 'life', '-n', namespace, '--wait=false']);
  });

  it('reconciles at most twice per user change, and applies an unchanged Deployment never', async () => {
    const names = ['r1', 'r2', 'r3'];
    for (const name of names) await apply(session(name, `user-${name}`));
    for (const name of names) await waitPhase(name, 'Running');
    // Let the echoes of the creation settle before counting.
    let settled = -1;
    await eventually(
      async () => {
        const now = await reconcilerSum(RECONCILES, { kind: 'session' });
        const same = now === settled;
        settled = now;
        expect(same).toBe(true);
      },
      20_000,
      1_000,
    );
    const reconcilesBefore = await reconcilerSum(RECONCILES, { kind: 'session' });
    const triggersBefore = (await Scrape.of(watcher)).table(
      'streamspace_watcher_work_items_published_total',
      {
        kind: 'session',
      },
    );
    // Server-side applies: patches of everything but Events (whose repeats are aggregated by a patch).
    const applies = async () =>
      (await reconcilerSum(REQUESTS, { verb: 'patch' })) -
      (await reconcilerSum(REQUESTS, { verb: 'patch', resource: 'events' }));
    const patchesBefore = await applies();
    const changes = 20;
    for (let i = 0; i < changes; i++) {
      const name = names[i % names.length] as string;
      const hibernate = Math.floor(i / names.length) % 2 === 0;
      await setState(name, hibernate ? 'hibernated' : 'running');
      await waitPhase(name, hibernate ? 'Hibernated' : 'Running');
    }
    // Reconciles still under way for the last change count too.
    let last = -1;
    await eventually(
      async () => {
        const now = await reconcilerSum(RECONCILES, { kind: 'session' });
        const same = now === last;
        last = now;
        expect(same).toBe(true);
      },
      20_000,
      1_000,
    );
    const reconciles = last - reconcilesBefore;
    const triggers = Object.entries(
      (await Scrape.of(watcher)).table('streamspace_watcher_work_items_published_total', { kind: 'session' }),
    )
      .map(([reason, count]) => [reason, count - (triggersBefore[reason] ?? 0)] as const)
      .filter(([, count]) => count > 0);
    console.log(
      `shared-state: work items by trigger during the changes: ${JSON.stringify(Object.fromEntries(triggers))}`,
    );
    const patches = (await applies()) - patchesBefore;
    console.log(
      `shared-state: ${changes} hibernate/wake changes took ${reconciles} reconciles (${(reconciles / changes).toFixed(2)} per change) and ${patches} server-side applies (${(patches / changes).toFixed(2)} per change)`,
    );
    expect(reconciles / changes).toBeLessThanOrEqual(2);
    // Per change: the Deployment's replicas and the Session's status (Pending/Stopping, then the
    // final phase) — nothing re-applied that was already as planned.
    expect(patches / changes).toBeLessThanOrEqual(3);
  });
});

describe('a status planned from an older Session', () => {
  it('is not written: the write is conditional on the version read, and the Session keeps its status', async () => {
    await apply(session('stale', 'user-stale'));
    await waitPhase('stale', 'Running');
    const read = async () =>
      (await k.custom.getNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace,
        plural: 'sessions',
        name: 'stale',
      })) as StoredSession;
    const before = await read();
    // Another writer moves the Session on (as a user's label, or the reaper's lastActivity, would).
    await kubectl(['label', 'session', 'stale', '-n', namespace, 'moved=on']);
    const kubeClient = KubeClient.fromEnvironment();
    const writer = new KubeWriter(
      kubeClient,
      new EventRecorder(kubeClient, { component: 'test', instance: 'shared-state.test' }),
    );
    const older: PlannedStatus = {
      ...(before.status as PlannedStatus),
      phase: 'Failed',
    };
    expect(await writer.writeSessionStatus(before, older)).toBe(false);
    expect((await read()).status?.phase).toBe('Running');
    // Planned from the current version, the same write goes through.
    const current = await read();
    expect(await writer.writeSessionStatus(current, { ...(current.status as PlannedStatus) })).toBe(true);
    kubeClient.close();
  });
});

/** The last message of every key under `filter` (delete markers too), as a reconcile reads them. */
async function lastMessages(filter: string): Promise<{ key: string; operation: string; ttl?: string }[]> {
  const jsm = await jetstreamManager(nc);
  const prefix = `$KV.${BUCKETS.state}.`;
  const found: { key: string; operation: string; ttl?: string }[] = [];
  await new Promise<void>((resolve, reject) => {
    jsm.direct
      .getLastMessagesFor(`KV_${BUCKETS.state}`, {
        multi_last: [`${prefix}${filter}`],
        callback: (done, message) => {
          if (done) return done.err ? reject(done.err) : resolve();
          found.push({
            key: message.subject.slice(prefix.length),
            operation: message.header.get('KV-Operation') || 'PUT',
            ttl: message.header.get('Nats-TTL') || undefined,
          });
        },
      })
      .catch(reject);
  });
  return found;
}

describe('what a deleted object leaves in the shared state', () => {
  it('is a marker the server removes after a while, not one kept for good for every Pod a Session had', async () => {
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(`KV_${BUCKETS.state}`)).config.allow_msg_ttl).toBe(true);
    await apply(session('m1', 'user-m1'));
    await waitPhase('m1', 'Running');
    const [running] = await lastMessages(sessionPodsFilter(namespace, 'm1'));
    expect(running?.operation).toBe('PUT');
    await setState('m1', 'hibernated');
    await waitPhase('m1', 'Hibernated');
    // The pod's key now holds a purge that carries its expiry.
    await eventually(async () =>
      expect(await lastMessages(sessionPodsFilter(namespace, 'm1'))).toEqual([
        { key: running?.key, operation: 'PURGE', ttl: STATE_DELETE_MARKER_TTL },
      ]),
    );
    // Such a marker goes when its time is up (here a second), and the key reads as absent all along.
    const kv = await new Kvm(nc).open(BUCKETS.state);
    const probe = stateKey('service', namespace, 'ss-gone-probe');
    await kv.put(probe, JSON.stringify({ metadata: { name: 'ss-gone-probe', namespace } }));
    await removeStateEntry(kv, probe, '1s');
    expect((await kv.get(probe))?.operation).toBe('PURGE');
    expect(await lastMessages(probe)).toEqual([{ key: probe, operation: 'PURGE', ttl: '1s' }]);
    await eventually(async () => expect(await lastMessages(probe)).toEqual([]), 10_000);
    expect(await kv.get(probe)).toBeNull();
  });

  it('turns on per-message TTLs on a bucket made before them, once', async () => {
    const jsm = await jetstreamManager(nc);
    const older = await new Kvm(nc).create('shared-state-older', { history: 1 });
    expect((await jsm.streams.info('KV_shared-state-older')).config.allow_msg_ttl).toBeFalsy();
    await older.put('k', 'v');
    await allowMessageTtl(jsm, 'KV_shared-state-older');
    await allowMessageTtl(jsm, 'KV_shared-state-older');
    const info = await jsm.streams.info('KV_shared-state-older');
    expect(info.config.allow_msg_ttl).toBe(true);
    expect(info.state.messages).toBe(1);
    await jsm.streams.delete('KV_shared-state-older');
  });
});

describe('the shared state is survivable', () => {
  it('is rebuilt after the bucket is deleted, and the Sessions converge without recreating anything', async () => {
    const names = ['w1', 'w2'];
    for (const name of names) await apply(session(name, `user-${name}`));
    for (const name of names) await waitPhase(name, 'Running');
    const uids = await Promise.all(names.map(deploymentUid));

    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(`KV_${BUCKETS.state}`);
    // The watcher notices, recreates the bucket and writes every object again.
    await eventually(async () => {
      const kv = await new Kvm(nc).open(BUCKETS.state);
      const entry = await kv.get(stateKey('session', namespace, 'w1'));
      expect(entry?.operation).toBe('PUT');
      expect(JSON.parse(entry?.string() ?? '{}').metadata?.name).toBe('w1');
      expect((await watcher.get('/readyz')).status).toBe(200);
    }, 30_000);
    const rebuilds = (await Scrape.of(watcher)).value('streamspace_watcher_state_rebuilds_total', {
      reason: 'bucket-missing',
    });
    expect(rebuilds).toBeGreaterThanOrEqual(1);
    // The watcher holds no child's JSON: it lists the children again and writes their entries.
    await eventually(async () => {
      const kv = await new Kvm(nc).open(BUCKETS.state);
      for (const name of names)
        for (const kind of ['deployment', 'service'] as const) {
          const entry = await kv.get(stateKey(kind, namespace, sessionChildName(name)));
          expect(entry?.operation).toBe('PUT');
          expect(JSON.parse(entry?.string() ?? '{}').metadata?.name).toBe(sessionChildName(name));
        }
    }, 30_000);
    const refilled = (await Scrape.of(watcher)).value('streamspace_watcher_state_refilled_total', {
      kind: 'deployment',
    });
    expect(refilled).toBeGreaterThanOrEqual(names.length);
    // Triggers read while the bucket was gone found nothing: everything is announced again.
    await eventually(async () =>
      expect(
        (await Scrape.of(watcher)).value('streamspace_watcher_resyncs_total', { trigger: 'state-lost' }),
      ).toBeGreaterThanOrEqual(1),
    );

    // Work goes on from the rebuilt state, and nothing was created again.
    await setState('w1', 'hibernated');
    await waitPhase('w1', 'Hibernated');
    await setState('w1', 'running');
    await waitPhase('w1', 'Running');
    await waitPhase('w2', 'Running');
    expect(await Promise.all(names.map(deploymentUid))).toEqual(uids);
  });

  it('reads a corrupt entry as absent, counts it, and the watcher repairs it with its next write', async () => {
    await apply(session('c1', 'user-c1'));
    await waitPhase('c1', 'Running');
    const uid = await deploymentUid('c1');
    const kv = await new Kvm(nc).open(BUCKETS.state);
    const key = stateKey('session', namespace, 'c1');
    await kv.put(key, new TextEncoder().encode('{"not": "a session"'));
    const corruptBefore = await reconcilerSum('streamspace_reconciler_state_corrupt_entries_total');

    // A work item for it: the reconcile reads the corrupt entry, reports it and changes nothing.
    const work = JSON.stringify({ kind: 'session', namespace, name: 'c1', reason: 'test' });
    await jetstream(nc).publish(subjects.work('session', namespace, 'c1'), work);
    await eventually(async () =>
      expect(await reconcilerSum('streamspace_reconciler_state_corrupt_entries_total')).toBeGreaterThan(
        corruptBefore,
      ),
    );

    // Any change of the Session makes the watcher write it again.
    const annotated = await kubectl([
      'annotate',
      'session',
      'c1',
      '-n',
      namespace,
      'example.com/touched=yes',
    ]);
    expect(annotated.code, annotated.stderr).toBe(0);
    await eventually(async () => {
      const entry = await kv.get(key);
      expect(JSON.parse(entry?.string() ?? '{}').metadata?.name).toBe('c1');
    });
    await setState('c1', 'hibernated');
    await waitPhase('c1', 'Hibernated');
    expect(await deploymentUid('c1')).toBe(uid);
  });
});
