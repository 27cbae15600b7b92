import type { KV, KvEntry } from '@nats-io/kv';
import { createLogger, Readiness } from '@streamspace/shared';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { chunkKey, decodeEntry, encodeChunk } from './activity-chunks.js';
import { ActivityStore, readStoredActivity } from './activity-store.js';
import { createReaperMetrics } from './reaper-metrics.js';

/**
 * A stand-in for the bucket: entries by key, a delay per operation so writes from two stores
 * interleave, and the watch as a list of the entries written, each store's `learn` fed from it
 * by the test. The real bucket is exercised by the integration tests.
 */
class FakeBucket {
  readonly entries = new Map<string, Uint8Array>();
  readonly written: Pick<KvEntry, 'key' | 'operation' | 'value'>[] = [];
  puts = 0;
  failing = false;
  /** Writes that succeed before every further one fails (a process dying in the middle of a flush). */
  putsLeft = Number.POSITIVE_INFINITY;

  private async tick(): Promise<void> {
    await new Promise((r) => setTimeout(r, Math.random() * 2));
  }

  async get(key: string): Promise<Pick<KvEntry, 'operation' | 'value'> | null> {
    const value = this.entries.get(key);
    return value ? { operation: 'PUT', value } : null;
  }

  async keys(filter: string): Promise<AsyncIterable<string>> {
    const prefix = filter.replace(/>$/, '');
    const keys = [...this.entries.keys()].filter((k) => k.startsWith(prefix));
    return (async function* () {
      yield* keys;
    })();
  }

  async put(key: string, data: string): Promise<number> {
    await this.tick();
    if (this.failing || this.putsLeft-- <= 0) throw new Error('TIMEOUT');
    this.puts++;
    const value = new TextEncoder().encode(data);
    this.entries.set(key, value);
    this.written.push({ key, operation: 'PUT', value });
    return this.puts;
  }

  async delete(key: string): Promise<void> {
    this.entries.delete(key);
    this.written.push({ key, operation: 'DEL', value: new Uint8Array() });
  }

  storedAt(key: string): Promise<number | undefined> {
    return readStoredActivity(this, key);
  }
}

let writers = 0;

function store(
  bucket: FakeBucket,
  changes: [string, number][] = [],
  flushIntervalMs = 60_000,
  maxValueBytes = 1_024,
) {
  return new ActivityStore(bucket as unknown as KV, {
    log: createLogger('test', 'silent'),
    readiness: new Readiness(),
    metrics: createReaperMetrics(new Registry()),
    writer: `replica-${++writers}`,
    keyFilter: '>',
    onChange: (key, at) => changes.push([key, at]),
    flushIntervalMs,
    maxValueBytes,
  });
}

describe('activity entries', () => {
  it('encodes many Sessions to an entry and reads them back', () => {
    const times: [string, number][] = Array.from({ length: 30 }, (_, i) => [
      `desktop-of-user-${i}`,
      1_764_470_000_000 + i,
    ]);
    const read = decodeEntry(chunkKey('ns', 'w', 3), new TextEncoder().encode(encodeChunk(times)));
    expect(read).toHaveLength(30);
    expect(read[29]).toEqual(['ns.desktop-of-user-29', 1_764_470_000_029]);
  });

  it('reads an entry of the former format (one per Session), and nothing from garbage', () => {
    const at = Date.parse('2025-01-31T10:00:00.123Z');
    const encode = (s: string) => new TextEncoder().encode(s);
    expect(decodeEntry('ns.a', encode(JSON.stringify({ at: new Date(at).toISOString() })))).toEqual([
      ['ns.a', at],
    ]);
    expect(decodeEntry('ns.a', encode('{"at":"nope"}'))).toEqual([]);
    expect(decodeEntry('ns._chunk.w.0', encode('{"t":{"a":"x","b":5}}'))).toEqual([['ns.b', 5]]);
    expect(decodeEntry('ns._chunk.w.0', encode('not json'))).toEqual([]);
  });
});

