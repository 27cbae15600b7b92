import {
  AckPolicy,
  type Consumer,
  DeliverPolicy,
  type JetStreamManager,
  jetstream,
  StorageType,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { explainNoQuorum, explainReplicasError, jetstreamManagerFor } from './jetstream-replicas.js';
import {
  BUCKET_LIMITS,
  ensureStreamReplicas,
  ensureStreams,
  ensureWorkConsumers,
  type TopologyOptions,
} from './jetstream-topology.js';
import { openStateBucket } from './shared-state.js';
import { BUCKETS, CONSUMERS, STREAMS } from './subjects.js';
import { recordedPartitions, WORK_PARTITIONS_METADATA, workConsumerName } from './work-partitions.js';

/**
 * Who declares the JetStream topology. The watcher alone creates and updates streams, durable
 * consumers and KV buckets (its NATS user is the only one allowed to, see nats-permissions.ts);
 * every other service binds to what exists and stays not ready, with a message saying what is
 * missing, until the watcher has declared it.
 */

const SECOND_NS = 1_000_000_000;

export interface DeclareOptions extends TopologyOptions {
  /** How long a session's last activity is kept (the activity bucket's TTL). */
  activityTtlMs: number;
}

/** The shared durable pull consumer of the commands stream (every reaper replica's executor). */
export async function ensureCommandConsumer(jsm: JetStreamManager, replicas = 1): Promise<void> {
  const what = `the consumer ${CONSUMERS.commandExecutor}`;
  const config = {
    durable_name: CONSUMERS.commandExecutor,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: 30 * SECOND_NS,
    max_deliver: -1,
    max_ack_pending: 1_000,
    num_replicas: replicas,
  };
  try {
    const info = await jsm.consumers.info(STREAMS.commands, CONSUMERS.commandExecutor);
    if ((info.config.num_replicas || 0) !== replicas)
      await jsm.consumers.update(STREAMS.commands, CONSUMERS.commandExecutor, { num_replicas: replicas });
  } catch (error) {
    if (!/not found/i.test((error as Error).message)) throw explainReplicasError(error, what, replicas);
    try {
      await jsm.consumers.add(STREAMS.commands, config);
    } catch (addError) {
      // Another watcher created it in between.
      if (!/already (in use|exists)/i.test((addError as Error).message))
        throw explainReplicasError(addError, what, replicas);
    }
  }
}

/** Everything the services use on JetStream, created or brought up to date. The watcher's job. */
export async function declareTopology(nc: NatsConnection, options: DeclareOptions): Promise<void> {
  const jsm = await ensureStreams(nc, { ...options, updateExisting: true });
  await ensureWorkConsumers(jsm, options);
  const replicas = options.replicas ?? 1;
  await ensureCommandConsumer(jsm, replicas);
  await new Kvm(nc)
    .create(BUCKETS.activity, {
      ttl: options.activityTtlMs,
      history: 1,
      storage: StorageType.File,
      replicas,
      ...BUCKET_LIMITS[BUCKETS.activity],
    })
    .catch((error: unknown) => {
      throw explainReplicasError(error, `the KV bucket ${BUCKETS.activity}`, replicas);
    });
  await openStateBucket(nc, options.maxObjectBytes, replicas);
  await new Kvm(nc)
    .create(BUCKETS.reaperMembers, REAPER_MEMBERS_BUCKET(replicas))
    .catch((error: unknown) => {
      throw explainReplicasError(error, `the KV bucket ${BUCKETS.reaperMembers}`, replicas);
    });
  // Kvm.create leaves an existing bucket as it is: buckets made before (or with another count) are moved here.
  for (const bucket of [BUCKETS.activity, BUCKETS.state, BUCKETS.reaperMembers])
    await ensureStreamReplicas(jsm, `KV_${bucket}`, replicas);
}

/**
 * The idle reapers' membership: one key per live replica, each heartbeat written with a
 * per-message TTL of the reaper's choosing (REAPER_MEMBER_TTL). When a replica stops writing, its
 * last heartbeat expires and the server leaves a delete marker, which the other replicas' watches
 * see: that is how they learn within seconds that it is gone. Memory storage: the content is
 * rewritten every few seconds and worthless after a restart. The max age only clears the markers
 * and keys of replicas that left.
 */
const REAPER_MEMBERS_BUCKET = (replicas: number) => ({
  history: 1,
  storage: StorageType.Memory,
  replicas,
  ttl: 10 * 60_000,
  markerTTL: 60_000,
  max_bytes: 1024 * 1024,
  maxValueSize: 1024,
});

/** What a service binds to is not there yet (the watcher has not declared it). */
export class TopologyMissingError extends Error {
  override name = 'TopologyMissingError';
}

/** Why `what` cannot be bound to: not declared yet, no quorum, or NATS's own words. */
export function bindError(what: string, error: unknown): Error {
  const message = (error as Error).message ?? String(error);
  if (/not found/i.test(message))
    return new TopologyMissingError(
      `${what} does not exist yet: the watcher declares it (is the watcher running, with its own NATS user?)`,
    );
  return explainNoQuorum(error, what) ?? new Error(`cannot read ${what}: ${message}`);
}

/** Binds to an existing durable consumer; never creates it. */
export async function bindConsumer(nc: NatsConnection, stream: string, consumer: string): Promise<Consumer> {
  const what = `the consumer ${consumer} of stream ${stream}`;
  const jsm = await jetstreamManagerFor(nc, what);
  try {
    await jsm.consumers.info(stream, consumer);
  } catch (error) {
    throw bindError(what, error);
  }
  return jetstream(nc).consumers.get(stream, consumer);
}

/** Opens an existing KV bucket; never creates or reconfigures it. Returns its TTL, replica count and manager too. */
export async function bindBucket(
  nc: NatsConnection,
  bucket: string,
): Promise<{ kv: KV; ttlMs: number; replicas: number; jsm: JetStreamManager }> {
  const what = `the KV bucket ${bucket}`;
  const jsm = await jetstreamManagerFor(nc, what);
  let info: Awaited<ReturnType<typeof jsm.streams.info>>;
  try {
    info = await jsm.streams.info(`KV_${bucket}`);
  } catch (error) {
    throw bindError(what, error);
  }
  const kv = await new Kvm(nc).open(bucket, { allow_direct: info.config.allow_direct ?? false });
  return {
    kv,
    ttlMs: Math.round((info.config.max_age ?? 0) / 1_000_000),
    replicas: info.config.num_replicas || 1,
    // The manager it was bound with, as bindWorkPartitions gives: not a second one outside the caller's retries.
    jsm,
  };
}

/** The work partitions as the watcher declared them: how many, their consumers, how long a pin outlives its holder. */
export interface WorkPartitions {
  partitions: number;
  consumers: Consumer[];
  pinTimeoutMs: number;
  /** The manager they were bound with: a caller that needs one uses it rather than asking NATS again outside its retries. */
  jsm: JetStreamManager;
}

/** Binds to every partition consumer of the work stream; never creates them. */
export async function bindWorkPartitions(nc: NatsConnection): Promise<WorkPartitions> {
  const jsm = await jetstreamManagerFor(nc, `the stream ${STREAMS.work}`);
  let metadata: Record<string, string> | undefined;
  try {
    metadata = (await jsm.streams.info(STREAMS.work)).config.metadata;
  } catch (error) {
    throw bindError(`the stream ${STREAMS.work}`, error);
  }
  const partitions = recordedPartitions(metadata);
  if (partitions === undefined)
    throw new TopologyMissingError(
      `the stream ${STREAMS.work} records no number of partitions (${WORK_PARTITIONS_METADATA}): the watcher declares it (is the watcher of this release running?)`,
    );
  const consumers: Consumer[] = [];
  let pinTimeoutMs = Number.POSITIVE_INFINITY;
  for (let partition = 0; partition < partitions; partition++) {
    const name = workConsumerName(partition);
    let info: Awaited<ReturnType<typeof jsm.consumers.info>>;
    try {
      info = await jsm.consumers.info(STREAMS.work, name);
    } catch (error) {
      throw bindError(`the consumer ${name} of stream ${STREAMS.work}`, error);
    }
    if (info.config.priority_policy !== 'pinned_client' || !info.config.priority_timeout)
      throw new TopologyMissingError(
        `the consumer ${name} of stream ${STREAMS.work} is not pinned to one client; the watcher declares it so`,
      );
    pinTimeoutMs = Math.min(pinTimeoutMs, info.config.priority_timeout / 1_000_000);
    consumers.push(await jetstream(nc).consumers.get(STREAMS.work, name));
  }
  return { partitions, consumers, pinTimeoutMs, jsm };
}
