import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { explainReplicasError, jetstreamManagerFor } from './jetstream-replicas.js';
import { DEFAULT_MAX_OBJECT_BYTES } from './object-trim.js';
import { BUCKETS, STREAMS, subjects } from './subjects.js';
import {
  DEFAULT_PIN_TIMEOUT_MS,
  DEFAULT_WORK_PARTITIONS,
  WORK_PARTITIONS_METADATA,
  WORK_PRIORITY_GROUP,
  workConsumerName,
} from './work-partitions.js';

const SECOND_NS = 1_000_000_000;
const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * The size limits of the streams and buckets (bytes). Every stream has a total and a per-message
 * bound, so no tenant and no stuck consumer can fill the JetStream store: the events stream
 * discards its oldest events when full; the work stream its oldest items (the watcher's resync
 * announces every key again); the buckets refuse writes (logged and retried by their writers).
 */
export const DEFAULT_STREAM_LIMITS = {
  eventsMaxBytes: 256 * MiB,
  workMaxBytes: 64 * MiB,
  /** A work item is a kind, a namespace, a name and a reason: well under 1 KiB. */
  workMaxMsgSize: 4 * KiB,
  deadLetterMaxBytes: 64 * MiB,
  /** A dead letter carries the original message (a work item or a command) and why it failed. */
  deadLetterMaxMsgSize: 64 * KiB,
  activityBucketMaxBytes: 64 * MiB,
  /** Activity times are short strings. */
  bucketMaxValueSize: 1 * KiB,
} as const;

/**
 * Room in a change event for what surrounds the object (type, kind, names, uid, versions, time):
 * with names of at most 253 characters it stays under 1 KiB; 4 KiB leaves a margin.
 */
export const EVENT_ENVELOPE_BYTES = 4 * KiB;

export interface TopologyOptions {
  /**
   * Update streams that exist to this configuration. Only the service that owns the settings
   * (the watcher, which is configured with them) does; the others only create what is missing,
   * so a service started with defaults never undoes an operator's EVENTS_MAX_AGE.
   */
  updateExisting?: boolean;
  /** How long change events are kept for late subscribers. */
  eventsMaxAgeSeconds?: number;
  /** How long dead letters are kept for a person to look at. */
  deadLetterMaxAgeSeconds?: number;
  /** How long a work item may stay unacknowledged before JetStream hands it out again. */
  workAckWaitSeconds?: number;
  /** How many partitions work items are spread over (recorded on the work stream; WORK_PARTITIONS). */
  workPartitions?: number;
  /** How long a partition stays pinned to a worker that stopped pulling (PIN_TIMEOUT). */
  pinTimeoutMs?: number;
  /**
   * Copies JetStream keeps of every stream, consumer and bucket (chooseReplicas in
   * jetstream-replicas.ts; NATS_REPLICAS). Existing ones are brought to it with updateExisting.
   */
  replicas?: number;
  /** The watcher's bound on one published object (MAX_OBJECT_BYTES); the events' max_msg_size follows from it. */
  maxObjectBytes?: number;
  eventsMaxBytes?: number;
  workMaxBytes?: number;
  deadLetterMaxBytes?: number;
  /**
   * Told when an existing bucket could not be given its size limits (with updateExisting). The
   * streams matter more than the buckets' limits, so this never stops the caller from starting.
   */
  onBucketLimitError?: (bucket: string, error: Error) => void;
}

/** The largest change event the watcher publishes for a given bound on its object. */
export function eventsMaxMsgSize(maxObjectBytes: number = DEFAULT_MAX_OBJECT_BYTES): number {
  return maxObjectBytes + EVENT_ENVELOPE_BYTES;
}

/**
 * The streams as the services expect them. The watcher declares them at start (add, or update
 * if they exist; declareTopology in jetstream-ownership.ts), so a changed setting rolls out with
 * the next deploy; the other services only bind to them (their NATS users may not create).
 */
