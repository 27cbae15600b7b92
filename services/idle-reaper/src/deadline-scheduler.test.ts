import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineScheduler } from './deadline-scheduler.js';

const T0 = Date.parse('2025-01-31T10:00:00Z');

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(T0);
});
afterEach(() => vi.useRealTimers());

function recorder() {
  const fired: { key: string; at: number; firedAt: number }[] = [];
  const scheduler = new DeadlineScheduler({
    onDue: (key, at) => fired.push({ key, at, firedAt: Date.now() }),
  });
  return { fired, scheduler };
}

describe('DeadlineScheduler', () => {
  it('fires each key at its deadline, in order', () => {
    const { fired, scheduler } = recorder();
    scheduler.start();
    scheduler.schedule('b', T0 + 2_000);
    scheduler.schedule('a', T0 + 1_000);
    scheduler.schedule('c', T0 + 3_500);
    vi.advanceTimersByTime(999);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired.map((f) => f.key)).toEqual(['a']);
    vi.advanceTimersByTime(3_000);
    expect(fired.map((f) => [f.key, f.firedAt - f.at])).toEqual([
      ['a', 0],
      ['b', 0],
      ['c', 0],
    ]);
    expect(scheduler.size).toBe(0);
  });

  it('replaces a key’s deadline when it is rescheduled, and forgets a cancelled key', () => {
    const { fired, scheduler } = recorder();
    scheduler.start();
    scheduler.schedule('a', T0 + 1_000);
    scheduler.schedule('a', T0 + 5_000);
    scheduler.schedule('b', T0 + 2_000);
    scheduler.cancel('b');
    vi.advanceTimersByTime(4_999);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired.map((f) => f.key)).toEqual(['a']);
  });

  it('moves a deadline earlier', () => {
    const { fired, scheduler } = recorder();
    scheduler.start();
    scheduler.schedule('a', T0 + 60_000);
    scheduler.schedule('a', T0 + 500);
    vi.advanceTimersByTime(500);
    expect(fired).toHaveLength(1);
    vi.advanceTimersByTime(120_000);
    expect(fired).toHaveLength(1);
  });

  it('fires deadlines already past at once when started, and holds them before', () => {
    const { fired, scheduler } = recorder();
    scheduler.schedule('old', T0 - 3_600_000);
    scheduler.schedule('new', T0 + 1_000);
    vi.advanceTimersByTime(5_000);
    expect(fired).toEqual([]);
    scheduler.start();
    vi.advanceTimersByTime(0);
    expect(fired.map((f) => f.key)).toEqual(['old', 'new']);
  });

  it('notices the wall clock jumping forward within a second', () => {
    const { fired, scheduler } = recorder();
    scheduler.start();
    scheduler.schedule('a', T0 + 3_600_000);
    // The system clock jumps an hour ahead; timers (monotonic) have not moved.
    vi.setSystemTime(T0 + 3_600_000 + 10);
    vi.advanceTimersByTime(1_000);
    expect(fired.map((f) => f.key)).toEqual(['a']);
  });

  it('does not fire early when the wall clock jumps back', () => {
    const { fired, scheduler } = recorder();
    scheduler.start();
    scheduler.schedule('a', T0 + 5_000);
    vi.setSystemTime(T0 - 60_000);
    vi.advanceTimersByTime(10_000);
    expect(fired).toEqual([]);
    vi.setSystemTime(T0 + 5_000);
    vi.advanceTimersByTime(1_000);
    expect(fired.map((f) => f.key)).toEqual(['a']);
  });

  it('lets onDue reschedule the same key without spinning', () => {
    let calls = 0;
    const scheduler: DeadlineScheduler = new DeadlineScheduler({
      onDue: (key) => {
        calls++;
        if (calls < 3) scheduler.schedule(key, Date.now());
      },
    });
    scheduler.start();
    scheduler.schedule('a', T0);
    vi.advanceTimersByTime(10);
    expect(calls).toBe(3);
  });

  it('stops firing when stopped', () => {
    const { fired, scheduler } = recorder();
    scheduler.start();
    scheduler.schedule('a', T0 + 1_000);
    scheduler.stop();
    vi.advanceTimersByTime(10_000);
    expect(fired).toEqual([]);
  });

  it('copes with ten thousand keys rescheduled many times, firing each once at its latest deadline', () => {
    const { fired, scheduler } = recorder();
    scheduler.start();
    const latest = new Map<string, number>();
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 10_000; i++) {
        const at = T0 + 1_000 + ((i * 7919 + round * 104_729) % 600_000);
        scheduler.schedule(`s${i}`, at);
        latest.set(`s${i}`, at);
      }
    }
    expect(scheduler.size).toBe(10_000);
    vi.advanceTimersByTime(601_000);
    expect(fired).toHaveLength(10_000);
    for (const f of fired) expect(f.at).toBe(latest.get(f.key));
    expect(Math.max(...fired.map((f) => f.firedAt - f.at))).toBeLessThanOrEqual(0);
  });

  it('fires exactly the live deadlines, in time order, whatever the sequence of operations', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('schedule' as const),
        key: fc.integer({ min: 0, max: 20 }),
        offset: fc.integer({ min: 0, max: 10_000 }),
      }),
      fc.record({ kind: fc.constant('cancel' as const), key: fc.integer({ min: 0, max: 20 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        vi.setSystemTime(T0);
        const { fired, scheduler } = recorder();
        const live = new Map<string, number>();
        for (const o of ops) {
          if (o.kind === 'schedule') {
            scheduler.schedule(`k${o.key}`, T0 + o.offset);
            live.set(`k${o.key}`, T0 + o.offset);
          } else {
            scheduler.cancel(`k${o.key}`);
            live.delete(`k${o.key}`);
          }
        }
        scheduler.start();
        vi.advanceTimersByTime(11_000);
        scheduler.stop();
        expect(new Map(fired.map((f) => [f.key, f.at]))).toEqual(live);
        expect(fired).toHaveLength(live.size);
        for (let i = 1; i < fired.length; i++) expect(fired[i]!.at).toBeGreaterThanOrEqual(fired[i - 1]!.at);
      }),
      { numRuns: 100 },
    );
  });
});
