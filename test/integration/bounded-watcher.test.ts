import { type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  ANNOTATIONS,
  API_GROUP,
  API_VERSION,
  BUCKETS,
  type ChangeEvent,
  DEFAULT_STREAM_LIMITS,
  EVENT_ENVELOPE_BYTES,
  STREAMS,
  sessionChildName,
  streamConfigs,
  subjects,
} from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionObject, templateObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  deployedNodeOptions,
  eventually,
  installCrds,
  kube,
  ServiceProcess,
} from './harness.js';
import { Scrape } from './metrics-scrape.js';
import { type PrivateNats, startPrivateNats } from './private-nats.js';

/**
 * One tenant's huge annotations must not reach the watcher's memory or the streams. A handful of
 * Sessions is enough: the bound is per object (each kept and published object is at most
 * MAX_OBJECT_BYTES, see trimObject's property test), so what is shown for eight holds for any
 * number — memory and stream bytes grow with the number of objects, never with their size.
 */

const k = kube();
const KiB = 1024;
const SESSIONS = 8;
const MAX_OBJECT_BYTES = 16 * KiB;
const BLOB = 'x'.repeat(200 * KiB);
let namespace: string;
let nats: PrivateNats;
let nc: NatsConnection;
let jsm: JetStreamManager;
let watcher: ServiceProcess;
let reconciler: ServiceProcess;

async function metric(service: ServiceProcess, name: string, labels: Record<string, string> = {}) {
  return (await Scrape.of(service)).sum(name, labels);
}

/** Every message the events stream holds about this namespace's Sessions, with its size. */
async function sessionEvents(): Promise<{ bytes: number; event: ChangeEvent }[]> {
  const consumer = await jetstream(nc).consumers.get(STREAMS.events, {
    filter_subjects: [subjects.event('session', namespace, '*')],
  });
  const found: { bytes: number; event: ChangeEvent }[] = [];
  let pending = (await consumer.info()).num_pending;
  while (pending > 0) {
    const message = await consumer.next({ expires: 2_000 });
    if (!message) break;
    found.push({ bytes: message.data.length, event: message.json<ChangeEvent>() });
    pending = message.info.pending;
  }
  return found;
}

async function createSession(name: string, annotations: Record<string, string>): Promise<void> {
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
      { state: undefined },
      { annotations },
    ),
  });
}

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('bounds');
  nats = await startPrivateNats();
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
  // The streams and the activity bucket as an older release left them: limited only by age.
  for (const config of streamConfigs()) {
    const { max_bytes: _bytes, max_msg_size: _size, ...unbounded } = config;
    await jsm.streams.add(unbounded);
  }
  await new Kvm(nc).create(BUCKETS.activity, { history: 1 });
  const env = { NATS_URL: nats.url, WATCH_NAMESPACE: namespace };
  watcher = new ServiceProcess('watcher', {
    ...env,
    // The heap the chart deploys it with (64 MB), so what is measured is what runs.
    NODE_OPTIONS: deployedNodeOptions(),
    MAX_OBJECT_BYTES: String(MAX_OBJECT_BYTES),
    RESYNC_INTERVAL: '4s',
  });
  reconciler = new ServiceProcess('reconciler', { ...env, INGRESS_DOMAIN: 'desktops.test' });
  await Promise.all([watcher.waitReady(), reconciler.waitReady()]);
  await k.custom.createNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'templates',
    body: templateObject(undefined, 'firefox', {
      displayName: 'Firefox',
      ports: undefined,
      vnc: { port: 3000 },
    }),
  });
});

afterAll(async () => {
  await Promise.all([watcher, reconciler].filter(Boolean).map((s) => s.stop()));
  await nc?.close();
  await nats?.stop();
  await deleteNamespace(namespace);
});

