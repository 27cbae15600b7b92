import { JetStreamApiError, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { type NatsConnection, errors as natsErrors } from '@nats-io/nats-core';
import {
  connectNats,
  chooseReplicas,
  declareTopology,
  describeNamespaces,
  entryRevisions,
  formatDuration,
  BUCKETS,
  openStateBucket,
  removeStateEntry,
  ReplicasRefusedError,
  type RunningService,
  retryForever,
  type ServiceConfig,
  type ServiceContext,
  type StateKind,
  sleep,
  stateKindFilter,
  trimObject,
} from '@streamspace/shared';
import {
  type CacheChange,
  type CachedIdentity,
  type CacheRetention,
  Informer,
  type KubeObject,
  kubeClientFromConfig,
  kubeWatchTransport,
  parseKubeObject,
  runInformers,
  Slots,
  type WatchTransport,
} from '@streamspace/kube';
import {
  type ChildEntry,
  type ChildKind,
  childRetention,
  isChildKind,
  keptUnchanged,
  SHARED_NAME_KINDS,
  type SharedNames,
} from './child-entry.js';
import { nameFilterTransport } from './name-filter-transport.js';
import { PACKED_SESSIONS, sessionState } from './packed-session.js';
import { Publisher } from './publisher.js';
import { ResyncPacer } from './resync-pacer.js';
import { SendBatch } from './send-batch.js';
import { nextResyncAt, type ResyncTrigger, resyncName } from './resync-schedule.js';
import { SessionIndex, sessionTemplateName } from './session-index.js';
import { KEEP_ENTRY, StateStore } from './state-store.js';
import { WATCHED_RESOURCES, type WatchedResource, watchTarget } from './watched-resources.js';
import type { watcherConfigSchema } from './watcher-config.js';
import { createWatcherMetrics } from './watcher-metrics.js';
import { childStateKey, type Publication, routeChange, routeResync, stateEntryKey } from './work-routing.js';
import { WrittenRevisions } from './written-revisions.js';

type Context = ServiceContext<ServiceConfig<typeof watcherConfigSchema>>;

/** JetStream "message size exceeds maximum allowed" */
const JS_ERR_MESSAGE_TOO_LARGE = 10054;
/**
 * A resync is spread over at most this long: well inside JetStream's duplicate window (2 min), so
 * two watchers' copies of one announcement still collapse into one.
 */
const RESYNC_MAX_SPREAD_MS = 90_000;

interface ResyncItem {
  kind: 'session' | 'template';
  object: KubeObject;
  round: string;
  observedAt: Date;
}

/** The longest a list page waits for the shared-state writes of the one before. */
const LIST_PAGE_WAIT_MS = 5_000;

/** Resyncs not on the schedule (after NATS came back, after dropped messages) at most this often. */
const UNSCHEDULED_RESYNC_MIN_GAP_MS = 10_000;
const NATS_DRAIN_TIMEOUT_MS = 3_000;
/** How often the watcher checks that the shared-state bucket still exists (an operator may delete it). */
const STATE_BUCKET_CHECK_MS = 5_000;

function isPermanentPublishError(error: unknown): boolean {
  return (
    error instanceof natsErrors.InvalidArgumentError ||
    error instanceof natsErrors.InvalidSubjectError ||
    (error instanceof JetStreamApiError && error.code === JS_ERR_MESSAGE_TOO_LARGE)
  );
}

/** Drains the connection, or closes it when draining cannot finish (NATS unreachable). */
async function closeNats(nc: NatsConnection, log: Context['log']): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), NATS_DRAIN_TIMEOUT_MS);
  });
  try {
    const result = await Promise.race([nc.drain().then(() => 'drained' as const), timedOut]);
    if (result === 'timeout') {
      log.warn('NATS drain did not finish in time; closing');
      await nc.close();
    }
  } catch (error) {
    log.warn({ err: (error as Error).message }, 'NATS drain failed; closing');
    await nc.close().catch(() => undefined);
  } finally {
    clearTimeout(timer);
  }
}

function summarize(raw: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(raw) ?? String(raw);
  } catch {
    text = String(raw);
  }
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** The order a rebuild writes kinds in: Templates first, Sessions last (see rebuildState). */
function rebuildRank(kind: StateKind): number {
  return kind === 'template' ? 0 : kind === 'session' ? 2 : 1;
}

/**
 * The watcher: lists and watches Sessions, Templates and the platform's Deployments and Pods,
 * and publishes what changed to JetStream as change events and work items. The process shell
 * (config, health, SIGTERM) is runService's; this wires the pieces and owns their lifetimes.
 */

