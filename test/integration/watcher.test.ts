import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import {
  BUCKETS,
  type ChangeEvent,
  LABELS,
  MANAGED_BY,
  podStateKey,
  STREAMS,
  stateKey,
  subjects,
  type WorkItem,
} from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionObject, templateObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  freePort,
  installCrds,
  kube,
  repo,
  ServiceProcess,
} from './harness.js';
import { parseMetrics } from './metrics-scrape.js';

const GROUP = 'stream.streamspace.io';
const VERSION = 'v1alpha1';

/** Waits for a colleague's CRDs if they are not in the tree yet, then installs them. */
async function installCrdsWhenPresent(): Promise<void> {
  await eventually(
    () => {
      const files = existsSync(`${repo}/crds`)
        ? readdirSync(`${repo}/crds`).filter((f) => f.endsWith('.yaml'))
        : [];
      if (files.length < 2) throw new Error('crds/*.yaml are not there yet');
    },
    120_000,
    1_000,
  );
  await installCrds();
}

const { custom, apps, core } = kube();

function template(name: string, displayName = name) {
  return templateObject(undefined, name, { displayName, ports: undefined, vnc: { port: 3000 } });
}

function session(name: string, templateName: string) {
  return sessionObject(undefined, name, `${name}@example.com`, templateName, { state: undefined });
}

async function create(
  namespace: string,
  plural: 'sessions' | 'templates',
  body: object,
): Promise<{ uid: string; rv: string }> {
  const created = (await custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural,
    body,
  })) as {
    metadata: { uid: string; resourceVersion: string };
  };
  return { uid: created.metadata.uid, rv: created.metadata.resourceVersion };
}

/** A JSON patch (the client's default patch type); returns the new resourceVersion. */
async function jsonPatch(
  namespace: string,
  plural: 'sessions' | 'templates',
  name: string,
  body: object[],
  subresource: 'status' | undefined = undefined,
): Promise<string> {
  const request = { group: GROUP, version: VERSION, namespace, plural, name, body };
  const patched = (await (subresource === 'status'
    ? custom.patchNamespacedCustomObjectStatus(request)
    : custom.patchNamespacedCustomObject(request))) as { metadata: { resourceVersion: string } };
  return patched.metadata.resourceVersion;
}

/** Every change event stored in STREAMSPACE_EVENTS on `subject`, read with an ordered consumer. */
async function storedEvents(
  js: JetStreamClient,
  jsm: JetStreamManager,
  subject: string,
): Promise<ChangeEvent[]> {
  const info = await jsm.streams.info(STREAMS.events, { subjects_filter: subject });
  const count = info.state.subjects?.[subject] ?? 0;
  if (count === 0) return [];
  const consumer = await js.consumers.get(STREAMS.events, { filter_subjects: [subject] });
  const events: ChangeEvent[] = [];
  const messages = await consumer.fetch({ max_messages: count, expires: 5_000 });
  for await (const message of messages) {
    events.push(message.json<ChangeEvent>());
    if (message.info.pending === 0) break;
  }
  return events;
}

interface SeenWork {
  subject: string;
  msgID: string;
  item: WorkItem;
}

/** Every work item published on a namespace's subjects, seen with a plain subscription (duplicates included). */
function watchWork(nc: NatsConnection, namespace: string): { seen: SeenWork[]; sub: Subscription } {
  const seen: SeenWork[] = [];
  // streamspace.work.<partition>.<kind>.<namespace>.<name>
  const sub = nc.subscribe(`streamspace.work.*.*.${namespace}.>`, {
    callback: (error, message) => {
      if (error) return;
      seen.push({
        subject: message.subject,
        msgID: message.headers?.get('Nats-Msg-Id') ?? '',
        item: message.json<WorkItem>(),
      });
    },
  });
  return { seen, sub };
}

/** The value of one sample of a Prometheus text exposition, or 0 when absent. */
async function metric(
  watcher: ServiceProcess,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const { body } = await watcher.get('/metrics');
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (wanted.every((pair) => line.includes(pair))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

async function sumMetric(
  watchers: ServiceProcess[],
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  let total = 0;
  for (const watcher of watchers) total += await metric(watcher, name, labels);
  return total;
}

let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
const namespaces: string[] = [];
const processes: ServiceProcess[] = [];

function startWatcher(env: Record<string, string>): ServiceProcess {
  const watcher = new ServiceProcess('watcher', { LOG_LEVEL: 'info', ...env });
  processes.push(watcher);
  return watcher;
}

beforeAll(async () => {
  await installCrdsWhenPresent();
  nc = await connect({ servers: process.env.NATS_URL as string });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill()));
  await nc?.close();
  await Promise.all(namespaces.map((ns) => deleteNamespace(ns)));
});