export function streamConfigs(options: TopologyOptions = {}): (Partial<StreamConfig> & { name: string })[] {
  const num_replicas = options.replicas ?? 1;
  return [
    {
      name: STREAMS.events,
      subjects: [subjects.eventsAll],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas,
      max_age: (options.eventsMaxAgeSeconds ?? 24 * 3600) * SECOND_NS,
      max_bytes: options.eventsMaxBytes ?? DEFAULT_STREAM_LIMITS.eventsMaxBytes,
      max_msg_size: eventsMaxMsgSize(options.maxObjectBytes),
      // Two watchers publish the same change with the same message id; JetStream keeps one.
      duplicate_window: 120 * SECOND_NS,
      discard: DiscardPolicy.Old,
    },
    {
      name: STREAMS.work,
      subjects: [subjects.workAll],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      num_replicas,
      // One pending item per key: a burst of triggers for one Session collapses into one item,
      // because the newest replaces the older ones (the item carries no state, only a key).
      max_msgs_per_subject: 1,
      max_bytes: options.workMaxBytes ?? DEFAULT_STREAM_LIMITS.workMaxBytes,
      max_msg_size: DEFAULT_STREAM_LIMITS.workMaxMsgSize,
      discard: DiscardPolicy.Old,
      duplicate_window: 120 * SECOND_NS,
      // Where the reconcilers and the metrics service learn how items are partitioned.
      metadata: { [WORK_PARTITIONS_METADATA]: String(options.workPartitions ?? DEFAULT_WORK_PARTITIONS) },
    },
    {
      name: STREAMS.deadLetter,
      subjects: [subjects.deadLetterAll],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas,
      max_age: (options.deadLetterMaxAgeSeconds ?? 7 * 24 * 3600) * SECOND_NS,
      max_bytes: options.deadLetterMaxBytes ?? DEFAULT_STREAM_LIMITS.deadLetterMaxBytes,
      max_msg_size: DEFAULT_STREAM_LIMITS.deadLetterMaxMsgSize,
      discard: DiscardPolicy.Old,
    },
    {
      name: STREAMS.commands,
      subjects: [subjects.commandsAll],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      num_replicas,
      duplicate_window: 120 * SECOND_NS,
      // One pending command per Session (and issuer: the subject names both). A newer command
      // replaces the pending one rather than being refused: a command is only a trigger, the
      // executor decides again on fresh facts, and the newest carries the newest decision (a
      // terminate replaces a hibernate). Discarding the new one instead would fail the publisher's
      // newer decision and leave the stale one to run. The stream so holds at most one message
      // per Session however long the executor is stuck.
      max_msgs_per_subject: 1,
      discard: DiscardPolicy.Old,
      // A command is a few hundred bytes (the message field is at most 1000 characters).
      max_msg_size: 8 * 1024,
      // Room for one pending command per Session for well over 50,000 Sessions.
      max_bytes: 64 * 1024 * 1024,
    },
  ];
}

async function upsertStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string },
  updateExisting: boolean,
): Promise<void> {
  const what = `the stream ${config.name}`;
  const replicas = config.num_replicas ?? 1;
  try {
    await jsm.streams.info(config.name);
    if (!updateExisting) return;
  } catch (error) {
    if (!/not found/i.test((error as Error).message)) throw explainReplicasError(error, what, replicas);
    try {
      await jsm.streams.add(config);
      return;
    } catch (addError) {
      // Another replica created it between our look and our add.
      if (!/already in use|already exists/i.test((addError as Error).message))
        throw explainReplicasError(addError, what, replicas);
    }
  }
  // An update carries num_replicas too: on a cluster NATS moves an existing stream to the count.
  await jsm.streams.update(config.name, config).catch((error: unknown) => {
    throw explainUpdateRefusal(error, config.name, replicas);
  });
}

/**
 * Says what a refused update of an existing stream means: a replica count NATS cannot give it
 * (explainReplicasError), or a setting NATS does not change on a stream that exists (retention to
 * or from work queue, storage type: a stream made by another release or by hand), whose message
 * from NATS names neither the stream nor what to do. Other errors come back as they were.
 */
export function explainUpdateRefusal(error: unknown, stream: string, replicas: number): Error {
  const explained = explainReplicasError(error, `the stream ${stream}`, replicas);
  if (explained !== error || !/can ?not change/i.test(explained.message)) return explained;
  return new Error(
    `the stream ${stream} exists with settings NATS will not change to the ones StreamSpace needs (${explained.message}): it was made by another release or by hand. Delete it (nats stream rm ${stream}; what it holds goes with it) and the watcher creates it again`,
  );
}

export async function ensureStreams(
  nc: NatsConnection,
  options: TopologyOptions = {},
): Promise<JetStreamManager> {
  const jsm = await jetstreamManagerFor(nc, 'the JetStream API');
  for (const config of streamConfigs(options))
    await upsertStream(jsm, config, options.updateExisting ?? false);
  if (options.updateExisting) await boundExistingBuckets(jsm, options.onBucketLimitError);
  return jsm;
}

/**
 * Gives a stream that exists (a KV bucket's, which Kvm.create leaves as it finds it) the replica
 * count. Failing to is not optional like a bucket's size limits: a bucket left with one copy
 * loses its data with its server, so the error stops the declaration (and readiness) until fixed.
 */
export async function ensureStreamReplicas(jsm: JetStreamManager, stream: string, replicas: number): Promise<void> {
  const what = `the stream ${stream}`;
  const info = await jsm.streams.info(stream).catch((error: unknown) => {
    throw explainReplicasError(error, what, replicas);
  });
  if ((info.config.num_replicas || 1) === replicas) return;
  await jsm.streams.update(stream, { ...info.config, num_replicas: replicas }).catch((error: unknown) => {
    throw explainReplicasError(error, what, replicas);
  });
}

/** The size limits of each bucket, as KV options (at creation) and as stream settings (for updates). */
export const BUCKET_LIMITS = {
  [BUCKETS.activity]: {
    max_bytes: DEFAULT_STREAM_LIMITS.activityBucketMaxBytes,
    maxValueSize: DEFAULT_STREAM_LIMITS.bucketMaxValueSize,
  },
} as const;

