import { describe, expect, it } from 'vitest';
import {
  DEFAULT_STREAM_LIMITS,
  EVENT_ENVELOPE_BYTES,
  explainUpdateRefusal,
  streamConfigs,
  WORK_MAX_ACK_PENDING,
  workConsumerConfig,
} from './jetstream-topology.js';
import { DEFAULT_MAX_OBJECT_BYTES } from './object-trim.js';
import { STREAMS } from './subjects.js';

describe('streamConfigs', () => {
  // The commands stream's limits are its own (one pending command per session).
  const bounded = () => streamConfigs().filter((c) => c.name !== STREAMS.commands);

  it('gives every stream a total and a per-message size limit', () => {
    expect(bounded().map((c) => c.name)).toEqual([STREAMS.events, STREAMS.work, STREAMS.deadLetter]);
    for (const config of bounded()) {
      expect(config.max_bytes, config.name).toBeGreaterThan(0);
      expect(config.max_msg_size, config.name).toBeGreaterThan(0);
    }
  });

  it('sizes change events from the watcher’s bound on one object, and takes the configured totals', () => {
    const [events, work, deadLetter] = streamConfigs({
      maxObjectBytes: 10_000,
      eventsMaxBytes: 1_000_000,
      workMaxBytes: 2_000_000,
      deadLetterMaxBytes: 3_000_000,
    });
    expect(events).toMatchObject({ max_msg_size: 10_000 + EVENT_ENVELOPE_BYTES, max_bytes: 1_000_000 });
    expect(work).toMatchObject({ max_bytes: 2_000_000, max_msg_size: DEFAULT_STREAM_LIMITS.workMaxMsgSize });
    expect(deadLetter).toMatchObject({ max_bytes: 3_000_000 });
    expect(streamConfigs()[0]?.max_msg_size).toBe(DEFAULT_MAX_OBJECT_BYTES + EVENT_ENVELOPE_BYTES);
  });
});

describe('replicas', () => {
  it('gives every stream the replica count asked for, one by default', () => {
    for (const config of streamConfigs()) expect(config.num_replicas, config.name).toBe(1);
    for (const config of streamConfigs({ replicas: 3 })) expect(config.num_replicas, config.name).toBe(3);
  });
});

describe('workConsumerConfig', () => {
  it('hands a worker a bounded number of items per partition, not every item of it', () => {
    for (const partition of [0, 7]) {
      const config = workConsumerConfig(partition);
      expect(config.max_ack_pending).toBe(WORK_MAX_ACK_PENDING);
      // Held items must be done within ack_wait: a few dozen per worker, not the partition's backlog.
      expect(config.max_ack_pending).toBeLessThanOrEqual(32);
      expect(config.durable_name).toBe(`reconciler-p${partition}`);
      expect(config.filter_subject).toBe(`streamspace.work.${partition}.>`);
    }
  });

  it('takes the ack wait, pin timeout and replicas asked for', () => {
    const config = workConsumerConfig(3, { workAckWaitSeconds: 10, pinTimeoutMs: 2_000, replicas: 3 });
    expect(config.ack_wait).toBe(10 * 1_000_000_000);
    expect(config.priority_timeout).toBe(2_000 * 1_000_000);
    expect(config.num_replicas).toBe(3);
  });
});

describe('explainUpdateRefusal', () => {
  const natsError = (message: string, code: number) => Object.assign(new Error(message), { code });

  it('names the stream and what to do when NATS will not change a setting of an existing one', () => {
    // What nats-server 2.14 answers when the work stream exists as a limits stream (measured).
    const error = explainUpdateRefusal(
      natsError('stream configuration update can not change retention policy to/from workqueue', 10052),
      STREAMS.work,
      1,
    );
    expect(error.message).toMatch(
      /the stream STREAMSPACE_WORK exists with settings NATS will not change.*retention policy.*nats stream rm STREAMSPACE_WORK/,
    );
  });

  it('leaves a refused replica count to explainReplicasError, and other errors alone', () => {
    expect(
      explainUpdateRefusal(natsError('replicas configuration can not be updated', 10061), STREAMS.work, 3)
        .message,
    ).toMatch(/another replica count.*NATS_REPLICAS/);
    const other = new Error('timeout');
    expect(explainUpdateRefusal(other, STREAMS.work, 3)).toBe(other);
  });
});