describe('watcher against the real API server and NATS', () => {
  let ns: string;
  let watcher: ServiceProcess;
  let work: ReturnType<typeof watchWork>;

  beforeAll(async () => {
    ns = await createNamespace('watcher');
    namespaces.push(ns);
    work = watchWork(nc, ns);
    // Short server-side watch timeouts, so this file also sees watches end and start again.
    // Deployments' change events too (EVENT_KINDS; Pods' stay off, as by default).
    watcher = startWatcher({
      WATCH_NAMESPACE: ns,
      WATCH_TIMEOUT: '3s',
      RESYNC_INTERVAL: '1h',
      EVENT_KINDS: 'session,template,deployment',
    });
    await watcher.waitReady(30_000);
  });

  afterAll(() => work?.sub.unsubscribe());

  it('is ready once every kind has been listed, and says so in /readyz and /metrics', async () => {
    const { status, body } = await watcher.get('/readyz');
    expect(status).toBe(200);
    const checks = JSON.parse(body).checks as Record<string, { ok: boolean }>;
    for (const check of [
      'nats',
      'jetstream',
      'watch:sessions',
      'watch:templates',
      'watch:deployments',
      'watch:pods',
    ]) {
      expect(checks[check]?.ok, check).toBe(true);
    }
    expect(await metric(watcher, 'streamspace_watcher_ready')).toBe(1);
    // Label combinations start at zero.
    const { body: metrics } = await watcher.get('/metrics');
    expect(metrics).toContain('streamspace_watcher_watch_restarts_total{kind="pod",reason="gone"} 0');
    expect(metrics).toContain(
      'streamspace_watcher_work_items_published_total{kind="session",reason="pod-deleted"} 0',
    );
    // Ready means the API server answered every watch: one per kind here, each asked and answered.
    const samples = parseMetrics(metrics);
    const byKind = (name: string) =>
      Object.fromEntries(samples.filter((s) => s.name === name).map((s) => [s.labels.kind, s.value]));
    const requested = byKind('streamspace_watcher_watches_requested');
    expect(Object.keys(requested).sort()).toEqual([
      'deployment',
      'ingress',
      'networkpolicy',
      'pod',
      'pvc',
      'service',
      'session',
      'template',
    ]);
    expect(Object.values(requested).every((n) => n === 1)).toBe(true);
    expect(byKind('streamspace_watcher_watches_answered')).toEqual(requested);
  });

  it('publishes a new Session as a change event and a work item on its subjects', async () => {
    await create(ns, 'templates', template('firefox'));
    const { uid, rv } = await create(ns, 'sessions', session('alice', 'firefox'));
    const subject = subjects.event('session', ns, 'alice');
    const events = await eventually(async () => {
      const found = await storedEvents(js, jsm, subject);
      if (!found.some((e) => e.resourceVersion === rv)) throw new Error(`no event for rv ${rv} yet`);
      return found;
    });
    const added = events.find((e) => e.resourceVersion === rv);
    expect(added).toMatchObject({
      type: 'added',
      kind: 'session',
      namespace: ns,
      name: 'alice',
      uid,
      generation: 1,
    });
    expect(added?.object).toMatchObject({ kind: 'Session', spec: { template: 'firefox' } });
    await eventually(() => {
      const item = work.seen.find((w) => w.subject === subjects.work('session', ns, 'alice'));
      expect(item?.item).toEqual({ kind: 'session', namespace: ns, name: 'alice', reason: 'session-added' });
      expect(item?.msgID).toBe(`${uid}:${rv}:present>session/${ns}/alice`);
    });
  });

  it('stores a child Deployment or Pod in the shared state, and wakes its Session only for changes that matter', async () => {
    const labels = { [LABELS.managedBy]: MANAGED_BY, [LABELS.session]: 'alice' };
    const state = await new Kvm(nc).open(BUCKETS.state);
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: 'ss-alice', labels },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: { containers: [{ name: 'desktop', image: 'example.invalid/desktop:1' }] },
          },
        },
      },
    });
    const workFor = (reason: string) =>
      work.seen.filter(
        (w) => w.subject === subjects.work('session', ns, 'alice') && w.item.reason === reason,
      );
    // Stored (before anything it triggers), and announced as an event; its creation is the
    // reconciler's own doing, so it wakes nobody.
    await eventually(async () => {
      const entry = await state.get(stateKey('deployment', ns, 'ss-alice'));
      expect(JSON.parse(entry?.string() ?? '{}').spec?.replicas).toBe(1);
    });
    // What the watcher keeps of a child is a digest: its JSON is in the shared state only.
    expect(await metric(watcher, 'streamspace_watcher_cached_object_bytes', { kind: 'deployment' })).toBe(0);
    // kube-controller-manager rewrites the new Deployment's status: not kept (nobody reads it), so
    // those updates leave the kept object as it was and are neither stored nor published.
    await eventually(async () =>
      expect(
        await metric(watcher, 'streamspace_watcher_unchanged_changes_total', { kind: 'deployment' }),
      ).toBeGreaterThan(0),
    );
    const stored = JSON.parse((await state.get(stateKey('deployment', ns, 'ss-alice')))?.string() ?? '{}');
    expect(stored).not.toHaveProperty('status');
    expect(stored.spec?.replicas).toBe(1);

    await apps.patchNamespacedDeployment({
      namespace: ns,
      name: 'ss-alice',
      // A spec change that is not what Session alice asks for (as `kubectl scale` makes): drift
      // the reconciler must repair. Status-only updates, and a scale to what the Session asks for
      // (the echo of the reconciler's own hibernate or wake), are not routed.
      body: [{ op: 'replace', path: '/spec/replicas', value: 2 }],
    });
    await eventually(() => expect(workFor('deployment-modified').length).toBeGreaterThan(0));
    await eventually(async () => {
      const events = await storedEvents(js, jsm, subjects.event('deployment', ns, 'ss-alice'));
      expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['added', 'modified']));
    });
    expect(workFor('deployment-added')).toEqual([]);

    // Pods are admitted only once the namespace's default ServiceAccount exists.
    await eventually(() => core.readNamespacedServiceAccount({ namespace: ns, name: 'default' }));
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'ss-alice-pod', labels },
        spec: { containers: [{ name: 'desktop', image: 'example.invalid/desktop:1' }] },
      },
    });
    // KWOK runs it: becoming Ready is what wakes the Session.
    await eventually(
      () => expect([...workFor('pod-added'), ...workFor('pod-modified')].length).toBeGreaterThan(0),
      30_000,
    );
    // Waited for, not read once: the work item above may be for a pod of the ReplicaSet that
    // kube-controller-manager makes for ss-alice (same labels), before ours was seen.
    const podKey = podStateKey(ns, 'alice', 'ss-alice-pod');
    await eventually(async () => expect((await state.get(podKey))?.operation).toBe('PUT'));
    // Unlabelled objects are not the watcher's business.
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'someone-elses' },
        spec: { containers: [{ name: 'c', image: 'example.invalid/x:1' }] },
      },
    });
    await core.deleteNamespacedPod({ namespace: ns, name: 'ss-alice-pod', gracePeriodSeconds: 0 });
    await eventually(() =>
      expect(workFor('pod-modified').length + workFor('pod-deleted').length > 1).toBe(true),
    );
    // Deleted objects leave the shared state.
    await eventually(async () => expect((await state.get(podKey))?.operation).not.toBe('PUT'));
    expect(await storedEvents(js, jsm, subjects.event('pod', ns, 'someone-elses'))).toEqual([]);
    // Pods are not in EVENT_KINDS: stored and routed above, never published as change events.
    expect(await storedEvents(js, jsm, subjects.event('pod', ns, 'ss-alice-pod'))).toEqual([]);
    expect(await metric(watcher, 'streamspace_watcher_events_published_total', { kind: 'pod', type: 'added' })).toBe(0);
  });

  it('fans a Template change out to the Template and every Session that uses it, and no other', async () => {
    await create(ns, 'templates', template('gimp'));
    await create(ns, 'sessions', session('bob', 'gimp'));
    await create(ns, 'sessions', session('carol', 'gimp'));
    await create(ns, 'sessions', session('dave', 'firefox'));
    // The watcher must have indexed the Sessions before the Template changes.
    await eventually(() => {
      for (const name of ['bob', 'carol', 'dave']) {
        expect(work.seen.some((w) => w.subject === subjects.work('session', ns, name))).toBe(true);
      }
    });
    const rv = await jsonPatch(ns, 'templates', 'gimp', [
      { op: 'replace', path: '/spec/displayName', value: 'GIMP 3' },
    ]);
    const triggeredBy = (version: string) =>
      work.seen
        .filter((w) => w.item.reason === 'template-modified' && w.msgID.includes(`:${version}:`))
        .map((w) => `${w.item.kind}/${w.item.name}`)
        // A publish retried after a lost acknowledgement is seen twice here; JetStream kept one.
        .filter((key, i, all) => all.indexOf(key) === i)
        .sort();
    await eventually(() =>
      expect(triggeredBy(rv)).toEqual(['session/bob', 'session/carol', 'template/gimp']),
    );

    // A status-only update (the reconciler saying whether the template is valid) keeps the
    // generation: the Template is looked at again, its Sessions are not all re-triggered.
    const statusRv = await jsonPatch(
      ns,
      'templates',
      'gimp',
      [{ op: 'add', path: '/status', value: { valid: true } }],
      'status',
    );
    await eventually(() => expect(triggeredBy(statusRv)).toEqual(['template/gimp']));
    await new Promise((r) => setTimeout(r, 500));
    expect(triggeredBy(statusRv)).toEqual(['template/gimp']);
  });

  it('wakes a Session waiting for a missing Template when the Template is created', async () => {
    await create(ns, 'sessions', session('heidi', 'vscode'));
    await eventually(() =>
      expect(work.seen.some((w) => w.subject === subjects.work('session', ns, 'heidi'))).toBe(true),
    );
    const { rv } = await create(ns, 'templates', template('vscode'));
    await eventually(() => {
      const item = work.seen.find(
        (w) => w.subject === subjects.work('session', ns, 'heidi') && w.msgID.includes(`:${rv}:`),
      );
      expect(item?.item.reason).toBe('template-added');
    });
  });

  it('keeps working across watches that the API server ends, and stops gracefully on SIGTERM', async () => {
    await eventually(async () => {
      expect(
        await metric(watcher, 'streamspace_watcher_watch_restarts_total', {
          kind: 'session',
          reason: 'closed',
        }),
      ).toBeGreaterThan(0);
    }, 15_000);
    const { rv } = await create(ns, 'sessions', session('erin', 'firefox'));
    await eventually(async () => {
      const events = await storedEvents(js, jsm, subjects.event('session', ns, 'erin'));
      expect(events.map((e) => e.resourceVersion)).toContain(rv);
    });
    expect(
      await metric(watcher, 'streamspace_watcher_watch_restarts_total', { kind: 'session', reason: 'error' }),
    ).toBe(0);
    expect(await watcher.stop()).toBe(0);
    expect(watcher.logs.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
  });
});

