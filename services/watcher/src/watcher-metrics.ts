import { RESTART_REASONS } from '@streamspace/kube';
import { type StateKind, WORK_KINDS } from '@streamspace/shared';
import { Counter, Gauge, type Registry } from 'prom-client';
import { isChildKind } from './child-entry.js';
import { RESYNC_TRIGGERS } from './resync-schedule.js';
import { WATCHED_RESOURCES } from './watched-resources.js';
import { EVENT_TYPES, OBSERVED_KINDS, workReasons } from './work-routing.js';

/**
 * The kinds the watcher watches (restarts, malformed and oversize objects are counted for each),
 * and of them the children of Sessions: from the one list, so a kind added there starts at zero here.
 */
const WATCHED_KINDS: readonly StateKind[] = WATCHED_RESOURCES.map((resource) => resource.kind);
const CHILD_KINDS = WATCHED_KINDS.filter(isChildKind);

/**
 * The watcher's metrics. Every label combination that can occur starts at zero, so a rate() or
 * an alert on it works from the first scrape instead of after the first incident.
 */
export function createWatcherMetrics(
  registry: Registry,
  sources: {
    isReady: () => boolean;
    queueDepth: () => number;
    /** Writes to the shared state waiting or in flight (what they trigger waits behind them). */
    stateQueueDepth?: () => number;
    /** JSON bytes the object cache of each kind holds (after trimming). */
    cachedBytes?: () => Iterable<[StateKind, number]>;
    /** Of each kind's watches (one per namespace), how many are asked for and how many answered. */
    watches?: () => Iterable<[StateKind, { requested: number; answered: number }]>;
  },
) {
  const registers = [registry];
  const eventsPublished = new Counter({
    name: 'streamspace_watcher_events_published_total',
    help: 'Change events stored in JetStream by this watcher (not counting ones another watcher had already stored).',
    labelNames: ['kind', 'type'],
    registers,
  });
  const workItemsPublished = new Counter({
    name: 'streamspace_watcher_work_items_published_total',
    help: 'Work items stored in JetStream by this watcher, by work kind and what triggered them.',
    labelNames: ['kind', 'reason'],
    registers,
  });
  const duplicates = new Counter({
    name: 'streamspace_watcher_publish_duplicates_total',
    help: 'Publications JetStream discarded because a message with the same id was already stored (another watcher was first).',
    labelNames: ['stream'],
    registers,
  });
  const publishErrors = new Counter({
    name: 'streamspace_watcher_publish_errors_total',
    help: 'Failed publish attempts (most are retried; see publications_dropped_total for what was given up).',
    registers,
  });
  const dropped = new Counter({
    name: 'streamspace_watcher_publications_dropped_total',
    help: 'Publications given up: the queue overflowed while NATS was unreachable, or the message can never be accepted.',
    labelNames: ['reason'],
    registers,
  });
  new Gauge({
    name: 'streamspace_watcher_publish_queue_depth',
    help: 'Publications waiting to be sent or acknowledged.',
    registers,
    collect() {
      this.set(sources.queueDepth());
    },
  });
  new Gauge({
    name: 'streamspace_watcher_state_queue_depth',
    help: 'Writes to the shared state (the streamspace-state bucket) waiting or in flight; the messages a change triggers wait behind its write. At most one per object.',
    registers,
    collect() {
      this.set(sources.stateQueueDepth?.() ?? 0);
    },
  });
  const watchRestarts = new Counter({
    name: 'streamspace_watcher_watch_restarts_total',
    help: 'Watches started again, by kind and why: gone (410, relisted), error, closed (ended normally), watchdog (silent too long).',
    labelNames: ['kind', 'reason'],
    registers,
  });
  // Requested but not answered is a watch whose changes nobody sees: one unanswered past
  // WATCH_ANSWER_TIMEOUT also makes /readyz fail (its watch:<plural> check).
  const watchCounts = () => new Map(sources.watches?.() ?? []);
  new Gauge({
    name: 'streamspace_watcher_watches_requested',
    help: 'Watches asked of the API server and not ended, by kind (one per namespace watched); a restart between two is not counted.',
    labelNames: ['kind'],
    registers,
    collect() {
      for (const [kind, { requested }] of watchCounts()) this.labels(kind).set(requested);
    },
  });
  new Gauge({
    name: 'streamspace_watcher_watches_answered',
    help: 'Of the watches requested, those the API server answered (response headers or a first event), by kind; the others may never have been sent.',
    labelNames: ['kind'],
    registers,
    collect() {
      for (const [kind, { answered }] of watchCounts()) this.labels(kind).set(answered);
    },
  });
  const malformed = new Counter({
    name: 'streamspace_watcher_malformed_objects_total',
    help: 'Objects from the API server that could not be routed (missing metadata, invalid names) and were skipped.',
    labelNames: ['kind'],
    registers,
  });
  const oversize = new Counter({
    name: 'streamspace_watcher_oversize_objects_total',
    help: 'Object changes still over MAX_OBJECT_BYTES once unread annotations and managedFields were dropped, so kept and published cut further (level reduced: labels and annotations dropped; identity: spec and status too). Still reconciled.',
    labelNames: ['kind', 'level'],
    registers,
  });
  new Gauge({
    name: 'streamspace_watcher_cached_object_bytes',
    help: 'Bytes of trimmed objects the watcher holds in memory, by kind: Templates as JSON, Sessions as their JSON deflated (packed-session.ts), 0 for the children of Sessions (it keeps a digest of them, their JSON is only in the shared state).',
    labelNames: ['kind'],
    registers,
    collect() {
      for (const [kind, bytes] of sources.cachedBytes?.() ?? []) this.labels(kind).set(bytes);
    },
  });
  const stateWrites = new Counter({
    name: 'streamspace_watcher_state_writes_total',
    help: 'Entries of the shared state (the streamspace-state bucket) written by this watcher, by operation (put, delete).',
    labelNames: ['op'],
    registers,
  });
  for (const op of ['put', 'delete']) stateWrites.labels(op).inc(0);
  const unchangedSkipped = new Counter({
    name: 'streamspace_watcher_unchanged_changes_total',
    help: 'Updates of Session children that left what the shared state keeps of them as it was (a Deployment status rewrite: the status is not kept), so neither stored nor published, by kind.',
    labelNames: ['kind'],
    registers,
  });
  const stateWriteErrors = new Counter({
    name: 'streamspace_watcher_state_write_errors_total',
    help: 'Failed writes to the shared state (each is retried; the messages it triggers wait for it).',
    registers,
  });
  const stateRebuilds = new Counter({
    name: 'streamspace_watcher_state_rebuilds_total',
    help: 'Times the watcher wrote the objects it knows to the shared state again: the Sessions and Templates at start (initial), after the bucket was lost (bucket-missing) and at a periodic resync (resync), repairing a corrupt entry of theirs; the children whose entry is missing, listed again (streamspace_watcher_state_refilled_total).',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of ['initial', 'bucket-missing', 'resync']) stateRebuilds.labels(reason).inc(0);
  const stateRefilled = new Counter({
    name: 'streamspace_watcher_state_refilled_total',
    help: 'Entries of Session children written again because the shared state lacked them (the bucket was lost, an entry vanished): the watcher holds no child JSON, so it lists them again from the API server, by kind.',
    labelNames: ['kind'],
    registers,
  });
  const resyncs = new Counter({
    name: 'streamspace_watcher_resyncs_total',
    help: 'Full resyncs (every Session and Template announced again), by what triggered them.',
    labelNames: ['trigger'],
    registers,
  });
  new Gauge({
    name: 'streamspace_watcher_ready',
    help: '1 when every watch has listed and been answered by the API server, and NATS is reachable, else 0.',
    registers,
    collect() {
      this.set(sources.isReady() ? 1 : 0);
    },
  });

  // Change events exist for the observed kinds only (EVENT_KINDS chooses among them).
  for (const kind of OBSERVED_KINDS)
    for (const type of EVENT_TYPES) eventsPublished.labels(kind, type).inc(0);
  for (const kind of WATCHED_KINDS) {
    for (const reason of RESTART_REASONS) watchRestarts.labels(kind, reason).inc(0);
    malformed.labels(kind).inc(0);
    for (const level of ['reduced', 'identity']) oversize.labels(kind, level).inc(0);
  }
  for (const kind of WORK_KINDS) {
    for (const reason of workReasons(kind)) workItemsPublished.labels(kind, reason).inc(0);
  }
  for (const kind of CHILD_KINDS) unchangedSkipped.labels(kind).inc(0);
  for (const stream of ['events', 'work']) duplicates.labels(stream).inc(0);
  for (const reason of ['overflow', 'permanent']) dropped.labels(reason).inc(0);
  for (const trigger of RESYNC_TRIGGERS) resyncs.labels(trigger).inc(0);
  publishErrors.inc(0);

  const replicas = new Gauge({
    name: 'streamspace_watcher_jetstream_replicas',
    help: 'Copies JetStream is asked to keep of every stream, consumer and bucket (NATS_REPLICAS; 0 until chosen).',
    registers,
  });
  const topologyErrors = new Counter({
    name: 'streamspace_watcher_topology_errors_total',
    help: 'Failed attempts to declare the JetStream streams, consumers and buckets, by reason: replicas_refused (NATS cannot keep NATS_REPLICAS copies: change the setting or the cluster), other (no quorum, NATS unreachable, ...: retried).',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of ['replicas_refused', 'other']) topologyErrors.labels(reason).inc(0);
  return {
    replicas,
    topologyErrors,
    eventsPublished,
    workItemsPublished,
    duplicates,
    publishErrors,
    dropped,
    watchRestarts,
    malformed,
    oversize,
    resyncs,
    stateWrites,
    unchangedSkipped,
    stateWriteErrors,
    stateRebuilds,
    stateRefilled,
  };
}

export type WatcherMetrics = ReturnType<typeof createWatcherMetrics>;
