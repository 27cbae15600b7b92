import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CoarseScheduler } from './coarse-scheduler.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(T0);
});
afterEach(() => vi.useRealTimers());

function recorder(slotMs = 1_000) {
  const fired: { key: string; firedAt: number }[] = [];
  const scheduler = new CoarseScheduler({
    slotMs,
    onDue: (key) => fired.push({ key, firedAt: Date.now() }),
  });
  return { fired, scheduler };
}

describe('CoarseScheduler', () => {
  it('fires each key no earlier than its deadline and less than a slot after it', () => {
    const { fired, scheduler } = recorder();
    scheduler.start();
    scheduler.schedule('a', T0 + 2_500);
    scheduler.schedule('b', T0 + 1_000);
    expect(scheduler.size).toBe(2);
    vi.advanceTimersByTime(999);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired.map((f) => f.key)).toEqual(['b']);
    vi.advanceTimersByTime(2_000);
    expect(fired.map((f) => f.key)).toEqual(['b', 'a']);
    expect(fired[1]!.firedAt).toBeGreaterThanOrEqual(T0 + 2_500);
    expect(fired[1]!.firedAt).toBeLessThan(T0 + 3_500);
    expect(scheduler.size).toBe(0);
  });

  it('replaces a key’s deadline when rescheduled, and forgets a cancelled key', () => {
    const { fired, scheduler } = recorder();
    scheduler.start();
    scheduler.schedule('a', T0 + 1_000);
    scheduler.schedule('a', T0 + 5_000);
    scheduler.schedule('b', T0 + 2_000);
    scheduler.cancel('b');
    expect(scheduler.deadlineOf('a')).toBe(T0 + 5_000);
    expect(scheduler.deadlineOf('b')).toBeUndefined();
    vi.advanceTimersByTime(4_999);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired.map((f) => f.key)).toEqual(['a']);
  });

  it('holds deadlines until started, then fires those past at the next tick', () => {
    const { fired, scheduler } = recorder();
    scheduler.schedule('a', T0 - 60_000);
    vi.advanceTimersByTime(5_000);
    expect(fired).toEqual([]);
    scheduler.start();
    vi.advanceTimersByTime(1_000);
    expect(fired.map((f) => f.key)).toEqual(['a']);
  });

  it('fires what came due when the wall clock jumps forward, within a slot', () => {
    const { fired, scheduler } = recorder();
    scheduler.start();
    scheduler.schedule('a', T0 + 3_600_000);
    scheduler.schedule('b', T0 + 7_200_000);
    vi.setSystemTime(T0 + 3_700_000);
    vi.advanceTimersByTime(1_000);
    expect(fired.map((f) => f.key)).toEqual(['a']);
  });

  it('lets onDue schedule the key again', () => {
    const fired: number[] = [];
    const scheduler: CoarseScheduler = new CoarseScheduler({
      onDue: (key) => {
        fired.push(Date.now());
        if (fired.length < 3) scheduler.schedule(key, Date.now());
      },
    });
    scheduler.start();
    scheduler.schedule('a', T0);
    vi.advanceTimersByTime(10_000);
    expect(fired).toHaveLength(3);
    expect(fired[2]! - fired[0]!).toBeGreaterThanOrEqual(2_000);
  });

  it('fires exactly the live deadlines, none early and none a slot late, whatever the operations', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('schedule' as const),
        key: fc.integer({ min: 0, max: 20 }),
        offset: fc.integer({ min: -2_000, max: 10_000 }),
      }),
      fc.record({ kind: fc.constant('cancel' as const), key: fc.integer({ min: 0, max: 20 }) }),
      fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 3_000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 100 }), (ops) => {
        vi.setSystemTime(T0);
        const { fired, scheduler } = recorder();
        scheduler.start();
        // Per live key: its deadline, and when it was scheduled (a past deadline fires soon after).
        const live = new Map<string, { at: number; scheduledAt: number }>();
        const check = () => {
          for (const f of fired.splice(0)) {
            const d = live.get(f.key);
            expect(d).toBeDefined();
            expect(f.firedAt).toBeGreaterThanOrEqual(d!.at);
            expect(f.firedAt).toBeLessThan(Math.max(d!.at, d!.scheduledAt) + 2_000);
            live.delete(f.key);
          }
        };
        for (const o of ops) {
          if (o.kind === 'schedule') {
            scheduler.schedule(`k${o.key}`, Date.now() + o.offset);
            live.set(`k${o.key}`, { at: Date.now() + o.offset, scheduledAt: Date.now() });
          } else if (o.kind === 'cancel') {
            scheduler.cancel(`k${o.key}`);
            live.delete(`k${o.key}`);
          } else {
            vi.advanceTimersByTime(o.ms);
            check();
          }
        }
        vi.advanceTimersByTime(20_000);
        check();
        expect(live.size).toBe(0);
        expect(scheduler.size).toBe(0);
        scheduler.stop();
      }),
      { numRuns: 100 },
    );
  });
});