describe('ActivityStore', () => {
  it('stores a later time at the flush, refuses an earlier one, and tells of each move', async () => {
    const bucket = new FakeBucket();
    const changes: [string, number][] = [];
    const s = store(bucket, changes);
    expect(await s.record('ns.a', 1_000)).toBe(true);
    expect(await s.record('ns.a', 900)).toBe(false);
    // Held in memory: this replica decides with it at once; the bucket has it after the flush.
    expect(s.get('ns.a')).toBe(1_000);
    expect(await bucket.storedAt('ns.a')).toBeUndefined();
    await s.flush();
    expect(await s.record('ns.a', 1_500)).toBe(true);
    await s.flush();
    expect(await bucket.storedAt('ns.a')).toBe(1_500);
    expect(s.get('ns.a')).toBe(1_500);
    expect(changes).toEqual([
      ['ns.a', 1_000],
      ['ns.a', 1_500],
    ]);
  });

  it('never moves a time back, whatever two replicas flush concurrently and whatever order their entries are read in', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 1_000_000 }), fc.boolean()), {
          minLength: 1,
          maxLength: 40,
        }),
        fc.integer({ min: 0, max: 1_000 }),
        async (reports, seed) => {
          const bucket = new FakeBucket();
          const replicas = [store(bucket), store(bucket)];
          const reader = store(bucket);
          const flushes: Promise<void>[] = [];
          for (const [second, at, flushNow] of reports) {
            const replica = replicas[second ? 1 : 0]!;
            replica.offer('ns.a', at);
            if (flushNow) flushes.push(replica.flush());
          }
          await Promise.all(flushes);
          await Promise.all(replicas.map((r) => r.close()));
          const latest = Math.max(...reports.map(([, at]) => at));
          expect(await bucket.storedAt('ns.a')).toBe(latest);
          // A replica that reads the entries in any order ends at the latest time, never below
          // one it has already seen.
          const order = [...bucket.written].sort(
            (a, b) => ((a.value.length * 31 + seed) % 7) - ((b.value.length * 31 + seed) % 7),
          );
          let seen = 0;
          for (const entry of order) {
            reader.learn(entry);
            const now = reader.get('ns.a') ?? 0;
            expect(now).toBeGreaterThanOrEqual(seen);
            seen = now;
          }
          expect(reader.get('ns.a')).toBe(latest);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('writes a flood of reports from 10,000 sessions as a few hundred packed writes per flush', async () => {
    const bucket = new FakeBucket();
    const changes: [string, number][] = [];
    const s = store(bucket, changes);
    for (let i = 0; i < 30_000; i++) s.offer(`ns.session-${i % 10_000}`, 1_764_470_000_000 + i);
    expect(s.offer('ns.session-5', 5)).toBe(false);
    // What this replica knows already includes what it holds.
    expect(s.get('ns.session-0')).toBe(1_764_470_000_000 + 20_000);
    expect(s.heldCount).toBe(10_000);
    expect(bucket.puts).toBe(0);
    await s.flush();
    expect(bucket.puts).toBeGreaterThan(100);
    expect(bucket.puts).toBeLessThan(400);
    expect(changes).toHaveLength(10_000);
    for (const value of bucket.entries.values()) expect(value.length).toBeLessThanOrEqual(1_024);
    expect(await bucket.storedAt('ns.session-9999')).toBe(1_764_470_000_000 + 29_999);
    const firstFlush = bucket.puts;
    // One session reporting again rewrites its entry, no more.
    s.offer('ns.session-0', 1_764_470_100_000);
    await s.flush();
    expect(bucket.puts).toBe(firstFlush + 1);
    expect(await bucket.storedAt('ns.session-0')).toBe(1_764_470_100_000);
    // Its own entries come back through the watch: nothing to learn from them.
    changes.length = 0;
    for (const entry of bucket.written) s.learn(entry);
    expect(changes).toEqual([]);
    await s.close();
  });

  it('stores a Session no more once forgotten, and deletes the entries it no longer needs', async () => {
    const bucket = new FakeBucket();
    // Two Sessions' times to an entry.
    const s = store(bucket, [], 60_000, 64);
    for (let i = 0; i < 10; i++) s.offer(`ns.s${i}`, 1_764_470_000_000 + i);
    await s.flush();
    const entries = bucket.entries.size;
    expect(entries).toBe(5);
    for (let i = 1; i < 10; i++) s.forget(`ns.s${i}`);
    s.offer('ns.s0', 1_764_470_005_000);
    await s.flush();
    expect(bucket.entries.size).toBe(1);
    expect(await bucket.storedAt('ns.s0')).toBe(1_764_470_005_000);
    expect(await bucket.storedAt('ns.s5')).toBeUndefined();
    await s.close();
  });

  it('keeps each Session in its entry, so a flush cut off half-way loses no stored time', async () => {
    const bucket = new FakeBucket();
    // Two Sessions' times to an entry.
    const s = store(bucket, [], 60_000, 64);
    for (let i = 0; i < 12; i++) s.offer(`ns.s${i}`, 1_764_470_000_000 + i);
    await s.flush();
    expect(bucket.entries.size).toBe(6);
    // Sessions leave from the first entries, new ones come; then everyone reports and the flush
    // dies after two writes.
    const gone = [0, 1, 3];
    for (const i of gone) s.forget(`ns.s${i}`);
    const staying = Array.from({ length: 16 }, (_, i) => i).filter((i) => !gone.includes(i));
    for (const i of staying) s.offer(`ns.s${i}`, 1_764_470_100_000 + i);
    bucket.putsLeft = 2;
    await s.flush();
    for (const i of staying.filter((i) => i < 12)) {
      const stored = await bucket.storedAt(`ns.s${i}`);
      expect(stored, `ns.s${i}`).toBeGreaterThanOrEqual(1_764_470_000_000 + i);
    }
    await s.close();
  });

  it('writes what it holds when closed', async () => {
    const bucket = new FakeBucket();
    const s = store(bucket);
    s.offer('ns.a', 1_000);
    await s.close();
    expect(await bucket.storedAt('ns.a')).toBe(1_000);
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
    expect(await bucket.storedAt('ns.a')).toBe(1_000);
    expect(await bucket.storedAt('ns.b')).toBe(2_000);
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
    expect(await bucket.storedAt('ns.a')).toBeUndefined();
  });

  it('gives a newer report every attempt again after failed flushes', async () => {
    const bucket = new FakeBucket();
    const s = store(bucket);
    bucket.failing = true;
    s.offer('ns.a', 1_000);
    for (let i = 0; i < 4; i++) await s.flush();
    expect(s.offer('ns.a', 2_000)).toBe(true);
    for (let i = 0; i < 4; i++) await s.flush();
    expect(s.heldCount).toBe(1);
    bucket.failing = false;
    await s.flush();
    expect(await bucket.storedAt('ns.a')).toBe(2_000);
    await s.close();
  });

  it('keeps the time of a Session whose name no entry can hold in memory', async () => {
    const bucket = new FakeBucket();
    const s = store(bucket, [], 60_000, 64);
    const key = `ns.${'x'.repeat(100)}`;
    expect(s.offer(key, 1_000)).toBe(true);
    await s.flush();
    expect(s.heldCount).toBe(0);
    expect(s.get(key)).toBe(1_000);
    expect(s.offer(key, 500)).toBe(false);
    await s.close();
  });
});