describe('two watchers', () => {
  it('store each change once: one event per resourceVersion and one work item per trigger', async () => {
    const ns = await createNamespace('watcher-dup');
    namespaces.push(ns);
    const work = watchWork(nc, ns);
    try {
      const watchers = [startWatcher({ WATCH_NAMESPACE: ns }), startWatcher({ WATCH_NAMESPACE: ns })];
      await Promise.all(watchers.map((w) => w.waitReady(30_000)));
      await create(ns, 'templates', template('firefox'));
      const { uid, rv } = await create(ns, 'sessions', session('frank', 'firefox'));
      const workSubject = subjects.work('session', ns, 'frank');

      // Both watchers published the same work item under the same id (a publish retried after a
      // lost acknowledgement would add a third sighting, with the same id)…
      await eventually(() => {
        const sent = work.seen.filter((w) => w.subject === workSubject && w.item.reason === 'session-added');
        expect(sent.length).toBeGreaterThanOrEqual(2);
        expect(new Set(sent.map((w) => w.msgID))).toEqual(
          new Set([`${uid}:${rv}:present>session/${ns}/frank`]),
        );
      });
      // …and JetStream stored it once: one watcher counts it as published, the other as a duplicate.
      await eventually(async () => {
        expect(
          await sumMetric(watchers, 'streamspace_watcher_work_items_published_total', {
            kind: 'session',
            reason: 'session-added',
          }),
        ).toBe(1);
        expect(
          await sumMetric(watchers, 'streamspace_watcher_events_published_total', {
            kind: 'session',
            type: 'added',
          }),
        ).toBe(1);
        expect(
          await sumMetric(watchers, 'streamspace_watcher_publish_duplicates_total', { stream: 'work' }),
        ).toBeGreaterThanOrEqual(1);
      });
      const eventSubject = subjects.event('session', ns, 'frank');
      const created = (await storedEvents(js, jsm, eventSubject)).filter((e) => e.resourceVersion === rv);
      expect(created).toHaveLength(1);

      const rv2 = await jsonPatch(ns, 'sessions', 'frank', [
        { op: 'replace', path: '/spec/state', value: 'hibernated' },
      ]);
      await eventually(() => {
        const sent = work.seen.filter((w) => w.subject === workSubject && w.msgID.includes(`:${rv2}:`));
        expect(sent.length).toBeGreaterThanOrEqual(2);
        expect(new Set(sent.map((w) => w.item.reason))).toEqual(new Set(['session-modified']));
        expect(new Set(sent.map((w) => w.msgID)).size).toBe(1);
      });
      await eventually(async () => {
        expect(
          await sumMetric(watchers, 'streamspace_watcher_publish_duplicates_total', { stream: 'events' }),
        ).toBeGreaterThanOrEqual(2);
        expect(
          await sumMetric(watchers, 'streamspace_watcher_publish_duplicates_total', { stream: 'work' }),
        ).toBeGreaterThanOrEqual(2);
      });
      const modified = (await storedEvents(js, jsm, eventSubject)).filter((e) => e.resourceVersion === rv2);
      expect(modified.map((e) => e.type)).toEqual(['modified']);
    } finally {
      work.sub.unsubscribe();
    }
  });
});

