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

function store(bucket: FakeBucket, changes: [string, number][] = [], flushIntervalMs = 60_000) {
  return new ActivityStore(bucket as unknown as KV, {
    log: createLogger('test', 'silent'),
    readiness: new Readiness(),
    metrics: createReaperMetrics(new Registry()),
    keyFilter: '>',
    onChange: (key, at) => changes.push([key, at]),
    flushIntervalMs,
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

  it('stores a later time at the flush, refuses an earlier one, and tells of each move', async () => {
    const bucket = new FakeBucket();
    const changes: [string, number][] = [];
    const s = store(bucket, changes);
    expect(await s.record('ns.a', 1_000)).toBe(true);
    expect(await s.record('ns.a', 900)).toBe(false);
    // Held in memory: this replica decides with it at once; the bucket has it after the flush.
    expect(s.get('ns.a')).toBe(1_000);
    expect(bucket.storedAt('ns.a')).toBeUndefined();
    await s.flush();
    expect(await s.record('ns.a', 1_500)).toBe(true);
    await s.flush();
    expect(bucket.storedAt('ns.a')).toBe(1_500);
    expect(s.get('ns.a')).toBe(1_500);
    expect(changes).toEqual([
      ['ns.a', 1_000],
      ['ns.a', 1_500],
    ]);
  });

  it('never moves a time back, whatever two replicas flush concurrently', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 1_000_000 }), fc.boolean()), {
          minLength: 1,
          maxLength: 40,
        }),
        async (reports) => {
          const bucket = new FakeBucket();
          const replicas = [store(bucket), store(bucket)];
          const flushes: Promise<void>[] = [];
          for (const [second, at, flushNow] of reports) {
            const replica = replicas[second ? 1 : 0]!;
            replica.offer('ns.a', at);
            if (flushNow) flushes.push(replica.flush());
          }
          await Promise.all(flushes);
          await Promise.all(replicas.map((r) => r.close()));
          expect(bucket.storedAt('ns.a')).toBe(Math.max(...reports.map(([, at]) => at)));
        },
      ),
      { numRuns: 50 },
    );
  });

  it('writes a flood of reports as one write per session per flush', async () => {
    const bucket = new FakeBucket();
    const s = store(bucket, [], 200);
    for (let at = 1; at <= 10_000; at++) s.offer(`ns.s${at % 100}`, at);
    expect(s.offer('ns.s5', 5)).toBe(false);
    // What this replica knows already includes what it holds.
    expect(s.get('ns.s0')).toBe(10_000);
    expect(s.heldCount).toBe(100);
    expect(bucket.puts).toBe(0);
    await new Promise((r) => setTimeout(r, 350));
    expect(bucket.puts).toBe(100);
    expect(bucket.storedAt('ns.s0')).toBe(10_000);
    for (let at = 10_001; at <= 20_000; at++) s.offer('ns.s0', at);
    await new Promise((r) => setTimeout(r, 400));
    expect(bucket.storedAt('ns.s0')).toBe(20_000);
    expect(bucket.puts).toBe(101);
    await s.close();
  });

  it('writes what it holds when closed', async () => {
    const bucket = new FakeBucket();
    const s = store(bucket);
    s.offer('ns.a', 1_000);
    await s.close();
    expect(bucket.storedAt('ns.a')).toBe(1_000);
  });

  it('tells a waiting reporter to retry while the bucket cannot be written, and keeps the report', async () => {
    const bucket = new FakeBucket();
    const s = store(bucket);
    bucket.failing = true;
    expect(await s.record('ns.a', 1_000)).toBe(true);
    await s.flush();
    await expect(s.record('ns.b', 2_000)).rejects.toThrow('cannot be written: TIMEOUT');
    expect(s.heldCount).toBe(2);
    bucket.failing = false;
    await s.flush();
    expect(bucket.storedAt('ns.a')).toBe(1_000);
    expect(bucket.storedAt('ns.b')).toBe(2_000);
    expect(await s.record('ns.c', 3_000)).toBe(true);
    await s.close();
  });

  it('drops a report after several failed flushes', async () => {
    const bucket = new FakeBucket();
    const s = store(bucket);
    bucket.failing = true;
    s.offer('ns.a', 1_000);
    for (let i = 0; i < 5; i++) await s.flush();
    expect(s.heldCount).toBe(0);
    bucket.failing = false;
    await s.close();
    expect(bucket.storedAt('ns.a')).toBeUndefined();
  });
});
