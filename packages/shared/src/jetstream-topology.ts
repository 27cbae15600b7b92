import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { BUCKETS, CONSUMERS, STREAMS, subjects } from './subjects.js';

const SECOND_NS = 1_000_000_000;

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
  /** How long a work item may stay unacknowledged before JetStream hands it to another worker. */
  workAckWaitSeconds?: number;
}

/**
 * The streams as the services expect them. The watcher declares them at start (add, or update
 * if they exist; declareTopology in jetstream-ownership.ts), so a changed setting rolls out with
 * the next deploy; the other services only bind to them (their NATS users may not create).
 */
export function streamConfigs(options: TopologyOptions = {}): (Partial<StreamConfig> & { name: string })[] {
  return [
    {
      name: STREAMS.events,
      subjects: [subjects.eventsAll],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: (options.eventsMaxAgeSeconds ?? 24 * 3600) * SECOND_NS,
      // Two watchers publish the same change with the same message id; JetStream keeps one.
      duplicate_window: 120 * SECOND_NS,
      discard: DiscardPolicy.Old,
    },
    {
      name: STREAMS.work,
      subjects: [subjects.workAll],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      // One pending item per key: a burst of triggers for one Session collapses into one item,
      // because the newest replaces the older ones (the item carries no state, only a key).
      max_msgs_per_subject: 1,
      discard: DiscardPolicy.Old,
      duplicate_window: 120 * SECOND_NS,
    },
    {
      name: STREAMS.deadLetter,
      subjects: [subjects.deadLetterAll],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: (options.deadLetterMaxAgeSeconds ?? 7 * 24 * 3600) * SECOND_NS,
    },
    {
      name: STREAMS.commands,
      subjects: [subjects.commandsAll],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
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
  try {
    await jsm.streams.info(config.name);
    if (!updateExisting) return;
  } catch {
    try {
      await jsm.streams.add(config);
      return;
    } catch (error) {
      // Another replica created it between our look and our add.
      if (!/already in use|already exists/i.test((error as Error).message)) throw error;
    }
  }
  await jsm.streams.update(config.name, config);
}

export async function ensureStreams(
  nc: NatsConnection,
  options: TopologyOptions = {},
): Promise<JetStreamManager> {
  const jsm = await jetstreamManager(nc);
  for (const config of streamConfigs(options))
    await upsertStream(jsm, config, options.updateExisting ?? false);
  return jsm;
}

/** The shared durable pull consumer of the work queue: every reconciler replica pulls from it. */
export async function ensureWorkConsumer(
  jsm: JetStreamManager,
  options: TopologyOptions = {},
): Promise<void> {
  const config = {
    durable_name: CONSUMERS.reconciler,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: (options.workAckWaitSeconds ?? 30) * SECOND_NS,
    // Attempts are counted and dead-lettered by the reconciler itself (it knows the reason).
    max_deliver: -1,
    max_ack_pending: 10_000,
  };
  try {
    await jsm.consumers.info(STREAMS.work, CONSUMERS.reconciler);
    await jsm.consumers.update(STREAMS.work, CONSUMERS.reconciler, {
      ack_wait: config.ack_wait,
      max_ack_pending: config.max_ack_pending,
    });
  } catch {
    await jsm.consumers.add(STREAMS.work, config);
  }
}

/** The bucket of per-key locks; entries expire so a killed worker's lock frees itself. */
export async function openLockBucket(nc: NatsConnection, ttlMs: number): Promise<KV> {
  return new Kvm(nc).create(BUCKETS.locks, { ttl: ttlMs, history: 1, storage: StorageType.File });
}