describe('watchers of different namespaces', () => {
  it('share the state bucket: one that starts (and rebuilds its part) leaves the others\' entries alone', async () => {
    const nsA = await createNamespace('watcher-ns-a');
    const nsB = await createNamespace('watcher-ns-b');
    namespaces.push(nsA, nsB);
    const state = await new Kvm(nc).open(BUCKETS.state);
    const watcherA = startWatcher({ WATCH_NAMESPACE: nsA });
    await watcherA.waitReady(30_000);
    await create(nsA, 'sessions', session('erin', 'firefox'));
    const key = stateKey('session', nsA, 'erin');
    await eventually(async () => expect((await state.get(key))?.operation).toBe('PUT'));
    // B's first rebuild of the state runs before it reports ready, and deletes the entries of its
    // namespaces that no watch of its holds; A's namespace is not B's to clean.
    const watcherB = startWatcher({ WATCH_NAMESPACE: nsB });
    await watcherB.waitReady(30_000);
    expect((await state.get(key))?.operation).toBe('PUT');
    expect(await watcherB.stop()).toBe(0);
    expect(await watcherA.stop()).toBe(0);
  });
});

describe('a periodic resync', () => {
  it('repairs an overwritten Session entry and a missing child entry, and rewrites no intact entry', async () => {
    const nsR = await createNamespace('watcher-resync');
    namespaces.push(nsR);
    const state = await new Kvm(nc).open(BUCKETS.state);
    const watcher = startWatcher({ WATCH_NAMESPACE: nsR, RESYNC_INTERVAL: '3s' });
    await watcher.waitReady(30_000);
    await create(nsR, 'sessions', session('frank', 'firefox'));
    const labels = { [LABELS.managedBy]: MANAGED_BY, [LABELS.session]: 'frank' };
    await core.createNamespacedService({
      namespace: nsR,
      body: { metadata: { name: 'ss-frank', labels }, spec: { ports: [{ port: 3000 }] } },
    });
    const sessionKey = stateKey('session', nsR, 'frank');
    const serviceKey = stateKey('service', nsR, 'ss-frank');
    await eventually(async () => {
      expect((await state.get(sessionKey))?.operation).toBe('PUT');
      expect((await state.get(serviceKey))?.operation).toBe('PUT');
    });
    const sessionRevision = (await state.get(sessionKey))?.revision ?? 0;
    const serviceRevision = (await state.get(serviceKey))?.revision;
    // Two more rebuilds: at least one started after both entries were stored.
    const rebuilds = await metric(watcher, 'streamspace_watcher_state_rebuilds_total', { reason: 'resync' });
    await eventually(
      async () =>
        expect(
          await metric(watcher, 'streamspace_watcher_state_rebuilds_total', { reason: 'resync' }),
        ).toBeGreaterThanOrEqual(rebuilds + 2),
      30_000,
    );
    // Still what the watcher wrote: neither entry was written again.
    expect((await state.get(sessionKey))?.revision).toBe(sessionRevision);
    expect((await state.get(serviceKey))?.revision).toBe(serviceRevision);
    // An entry someone else overwrote (here with something that is no Session) is written again.
    const overwritten = await state.put(sessionKey, new TextEncoder().encode('{"not": "a session"'));
    await eventually(async () => {
      const entry = await state.get(sessionKey);
      expect(entry?.revision).toBeGreaterThan(overwritten);
      expect(JSON.parse(entry?.string() ?? '{}').metadata?.name).toBe('frank');
    }, 30_000);
    // An entry that went missing (nothing the watches saw) is written again by the next resync.
    await state.delete(serviceKey);
    await eventually(async () => expect((await state.get(serviceKey))?.operation).toBe('PUT'), 30_000);
    expect(JSON.parse((await state.get(serviceKey))?.string() ?? '{}').metadata?.name).toBe('ss-frank');
    expect(await watcher.stop()).toBe(0);
  });
});