/**
 * Kvm.create leaves an existing bucket as it is, so buckets created before they had limits get
 * them here, from the one service that updates the topology (the watcher).
 */
async function boundExistingBuckets(
  jsm: JetStreamManager,
  onError: (bucket: string, error: Error) => void = () => undefined,
): Promise<void> {
  for (const [bucket, limits] of Object.entries(BUCKET_LIMITS)) {
    const stream = `KV_${bucket}`;
    let current: StreamConfig;
    try {
      current = (await jsm.streams.info(stream)).config;
    } catch (error) {
      // Not created yet: its owner creates it with the limits.
      if (!/not found/i.test((error as Error).message)) onError(bucket, error as Error);
      continue;
    }
    if (current.max_bytes === limits.max_bytes && current.max_msg_size === limits.maxValueSize) continue;
    try {
      await jsm.streams.update(stream, { max_bytes: limits.max_bytes, max_msg_size: limits.maxValueSize });
    } catch (error) {
      onError(bucket, error as Error);
    }
  }
}

/** The unpinned consumer of releases before partitions: it filters every work subject, so a workqueue stream refuses any other consumer while it exists. */
const LEGACY_WORK_CONSUMER = 'reconciler';

/**
 * One durable pull consumer per work partition, each with a pinned-client priority group: every
 * reconciler pulls every partition, and the server delivers a partition's items to one of them
 * only (the pinned one) until it stops pulling for `pinTimeoutMs`; then another takes over.
 */
/**
 * Work items a partition hands its worker before the worker acknowledges any: what a worker holds
 * in memory at most, per partition it is pinned to. The rest wait in the stream, where a newer
 * trigger of a key replaces the older one (max_msgs_per_subject 1), so nothing is lost by keeping
 * them there. With 1,000 (before), a worker took every item of its partitions at once: in a
 * 2,000-Session pipeline run each of 3 workers held 440–750 keys while doing 8 reconciles at a
 * time of about 2.5 s each (a Service create takes the API server 1–1.5 s), so items sat in its
 * queue for minutes, past `ack_wait`, and JetStream delivered them again every 30 s (≈220
 * redeliveries per partition): NATS traffic, heap in the worker for every copy, and a delivery
 * count that the worker reads as failed attempts (MAX_ATTEMPTS). With 16 a worker of three
 * sharing twelve partitions holds at most 64 items, 10–20 s of work at the rate measured there (3–5
 * reconciles a second per worker), and still has eight times its default concurrency to choose
 * from; a single worker holding all twelve partitions holds 192, which at that rate can outlast
 * `ack_wait` — bounded, where it was every item of the partition.
 */
export const WORK_MAX_ACK_PENDING = 16;

/** The durable consumer of one work partition (see ensureWorkConsumers). */
export function workConsumerConfig(partition: number, options: TopologyOptions = {}) {
  return {
    durable_name: workConsumerName(partition),
    filter_subject: subjects.workPartition(partition),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: (options.workAckWaitSeconds ?? 30) * SECOND_NS,
    // Attempts are counted and dead-lettered by the reconciler itself (it knows the reason).
    max_deliver: -1,
    max_ack_pending: WORK_MAX_ACK_PENDING,
    priority_policy: 'pinned_client' as const,
    priority_groups: [WORK_PRIORITY_GROUP],
    priority_timeout: (options.pinTimeoutMs ?? DEFAULT_PIN_TIMEOUT_MS) * 1_000_000,
    // Each consumer holds its partition's delivery state: as many copies as the stream.
    num_replicas: options.replicas ?? 1,
  };
}

export async function ensureWorkConsumers(jsm: JetStreamManager, options: TopologyOptions = {}): Promise<void> {
  const partitions = options.workPartitions ?? DEFAULT_WORK_PARTITIONS;
  await jsm.consumers.delete(STREAMS.work, LEGACY_WORK_CONSUMER).catch((error: Error) => {
    if (!/not found/i.test(error.message)) throw error;
  });
  for (let partition = 0; partition < partitions; partition++) {
    const config = workConsumerConfig(partition, options);
    const name = config.durable_name;
    try {
      await jsm.consumers.info(STREAMS.work, name);
      // Only these settings can change on an existing consumer (the policy and groups cannot).
      await jsm.consumers.update(STREAMS.work, name, {
        ack_wait: config.ack_wait,
        max_ack_pending: config.max_ack_pending,
        priority_timeout: config.priority_timeout,
        num_replicas: config.num_replicas,
      });
    } catch (error) {
      if (!/not found/i.test((error as Error).message))
        throw explainReplicasError(error, `the consumer ${name}`, config.num_replicas);
      await jsm.consumers.add(STREAMS.work, config).catch((addError: Error) => {
        // Another watcher created it in between.
        if (!/already (in use|exists)/i.test(addError.message))
          throw explainReplicasError(addError, `the consumer ${name}`, config.num_replicas);
      });
    }
  }
}
