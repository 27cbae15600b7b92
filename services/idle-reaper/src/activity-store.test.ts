import { JetStreamApiError } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import { createLogger, Readiness } from '@streamspace/shared';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ActivityStore, decodeActivity, encodeActivity } from './activity-store.js';
import { createReaperMetrics } from './reaper-metrics.js';

/**
 * A stand-in for the bucket with JetStream's compare-and-set rule (the expected last revision of
 * the key must match), and a delay per operation so writes from two stores interleave. The real
 * bucket is exercised by the integration tests.
 */
class FakeBucket {
  private seq = 0;
  readonly entries = new Map<string, { value: Uint8Array; revision: number }>();
  puts = 0;
  failing = false;

  private async tick(): Promise<void> {
    await new Promise((r) => setTimeout(r, Math.random() * 2));
  }

  async get(key: string): Promise<Pick<KvEntry, 'operation' | 'value' | 'revision'> | null> {
    await this.tick();
    const e = this.entries.get(key);
    return e ? { operation: 'PUT', value: e.value, revision: e.revision } : null;
  }

  async put(key: string, data: string, options: { previousSeq: number }): Promise<number> {
    await this.tick();
    if (this.failing) throw new Error('TIMEOUT');
    const current = this.entries.get(key)?.revision ?? 0;
    if (current !== options.previousSeq) {
      throw new JetStreamApiError({ err_code: 10071, code: 400, description: 'wrong last sequence' });
    }
    this.puts++;
    const revision = ++this.seq;
    this.entries.set(key, { value: new TextEncoder().encode(data), revision });
    return revision;
  }

  storedAt(key: string): number | undefined {
    const e = this.entries.get(key);
    return e ? decodeActivity({ operation: 'PUT', value: e.value }) : undefined;
  }
}

function store(bucket: FakeBucket, changes: [string, number][] = [], minWriteIntervalMs = 0) {
  return new ActivityStore(bucket as unknown as KV, {
    log: createLogger('test', 'silent'),
    readiness: new Readiness(),
    metrics: createReaperMetrics(new Registry()),
    keyFilter: '>',
    onChange: (key, at) => changes.push([key, at]),
    minWriteIntervalMs,
  });
}

describe('ActivityStore', () => {
  it('encodes and decodes a stored time', () => {
    const at = Date.parse('2025-01-31T10:00:00.123Z');
    expect(decodeActivity({ operation: 'PUT', value: new TextEncoder().encode(encodeActivity(at)) })).toBe(
      at,
    );
    expect(decodeActivity({ operation: 'DEL', value: new Uint8Array() })).toBeUndefined();
    expect(
      decodeActivity({ operation: 'PUT', value: new TextEncoder().encode('{"at":"nope"}') }),
    ).toBeUndefined();
  });

  it('stores a later time, refuses an earlier one, and tells of each move', async () => {
    const bucket = new FakeBucket();
    const changes: [string, number][] = [];
    const s = store(bucket, changes);
    expect(await s.record('ns.a', 1_000)).toBe(true);
    expect(await s.record('ns.a', 900)).toBe(false);
    expect(await s.record('ns.a', 1_500)).toBe(true);
    expect(bucket.storedAt('ns.a')).toBe(1_500);
    expect(s.get('ns.a')).toBe(1_500);
    expect(changes).toEqual([
      ['ns.a', 1_000],
      ['ns.a', 1_500],
    ]);
  });

  it('never moves a time back, whatever two replicas write concurrently', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 1_000_000 })), {
          minLength: 1,
          maxLength: 40,
        }),
        async (reports) => {
          const bucket = new FakeBucket();
          const replicas = [store(bucket), store(bucket)];
          await Promise.all(reports.map(([second, at]) => replicas[second ? 1 : 0]!.record('ns.a', at)));
          expect(bucket.storedAt('ns.a')).toBe(Math.max(...reports.map(([, at]) => at)));
        },
      ),
      { numRuns: 50 },
    );
  });

  it('coalesces a flood of fire-and-forget reports into at most one write per interval', async () => {
    const bucket = new FakeBucket();
    const s = store(bucket, [], 200);
    for (let at = 1; at <= 10_000; at++) s.offer('ns.a', at);
    expect(s.offer('ns.a', 5)).toBe(false);
    // What this replica knows already includes what it is about to write.
    expect(s.get('ns.a')).toBe(10_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(bucket.storedAt('ns.a')).toBe(1);
    for (let at = 10_001; at <= 20_000; at++) s.offer('ns.a', at);
    await new Promise((r) => setTimeout(r, 400));
    expect(bucket.storedAt('ns.a')).toBe(20_000);
    expect(bucket.puts).toBe(2);
  });

  it('rejects a waiting report when the bucket cannot be written, and retries a queued one', async () => {
    const bucket = new FakeBucket();
    const s = store(bucket);
    bucket.failing = true;
    await expect(s.record('ns.a', 1_000)).rejects.toThrow('TIMEOUT');
    expect(s.offer('ns.b', 2_000)).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    bucket.failing = false;
    await new Promise((r) => setTimeout(r, 1_200));
    expect(bucket.storedAt('ns.b')).toBe(2_000);
    expect(bucket.storedAt('ns.a')).toBeUndefined();
  });
});
