import { describe, expect, it } from 'vitest';
import { DEFAULT_STREAM_LIMITS, EVENT_ENVELOPE_BYTES, streamConfigs } from './jetstream-topology.js';
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
