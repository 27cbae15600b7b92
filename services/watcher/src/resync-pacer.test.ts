import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ResyncPacer } from './resync-pacer.js';

describe('ResyncPacer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function recorder() {
    const batches: { at: number; items: number[] }[] = [];
    return { batches, emit: (items: number[]) => batches.push({ at: Date.now(), items }) };
  }
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);

  it('announces every item once, in order, at the configured rate', () => {
    const { batches, emit } = recorder();
    const pacer = new ResyncPacer<number>({ ratePerSecond: 20, maxSpreadMs: 90_000, emit, tickMs: 200 });
    const start = Date.now();
    pacer.start(range(100)); // 100 items at 20/s: 5 s
    expect(batches).toHaveLength(1);
    expect(batches[0]?.items).toEqual([0, 1, 2, 3]);
    vi.advanceTimersByTime(10_000);
    expect(batches.flatMap((b) => b.items)).toEqual(range(100));
    const last = batches.at(-1) as { at: number };
    expect(last.at - start).toBeGreaterThanOrEqual(4_600);
    expect(last.at - start).toBeLessThanOrEqual(5_000);
    expect(pacer.pending).toBe(0);
  });

  it('never spreads longer than the cap, however many items', () => {
    const { batches, emit } = recorder();
    const pacer = new ResyncPacer<number>({ ratePerSecond: 20, maxSpreadMs: 10_000, emit, tickMs: 200 });
    const start = Date.now();
    pacer.start(range(10_000)); // 500 s at 20/s, capped at 10 s
    vi.advanceTimersByTime(60_000);
    expect(batches.flatMap((b) => b.items)).toHaveLength(10_000);
    expect((batches.at(-1) as { at: number }).at - start).toBeLessThanOrEqual(10_000);
  });

  it('sends a small resync at once', () => {
    const { batches, emit } = recorder();
    new ResyncPacer<number>({ ratePerSecond: 20, maxSpreadMs: 90_000, emit }).start(range(3));
    expect(batches).toEqual([{ at: Date.now(), items: [0, 1, 2] }]);
  });

  it('a new resync replaces what is left of the previous one; stop drops the rest', () => {
    const { batches, emit } = recorder();
    const pacer = new ResyncPacer<number>({ ratePerSecond: 10, maxSpreadMs: 90_000, emit, tickMs: 100 });
    pacer.start(range(50));
    vi.advanceTimersByTime(1_000);
    const sentOfFirst = batches.flatMap((b) => b.items).length;
    expect(sentOfFirst).toBeLessThan(50);
    pacer.start([100, 101]);
    vi.advanceTimersByTime(10_000);
    expect(batches.flatMap((b) => b.items).slice(sentOfFirst)).toEqual([100, 101]);
    pacer.start(range(50));
    pacer.stop();
    const before = batches.length;
    vi.advanceTimersByTime(10_000);
    expect(batches.length).toBe(before);
    expect(pacer.pending).toBe(0);
  });
});