describe('NATS outage', () => {
  let server: ChildProcess | undefined;
  let storeDir: string;
  let port: number;

  function startNats(): Promise<void> {
    const bin = execFileSync(`${repo}/scripts/toolchain`, ['path', 'nats-server'], {
      encoding: 'utf8',
    }).trim();
    server = spawn(`${bin}/nats-server`, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], {
      stdio: 'ignore',
    });
    return eventually(async () => {
      const probe = await connect({ servers: `nats://127.0.0.1:${port}`, reconnect: false });
      await probe.close();
    }, 15_000);
  }

  async function stopNats(): Promise<void> {
    const child = server;
    server = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  beforeAll(async () => {
    storeDir = mkdtempSync(join(tmpdir(), 'watcher-nats-'));
    port = await freePort();
  });

  afterAll(async () => {
    await stopNats();
    rmSync(storeDir, { recursive: true, force: true });
  });

  it('waits not-ready while NATS is down, loses nothing it queued, and resyncs when NATS is back', async () => {
    const ns = await createNamespace('watcher-nats');
    namespaces.push(ns);
    await startNats();
    const watcher = startWatcher({ WATCH_NAMESPACE: ns, NATS_URL: `nats://127.0.0.1:${port}` });
    await watcher.waitReady(30_000);

    await stopNats();
    await eventually(async () => {
      const { status, body } = await watcher.get('/readyz');
      expect(status).toBe(503);
      expect(body).toMatch(/NATS/);
    }, 15_000);
    await create(ns, 'templates', template('firefox'));
    const { rv } = await create(ns, 'sessions', session('grace', 'firefox'));
    // The change is held, not lost: its write to the shared state waits for NATS, and what it
    // triggers waits behind it.
    await eventually(
      async () => expect(await metric(watcher, 'streamspace_watcher_state_queue_depth')).toBeGreaterThan(0),
      15_000,
    );
    expect(watcher.running).toBe(true);
    expect((await watcher.get('/healthz')).status).toBe(200);

    await startNats();
    await watcher.waitReady(30_000);
    const own = await connect({ servers: `nats://127.0.0.1:${port}` });
    try {
      const ownJs = jetstream(own);
      const ownJsm = await jetstreamManager(own);
      await eventually(async () => {
        const events = await storedEvents(ownJs, ownJsm, subjects.event('session', ns, 'grace'));
        expect(events.filter((e) => e.resourceVersion === rv).map((e) => e.type)).toContain('added');
        expect(events.some((e) => e.type === 'resync')).toBe(true);
      }, 20_000);
      expect(
        await metric(watcher, 'streamspace_watcher_resyncs_total', { trigger: 'reconnect' }),
      ).toBeGreaterThanOrEqual(1);
      const item = await ownJsm.streams.getMessage(STREAMS.work, {
        last_by_subj: subjects.work('session', ns, 'grace'),
      });
      expect(item?.json<WorkItem>()).toMatchObject({ kind: 'session', namespace: ns, name: 'grace' });
    } finally {
      await own.close();
    }
    expect(await watcher.stop()).toBe(0);
  });
});