describe('the watcher, bounded per object', () => {
  it('gives the streams that exist, and the lock bucket, their size limits', async () => {
    const limits = async (name: string) => {
      const { config } = await jsm.streams.info(name);
      return { max_bytes: config.max_bytes, max_msg_size: config.max_msg_size };
    };
    expect(await limits(STREAMS.events)).toEqual({
      max_bytes: DEFAULT_STREAM_LIMITS.eventsMaxBytes,
      max_msg_size: MAX_OBJECT_BYTES + EVENT_ENVELOPE_BYTES,
    });
    expect(await limits(STREAMS.work)).toEqual({
      max_bytes: DEFAULT_STREAM_LIMITS.workMaxBytes,
      max_msg_size: DEFAULT_STREAM_LIMITS.workMaxMsgSize,
    });
    expect(await limits(STREAMS.deadLetter)).toEqual({
      max_bytes: DEFAULT_STREAM_LIMITS.deadLetterMaxBytes,
      max_msg_size: DEFAULT_STREAM_LIMITS.deadLetterMaxMsgSize,
    });
    expect(await limits(`KV_${BUCKETS.activity}`)).toEqual({
      max_bytes: DEFAULT_STREAM_LIMITS.activityBucketMaxBytes,
      max_msg_size: DEFAULT_STREAM_LIMITS.bucketMaxValueSize,
    });
  });

  it('keeps Sessions with 200 KiB annotations out of its memory and the events stream, through changes and resyncs', async () => {
    const names = Array.from({ length: SESSIONS }, (_, i) => `big-${i}`);
    for (const name of names)
      await createSession(name, { 'example.com/blob': BLOB, [ANNOTATIONS.stateChangedBy]: 'someone' });
    // A second 200 KiB version of each, so every Session is announced as added and modified.
    for (const name of names)
      await k.custom.patchNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace,
        plural: 'sessions',
        name,
        body: [{ op: 'replace', path: '/metadata/annotations/example.com~1blob', value: `y${BLOB}` }],
      });
    const events = await eventually(async () => {
      const found = await sessionEvents();
      for (const name of names)
        for (const type of ['added', 'modified', 'resync'])
          expect(
            found.some((f) => f.event.name === name && f.event.type === type),
            `${type} event of ${name}`,
          ).toBe(true);
      return found;
    }, 60_000);

    for (const { bytes, event } of events) {
      expect(bytes).toBeLessThanOrEqual(MAX_OBJECT_BYTES + EVENT_ENVELOPE_BYTES);
      const metadata = event.object.metadata as Record<string, unknown>;
      // What a component reads stays; the blob and the bookkeeping are gone.
      expect(metadata.annotations).toEqual({ [ANNOTATIONS.stateChangedBy]: 'someone' });
      expect(metadata).not.toHaveProperty('managedFields');
    }
    const written = SESSIONS * 2 * BLOB.length;
    const { state } = await jsm.streams.info(STREAMS.events);
    // Everything the stream holds (Templates, Deployments, Pods, Sessions, every resync) is less
    // than a tenth of the annotations written: with whole objects, each Session event alone
    // would carry 200 KiB.
    expect(state.bytes).toBeLessThan(written / 10);

    const cached = await metric(watcher, 'streamspace_watcher_cached_object_bytes', { kind: 'session' });
    expect(cached).toBeGreaterThan(0);
    expect(cached).toBeLessThanOrEqual(SESSIONS * 4 * KiB);
    const heap = await metric(watcher, 'nodejs_heap_size_used_bytes');
    const rss = await metric(watcher, 'process_resident_memory_bytes');
    // The deployed heap limit is 64 MB; whole objects would keep 1.6 MB per 8 Sessions here.
    expect(heap).toBeLessThan(48 * 1024 * KiB);
    console.info(
      `bounded-watcher: ${SESSIONS} Sessions x 2 versions x 200 KiB written (${(written / 1048576).toFixed(1)} MiB); ` +
        `events stream ${state.bytes} bytes in ${state.messages} messages; watcher cache (sessions) ${cached} bytes; ` +
        `watcher heap used ${(heap / 1048576).toFixed(1)} MiB, RSS ${(rss / 1048576).toFixed(1)} MiB`,
    );
  });

  it('cuts an object still over the bound to its spec and status, counts it, and still reconciles it', async () => {
    // A kept annotation (one the metrics service reads) padded past the bound.
    await createSession('padded', { [ANNOTATIONS.stateChangeReason]: 'z'.repeat(20 * KiB) });
    await eventually(async () => {
      expect(
        await metric(watcher, 'streamspace_watcher_oversize_objects_total', {
          kind: 'session',
          level: 'reduced',
        }),
      ).toBeGreaterThanOrEqual(1);
      const events = (await sessionEvents()).filter((f) => f.event.name === 'padded');
      expect(events.length).toBeGreaterThan(0);
      for (const { bytes, event } of events) {
        expect(bytes).toBeLessThanOrEqual(MAX_OBJECT_BYTES + EVENT_ENVELOPE_BYTES);
        expect(event.object.metadata).not.toHaveProperty('annotations');
        expect(event.object.spec).toMatchObject({ template: 'firefox', user: 'padded@example.com' });
      }
    });
    // Still reconciled: its desktop is created and its status written.
    await eventually(async () => {
      const deployment = await k.apps.readNamespacedDeployment({
        namespace,
        name: sessionChildName('padded'),
      });
      expect(deployment.spec?.replicas).toBe(1);
      const session = (await k.custom.getNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace,
        plural: 'sessions',
        name: 'padded',
      })) as { status?: { phase?: string } };
      expect(['Pending', 'Running']).toContain(session.status?.phase);
    }, 60_000);
  });
});