export async function startWatcher(context: Context): Promise<RunningService> {
  const { config, log, readiness, registry } = context;
  const kube = kubeClientFromConfig(config, registry, log);
  const stopping = new AbortController();
  const signal = AbortSignal.any([context.signal, stopping.signal]);
  const sessionIndex = new SessionIndex();
  let publisher: Publisher | undefined;
  let nc: NatsConnection | undefined;
  // One watch per kind and namespace (see below): all of them, the ones holding Sessions and
  // Templates whole, and the children's with the transport each lists from (to refill the state).
  const watches = new Map<StateKind, Informer<CachedIdentity>[]>();
  /** The namespace each watch lists (undefined: every namespace). */
  const watchNamespaces = new Map<Informer<CachedIdentity>, string | undefined>();
  const wholeWatches = new Map<'session' | 'template', Informer<KubeObject>[]>();
  /** The children's watches by kind, each with the namespace it lists (undefined: every namespace). */
  const childWatches = new Map<
    ChildKind,
    {
      watch: Informer<ChildEntry>;
      namespace: string | undefined;
      transport: WatchTransport;
      resource: WatchedResource;
    }[]
  >();
  let stateStore: StateStore<Publication> | undefined;
  let stateKv: KV | undefined;
  const writtenRevisions = new WrittenRevisions();
  /** Set once every watch has listed and the bucket has been brought in line with what they hold. */
  let stateBuilt = false;
  /** Copies of every stream, consumer and bucket, chosen once connected (NATS_REPLICAS). */
  let replicas = 1;
  const metrics = createWatcherMetrics(registry, {
    isReady: () => readiness.ready,
    queueDepth: () => publisher?.pending ?? 0,
    stateQueueDepth: () => stateStore?.pending ?? 0,
    cachedBytes: () =>
      [...watches].map(
        ([kind, list]) =>
          [kind, list.reduce((sum, watch) => sum + watch.cache.bytes, 0)] as [StateKind, number],
      ),
    watches: () =>
      [...watches].map(([kind, list]) => [
        kind,
        {
          requested: list.filter((watch) => watch.watchRequested).length,
          answered: list.filter((watch) => watch.watchAnswered).length,
        },
      ]),
  });

  if (config.WATCH_SILENCE_TIMEOUT <= config.WATCH_TIMEOUT) {
    log.warn(
      {
        watchTimeout: formatDuration(config.WATCH_TIMEOUT),
        silenceTimeout: formatDuration(config.WATCH_SILENCE_TIMEOUT),
      },
      'WATCH_SILENCE_TIMEOUT is not longer than WATCH_TIMEOUT: the watchdog will also restart watches that are merely quiet',
    );
  }
  readiness.register('jetstream', 'waiting for NATS');
  readiness.register('state', 'the shared state is not built yet (waiting for every watch to list)');
  readiness.set('publish', true, 'ok');

  // One watch per kind and namespace: with a list of namespaces (rbac.scope=namespaces) the
  // watcher may list nothing cluster-wide, so it watches each namespace by itself.
  const namespaces: (string | undefined)[] = config.WATCH_NAMESPACE ?? [undefined];
  const listSlots = new Slots(config.LIST_CONCURRENCY);
  function watchOf<C extends CachedIdentity>(
    resource: WatchedResource,
    namespace: string | undefined,
    transport: WatchTransport,
    retention: CacheRetention<C> | undefined,
  ): Informer<C> {
    const check =
      namespaces.length > 1 ? `watch:${resource.plural}:${namespace}` : `watch:${resource.plural}`;
    const where = namespaces.length > 1 ? { namespace } : {};
    readiness.register(check, `waiting for the first list of ${resource.plural} and the answer to its watch`);
    const watch: Informer<C> = new Informer<C>({
      resource: resource.plural,
      transport,
      pageSize: config.LIST_PAGE_SIZE,
      listSlots,
      // A list page's writes land before the next page is read (at most LIST_PAGE_WAIT: a NATS
      // that does not answer must not stop the watches from listing).
      afterPage: storedOrLater,
      watchTimeoutSeconds: Math.max(1, Math.round(config.WATCH_TIMEOUT / 1000)),
      silenceTimeoutMs: config.WATCH_SILENCE_TIMEOUT,
      answerTimeoutMs: config.WATCH_ANSWER_TIMEOUT,
      transform: (raw) => trimObject(resource.kind, raw, config.MAX_OBJECT_BYTES),
      ...(retention ? { retention } : {}),
      onChanges: (changes) => handleChanges(resource.kind, changes),
      onMalformed: (raw, reason) => {
        metrics.malformed.labels(resource.kind).inc();
        log.warn(
          { kind: resource.kind, reason, object: summarize(raw) },
          'skipping a malformed object from the API server',
        );
      },
      onState: (up, reason) => {
        readiness.set(check, up, reason);
        if (up && !stateBuilt) void rebuildState('initial');
        if (up) log.info({ kind: resource.kind, ...where, objects: watch.cache.size }, 'watch is up');
        else log.warn({ kind: resource.kind, ...where, reason }, 'watch is down');
      },
      onRestart: (reason, detail, delayMs) => {
        metrics.watchRestarts.labels(resource.kind, reason).inc();
        const fields = { kind: resource.kind, ...where, reason, detail, retryInMs: delayMs };
        if (reason === 'closed') log.debug(fields, 'watch ended; starting another');
        else log.warn(fields, 'restarting the watch');
      },
    });
    watches.set(resource.kind, [...(watches.get(resource.kind) ?? []), watch as Informer<CachedIdentity>]);
    watchNamespaces.set(watch as Informer<CachedIdentity>, namespace);
    return watch;
  }

  for (const resource of WATCHED_RESOURCES)
    for (const namespace of namespaces) {
      const transport = resource.namePrefix
        ? nameFilterTransport(kubeWatchTransport(kube, watchTarget(resource, namespace)), resource.namePrefix)
        : kubeWatchTransport(kube, watchTarget(resource, namespace));
      const { kind } = resource;
      if (isChildKind(kind)) {
        const retention = childRetention(kind, resource, sharedNamesOf(kind));
        const watch = watchOf(resource, namespace, transport, retention);
        childWatches.set(kind, [
          ...(childWatches.get(kind) ?? []),
          { watch, namespace, transport, resource },
        ]);
      } else {
        // Sessions are kept packed (packed-session.ts); the few Templates whole.
        const watch = watchOf<KubeObject>(
          resource,
          namespace,
          transport,
          kind === 'session' ? PACKED_SESSIONS : undefined,
        );
        wholeWatches.set(kind, [...(wholeWatches.get(kind) ?? []), watch]);
      }
    }

  /** For a kind of SHARED_NAME_KINDS: the name string another such kind's entry holds (child-entry.ts). */
  function sharedNamesOf(kind: ChildKind): SharedNames | undefined {
    if (!SHARED_NAME_KINDS.includes(kind)) return undefined;
    const others = SHARED_NAME_KINDS.filter((other) => other !== kind);
    return (namespace, name) => {
      for (const other of others) {
        // Ten namespaces at most in practice, and only a child's first version asks: a scan will do.
        const watches = childWatches.get(other) ?? [];
        const watch = (
          watches.find((w) => w.namespace === namespace) ?? watches.find((w) => w.namespace === undefined)
        )?.watch;
        const entry = watch?.cache.get(namespace, name);
        if (entry) return entry.name;
      }
      return undefined;
    };
  }

  /** The shared-state writes queued so far are stored, or LIST_PAGE_WAIT_MS went by, or the watcher stops. */
  async function storedOrLater(): Promise<void> {
    if (!stateStore || signal.aborted) return;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const later = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, LIST_PAGE_WAIT_MS);
      onAbort = () => resolve();
      signal.addEventListener('abort', onAbort, { once: true });
    });
    await Promise.race([stateStore.idle(), later]);
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }

  function enqueue(publications: Publication[]): void {
    for (const publication of publications) publisher?.enqueue(publication);
  }

  /** What the watches of `kind` hold under namespace/name now, if anything. */
  function held(kind: StateKind, namespace: string, name: string): CachedIdentity | undefined {
    for (const watch of watches.get(kind) ?? []) {
      const entry = watch.cache.get(namespace, name);
      if (entry) return entry;
    }
    return undefined;
  }

  /** The Session the watches hold under namespace/name, whole. */
  function cachedSession(namespace: string, name: string): KubeObject | undefined {
    for (const watch of wholeWatches.get('session') ?? []) {
      const object = watch.cache.get(namespace, name);
      if (object) return object;
    }
    return undefined;
  }

  /**
   * Stores a change in the shared state, then releases the work items it triggers (stored before
   * triggered). Its change event goes out with the write instead of after it: it carries the
   * object itself, so no subscriber needs the entry first, and a put and its event sent together
   * share one socket write and one read of their acknowledgements, where waiting made it two of
   * each (BENCHMARKS.md, R27). A deletion of an older incarnation leaves the current one's entry
   * in place.
   */
  function store(
    kind: StateKind,
    change: CacheChange<CachedIdentity>,
    publications: Publication[],
    successor?: KubeObject,
  ): void {
    const key = stateStore ? stateEntryKey(kind, change.object) : undefined;
    if (!stateStore || key === undefined) {
      enqueue(publications);
      return;
    }
    const { object } = change;
    // A deleted object whose name a newer incarnation holds: that one's entry (the watcher holds
    // no child's JSON: the successor in hand, or the entry its own addition stored).
    const value =
      change.type !== 'deleted'
        ? object.json
        : successor
          ? successor.json
          : held(kind, object.namespace, object.name)
            ? KEEP_ENTRY
            : undefined;
    stateStore.write({
      key,
      value,
      after: publications.filter((p) => p.stream === 'work'),
      // The cached version whose JSON this is (a Session's or Template's: written-revisions.ts).
      source: change.type !== 'deleted' && !isChildKind(kind) ? change.current : undefined,
    });
    enqueue(publications.filter((p) => p.stream === 'events'));
  }

  /** The key of what a watch of `kind` holds (undefined: a pod of no Session, not stored). */
  function heldKey(kind: StateKind, entry: CachedIdentity): string | undefined {
    return isChildKind(kind)
      ? childStateKey(kind, entry as ChildEntry)
      : stateEntryKey(kind, entry as KubeObject);
  }

  /**
   * Writes the entries of children the watches hold but the bucket lacks. The watcher keeps no
   * child's JSON (child-entry.ts), so it lists them again, page by page, from the API server:
   * only when something is missing (the bucket was lost; an entry vanished), never in steady
   * state. Only the version the watch holds is written: a newer one is stored by its own change,
   * and an older one must not overwrite it. Each key written is taken out of `missing`.
   */
  async function refillChildren(
    missing: Map<ChildKind, Set<string>>,
    store: StateStore<Publication>,
  ): Promise<number> {
    let refilled = 0;
    for (const [kind, keys] of missing)
      for (const { watch, transport } of childWatches.get(kind) ?? []) {
        let continueToken: string | undefined;
        do {
          const page = await transport.list(
            { limit: config.LIST_PAGE_SIZE, ...(continueToken ? { continueToken } : {}) },
            (raw) => {
              const parsed = parseKubeObject(raw, (object) => trimObject(kind, object, config.MAX_OBJECT_BYTES));
              if (!parsed.ok) return;
              const key = stateEntryKey(kind, parsed.object);
              if (key === undefined || !keys.has(key) || !watch.cache.holds(parsed.object)) return;
              // Once: a page read again after it was cut off hands its first items on again.
              keys.delete(key);
              store.write({ key, value: parsed.object.json, after: [] });
              metrics.stateRefilled.labels(kind).inc();
              refilled++;
            },
          );
          continueToken = page.continueToken;
          // One page's writes at a time: a refill of 10,000 pods must not queue all their JSON at once.
          await store.idle();
        } while (continueToken && !signal.aborted);
      }
    return refilled;
  }

  /**
   * Writes the objects the watches hold and deletes entries of objects they do not: at start
   * (entries of objects deleted while no watcher ran) and after the bucket was lost, every object;
   * at each periodic resync, the Sessions and Templates whose entry is not what this watcher
   * stored for the version it holds (which so repairs an entry someone else overwrote; written-revisions.ts) and the
   * children whose entry is missing. Children are written by their changes as they come (at
   * start, every child is one: the first list adds it), so a rebuild writes only those whose
   * entry is missing, listed again (refillChildren). So are Sessions and Templates: at start their
   * lists wrote them, and the rebuild finds them intact.
   */
  let rebuilding: Promise<void> | undefined;
  function rebuildState(reason: 'initial' | 'bucket-missing' | 'resync'): Promise<void> {
    if (rebuilding) return rebuilding;
    const rebuild = async () => {
      try {
        const all = [...watches.values()].flat();
        if (!stateStore || !stateKv || !all.every((watch) => watch.synced)) return;
        const store = stateStore;
        const kv = stateKv;
        let objects = 0;
        let written = 0;
        let intact = 0;
        let deleted = 0;
        const missing = new Map<ChildKind, Set<string>>();
        // Templates and children before Sessions: while a lost bucket is refilled, a reconcile
        // woken meanwhile that finds its Session finds what the Session needs too (a Session read
        // without its Template would be told WaitingForTemplate for a moment).
        const order = [...watches.keys()].sort((a, b) => rebuildRank(a) - rebuildRank(b));
        // One kind in one namespace at a time: the bucket's keys and the watches' keys of the whole
        // cluster at once (two sets of ~60,000 keys at 10,000 Sessions, each key of the bucket a
        // slice holding its whole subject) took ~15 MiB of the watcher's heap at every resync.
        // Only the entries of the namespaces this watcher watches are its own: a watcher limited
        // to some namespaces (WATCH_NAMESPACE) must not delete what another one keeps for others.
        for (const kind of order)
          for (const namespace of namespaces) {
            const stored = await entryRevisions(kv, stateKindFilter(kind, namespace));
            // What the watches hold is taken after listing the bucket (which awaited: objects may
            // have come meanwhile) and synchronously with the deletes below, so only entries of
            // objects no watch holds now are deleted; an object added after this queues its write
            // behind the delete of its key, in order.
            const keep = new Set<string>();
            for (const watch of watches.get(kind) ?? []) {
              if (watchNamespaces.get(watch) !== namespace) continue;
              for (const entry of watch.cache.values()) {
                const key = heldKey(kind, entry);
                if (key === undefined) continue;
                keep.add(key);
                objects++;
                if (isChildKind(kind)) {
                  // Stored by its change (at start: by the first list); a write still queued is not missing.
                  if (reason !== 'initial' && !stored.has(key) && !store.has(key))
                    missing.set(kind, (missing.get(kind) ?? new Set()).add(key));
                  continue;
                }
                // Still what this watcher wrote (or a write of it is queued): nothing to repair.
                // (A recreated bucket's revisions start again: there, every entry is written.)
                if (
                  store.has(key) ||
                  (reason !== 'bucket-missing' && writtenRevisions.intact(entry, stored.get(key)))
                ) {
                  intact++;
                  continue;
                }
                // Read when sent: a Session's JSON is inflated then (packed-session.ts), not all at once.
                const object = entry as KubeObject;
                store.write({ key, value: () => object.json, after: [], source: entry });
                written++;
              }
            }
            for (const key of stored.keys()) {
              if (keep.has(key)) continue;
              store.write({ key, value: undefined, after: [] });
              deleted++;
            }
          }
        await store.idle();
        // At a resync, a child may have been stored after the bucket was listed (a burst of
        // creates): ask the bucket again before listing anything from the API server.
        if (reason === 'resync')
          for (const [kind, keys] of missing) {
            for (const key of keys)
              if ((await kv.get(key))?.operation === 'PUT' || store.has(key)) keys.delete(key);
            if (keys.size === 0) missing.delete(kind);
          }
        // Counted first: the refill takes each key out of `missing` as it writes it.
        const missingChildren = [...missing.values()].reduce((n, keys) => n + keys.size, 0);
        const refilled = missing.size > 0 ? await refillChildren(missing, store) : 0;
        metrics.stateRebuilds.labels(reason).inc();
        stateBuilt = true;
        readiness.set('state', true);
        log.info(
          {
            reason,
            objects,
            written,
            intact,
            deleted,
            ...(missing.size > 0
              ? { missingChildren, refilled }
              : {}),
          },
          'shared state written',
        );
      } catch (error) {
        readiness.set('state', false, `cannot rebuild the shared state: ${(error as Error).message}`);
        log.warn({ reason, err: (error as Error).message }, 'rebuilding the shared state failed; retrying');
        stateBuilt = false;
      }
    };
    // Cleared when settled, not inside: a rebuild that returns at once would clear it before it is set.
    const running = rebuild().finally(() => {
      if (rebuilding === running) rebuilding = undefined;
    });
    rebuilding = running;
    return running;
  }

  /** An operator may delete the bucket: recreate it and write everything again, not ready meanwhile. */
  async function watchStateBucket(): Promise<void> {
    while (!signal.aborted) {
      await sleep(STATE_BUCKET_CHECK_MS, signal).catch(() => undefined);
      if (signal.aborted || !nc) break;
      try {
        const jsm = await jetstreamManager(nc);
        const exists = await jsm.streams
          .info(`KV_${BUCKETS.state}`)
          .then(() => true)
          .catch((error: Error) => {
            if (/not found/i.test(error.message)) return false;
            throw error;
          });
        if (exists && stateBuilt) continue;
        if (!exists) {
          readiness.set('state', false, 'the shared-state bucket is gone; recreating and refilling it');
          log.warn({ bucket: BUCKETS.state }, 'the shared-state bucket is gone; recreating and refilling it');
          stateBuilt = false;
          stateKv = await openStateBucket(nc, config.MAX_OBJECT_BYTES, replicas);
          writtenRevisions.clear();
          stateStore?.resume();
        }
        await rebuildState(exists ? 'initial' : 'bucket-missing');
        // Reconciles woken while the bucket was gone read nothing and did nothing: announce
        // every Session and Template again so each is looked at with the rebuilt state.
        if (!exists && stateBuilt) resync('state-lost');
      } catch (error) {
        log.warn({ err: (error as Error).message }, 'cannot check the shared-state bucket');
      }
    }
  }

  function handleChanges(kind: StateKind, changes: CacheChange<CachedIdentity>[]): void {
    const observedAt = new Date();
    for (const [i, change] of changes.entries()) {
      const { object } = change;
      if (isChildKind(kind) && keptUnchanged(change as CacheChange<ChildEntry>)) {
        metrics.unchangedSkipped.labels(kind).inc();
        continue;
      }
      if (object.oversize && change.type !== 'deleted') {
        metrics.oversize.labels(kind, object.oversize.level).inc();
        log.warn(
          {
            kind,
            namespace: object.namespace,
            name: object.name,
            bytes: object.oversize.bytes,
            maxBytes: config.MAX_OBJECT_BYTES,
            kept: object.oversize.level === 'reduced' ? 'spec and status' : 'identity only',
          },
          `object is over MAX_OBJECT_BYTES even without unread annotations; keeping and publishing ${
            object.oversize.level === 'reduced' ? 'it without labels and annotations' : 'only its identity'
          } (it is still reconciled). Its labels or fields are too large: ask its owner to shrink them, or raise MAX_OBJECT_BYTES`,
        );
      }
      if (kind === 'session') {
        if (change.type === 'deleted') sessionIndex.delete(object.namespace, object.name);
        else sessionIndex.set(object.namespace, object.name, sessionTemplateName(object));
      }
      const routed = routeChange(kind, change, {
        sessionsUsing: (namespace, template) => sessionIndex.sessionsUsing(namespace, template),
        desiredReplicas: (namespace, name) => {
          const session = cachedSession(namespace, name);
          const state = session ? sessionState(session) : undefined;
          return state === 'running' ? 1 : state === 'hibernated' ? 0 : undefined;
        },
        observedAt,
        partitions: config.WORK_PARTITIONS,
        eventKinds: config.EVENT_KINDS,
      });
      for (const problem of routed.invalid) {
        metrics.malformed.labels(kind).inc();
        log.warn(
          { kind, namespace: object.namespace, name: object.name, problem },
          'skipping a message that breaks its schema',
        );
      }
      log.debug(
        {
          kind,
          type: change.type,
          namespace: object.namespace,
          name: object.name,
          rv: object.resourceVersion,
        },
        'change',
      );
      // A name that came back with a new uid is reported as the old one's deletion, then the new
      // one's addition: the deletion's entry is the new object, stored before what it triggers.
      const next = changes[i + 1];
      const successor =
        change.type === 'deleted' &&
        next?.type === 'added' &&
        next.object.namespace === object.namespace &&
        next.object.name === object.name
          ? next.object
          : undefined;
      store(kind, change, routed.publications, successor);
    }
  }

  let lastUnscheduledResync = 0;
  let publishing = true;
  function resync(trigger: ResyncTrigger): void {
    const now = Date.now();
    if (trigger === 'periodic' && !publishing) {
      // It would only fill the queue; the resync that follows recovery announces everything anyway.
      log.info('skipping the periodic resync while publishing fails');
      return;
    }
    if (trigger !== 'periodic') {
      if (now - lastUnscheduledResync < UNSCHEDULED_RESYNC_MIN_GAP_MS) return;
      lastUnscheduledResync = now;
    }
    const name = resyncName(trigger, now, config.RESYNC_INTERVAL);
    const observedAt = new Date(now);
    // Templates first, then Sessions, each by cache key (namespace/name): every watcher announces
    // in the same order, so two of them publish each object at about the same moment (one copy kept).
    const objects: ResyncItem[] = (['template', 'session'] as const).flatMap((kind) =>
      (wholeWatches.get(kind) ?? [])
        // Before its first list a watch knows nothing; its list announces everything anyway.
        .filter((watch) => watch.synced)
        .flatMap((watch) => [...watch.cache.entries()])
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([, object]) => ({ kind, object, round: name, observedAt })),
    );
    if (trigger === 'periodic') void rebuildState('resync');
    const unfinished = resyncPacer.pending;
    resyncPacer.start(objects);
    metrics.resyncs.labels(trigger).inc();
    log.info(
      {
        trigger,
        round: name,
        objects: objects.length,
        spreadMs: Math.round(resyncPacer.spreadMs(objects.length)),
        ...(unfinished > 0 ? { replacedUnfinished: unfinished } : {}),
      },
      'resync: announcing every Session and Template again',
    );
  }

  const resyncPacer = new ResyncPacer<ResyncItem>({
    ratePerSecond: config.RESYNC_RATE,
    maxSpreadMs: Math.min(
      config.RESYNC_INTERVAL > 0 ? config.RESYNC_INTERVAL / 2 : Number.POSITIVE_INFINITY,
      RESYNC_MAX_SPREAD_MS,
    ),
    emit(batch) {
      for (const { kind, object, round, observedAt } of batch) {
        const routed = routeResync(kind, [object], round, observedAt, config.WORK_PARTITIONS);
        for (const problem of routed.invalid)
          log.warn({ kind, problem }, 'skipping a resync message that breaks its schema');
        enqueue(routed.publications);
      }
    },
  });

  let resyncTimer: NodeJS.Timeout | undefined;
  function scheduleResync(): void {
    const now = Date.now();
    resyncTimer = setTimeout(() => {
      resync('periodic');
      scheduleResync();
    }, nextResyncAt(now, config.RESYNC_INTERVAL) - now);
  }

  const watchRuns: Promise<void>[] = [];
  const startup = (async () => {
    nc = await connectNats(config, {
      name: 'streamspace-watcher',
      identity: 'watcher',
      log,
      readiness,
      signal,
    });
    // The server is asked once: NATS_REPLICAS=auto means 3 on a cluster, 1 on a single server.
    const choice = chooseReplicas(config.NATS_REPLICAS, nc.info);
    replicas = choice.replicas;
    log.info(
      { replicas, reason: choice.reason },
      `JetStream streams, consumers and buckets get ${replicas} replica(s)`,
    );
    metrics.replicas.set(replicas);
    await retryForever(
      () =>
        declareTopology(nc as NatsConnection, {
          replicas,
          eventsMaxAgeSeconds: Math.round(config.EVENTS_MAX_AGE / 1000),
          maxObjectBytes: config.MAX_OBJECT_BYTES,
          eventsMaxBytes: config.EVENTS_MAX_BYTES,
          workMaxBytes: config.WORK_MAX_BYTES,
          deadLetterMaxBytes: config.DEAD_LETTER_MAX_BYTES,
          onBucketLimitError: (bucket, error) =>
            log.warn(
              { bucket, err: error.message },
              'could not give an existing bucket its size limits; it keeps working unbounded. Allow the watcher JetStream STREAM.INFO/STREAM.UPDATE on KV_<bucket>, or recreate the bucket',
            ),
          workPartitions: config.WORK_PARTITIONS,
          pinTimeoutMs: config.PIN_TIMEOUT,
          activityTtlMs: config.ACTIVITY_TTL,
        }),
      {
        signal,
        initialMs: 500,
        maxMs: 10_000,
        onError: (error, attempt, delayMs) => {
          const refused = error instanceof ReplicasRefusedError;
          metrics.topologyErrors.labels(refused ? 'replicas_refused' : 'other').inc();
          readiness.set(
            'jetstream',
            false,
            `cannot declare the streams, consumers and buckets: ${(error as Error).message}`,
          );
          // A refused replica count is the operator's to fix (the message says how); it is
          // retried all the same, so adding servers is enough.
          log[refused ? 'error' : 'warn'](
            { err: (error as Error).message, attempt, retryInMs: delayMs, replicas },
            'declaring the JetStream streams failed; retrying',
          );
        },
      },
    );
    readiness.set('jetstream', true);
    stateKv = await openStateBucket(nc, config.MAX_OBJECT_BYTES, replicas);
    const js = jetstream(nc);
    // Puts, events and work items of one event-loop turn go out in one socket write (send-batch.ts).
    const sends = new SendBatch();
    publisher = new Publisher({
      publish: async (subject, data, msgID) => {
        const ack = await sends.run(() => js.publish(subject, data, { msgID }));
        return { duplicate: ack.duplicate };
      },
      maxQueue: config.PUBLISH_QUEUE_LIMIT,
      concurrency: config.PUBLISH_CONCURRENCY,
      backoff: { initialMs: 200, maxMs: 10_000 },
      isPermanent: isPermanentPublishError,
      hooks: {
        published: (publication, result) => {
          if (result.duplicate) metrics.duplicates.labels(publication.stream).inc();
          else if (publication.stream === 'events')
            metrics.eventsPublished.labels(publication.body.kind, publication.body.type).inc();
          else metrics.workItemsPublished.labels(publication.body.kind, publication.body.reason).inc();
        },
        failed: (publication, error, retryInMs) => {
          metrics.publishErrors.inc();
          // One line per retry pause, not one per message queued behind it.
          if (retryInMs !== undefined) {
            log.warn(
              {
                err: (error as Error).message,
                subject: publication.subject,
                retryInMs,
                pending: publisher?.pending,
              },
              'publishing failed; retrying',
            );
          }
        },
        dropped: (publication, reason, error) => {
          metrics.dropped.labels(reason).inc();
          log.error(
            {
              reason,
              subject: publication.subject,
              msgID: publication.msgID,
              err: error ? (error as Error).message : undefined,
            },
            reason === 'overflow'
              ? 'publish queue full while NATS is unreachable; dropped the oldest message (a resync follows)'
              : 'JetStream can never accept this message; dropped it',
          );
        },
        health: (ok, reason) => {
          readiness.set('publish', ok, reason);
          const recovered = ok && !publishing;
          publishing = ok;
          // JetStream can fail while the connection stays up (no reconnect to notice), so
          // recovery of publishing triggers the repairing resync too.
          if (recovered) resync('reconnect');
        },
        drainedAfterDrops: () => resync('overflow'),
      },
    });
    stateStore = new StateStore<Publication>({
      put: async (key, value) => {
        const revision = await sends.run(() => (stateKv as KV).put(key, value));
        metrics.stateWrites.labels('put').inc();
        return revision;
      },
      stored: (source, revision) => writtenRevisions.stored(source, revision),
      delete: async (key) => {
        await sends.run(() => removeStateEntry(stateKv as KV, key));
        metrics.stateWrites.labels('delete').inc();
      },
      release: enqueue,
      concurrency: config.PUBLISH_CONCURRENCY,
      backoff: { initialMs: 200, maxMs: 10_000 },
      hooks: {
        failed: (key, error, retryInMs) => {
          metrics.stateWriteErrors.inc();
          if (retryInMs !== undefined)
            log.warn(
              { err: (error as Error).message, key, retryInMs, pending: stateStore?.pending },
              'writing the shared state failed; retrying (what it triggers waits)',
            );
        },
        health: (ok, reason) => {
          if (!ok) readiness.set('state', false, reason);
          else if (stateBuilt) readiness.set('state', true);
        },
      },
    });
    void watchStateBucket();
    void (async () => {
      for await (const status of (nc as NatsConnection).status()) {
        if (status.type === 'reconnect') {
          publisher?.resume();
          stateStore?.resume();
          // Whatever was dropped or happened while we could not publish is repaired by announcing everything again.
          resync('reconnect');
        }
      }
    })();
    // One listener on the stop signal for all the watches, not one each (runInformers says why).
    watchRuns.push(...runInformers([...watches.values()].flat(), signal));
    if (signal.aborted) return;
    if (config.RESYNC_INTERVAL > 0) scheduleResync();
    else
      log.warn(
        'RESYNC_INTERVAL is 0: no periodic resync; a missed change waits for the next change of its object',
      );
    log.info(
      {
        namespace: describeNamespaces(config.WATCH_NAMESPACE),
        resyncInterval: config.RESYNC_INTERVAL > 0 ? formatDuration(config.RESYNC_INTERVAL) : 'off',
        eventsMaxAge: config.EVENTS_MAX_AGE > 0 ? formatDuration(config.EVENTS_MAX_AGE) : 'unlimited',
      },
      'watching',
    );
  })().catch((error) => {
    if (!signal.aborted) log.error({ err: (error as Error).message }, 'watcher failed to start');
  });

  return {
    async stop() {
      stopping.abort();
      clearTimeout(resyncTimer);
      resyncPacer.stop();
      await startup;
      await Promise.all(watchRuns);
      if (stateStore) {
        await Promise.race([stateStore.idle(), sleep(config.SHUTDOWN_FLUSH_TIMEOUT).catch(() => undefined)]);
        stateStore.close();
      }
      if (publisher) {
        const pending = publisher.pending;
        const flushed = await publisher.flush(config.SHUTDOWN_FLUSH_TIMEOUT);
        if (flushed) log.info({ flushed: pending }, 'published everything queued');
        else
          log.warn(
            { lost: publisher.pending },
            'stopping with publications still unacknowledged; the next resync repairs them',
          );
        publisher.close();
      }
      if (nc && !nc.isClosed()) await closeNats(nc, log);
    },
  };
}
