import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RequeueTimers } from './requeue-timers.js';

describe('RequeueTimers', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('fires once after the time asked for', () => {
    const timers = new RequeueTimers();
    const fire = vi.fn();
    timers.settle('session/a/x', 1_000, fire);
    vi.advanceTimersByTime(999);
    expect(fire).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fire).toHaveBeenCalledTimes(1);
    expect(timers.pending).toBe(0);
  });

  it("cancels an earlier request when the key's next reconcile asks for none", () => {
    const timers = new RequeueTimers();
    const fire = vi.fn();
    timers.settle('session/a/x', 300_000, fire); // Pending: look again at the startup deadline
    timers.settle('session/a/x', undefined, fire); // Running: nothing to look at again
    vi.advanceTimersByTime(600_000);
    expect(fire).not.toHaveBeenCalled();
    expect(timers.pending).toBe(0);
  });

  it("replaces an earlier request by the latest, and keeps other keys' apart", () => {
    const timers = new RequeueTimers();
    const fired: string[] = [];
    timers.settle('session/a/x', 5_000, () => fired.push('x early'));
    timers.settle('session/a/y', 2_000, () => fired.push('y'));
    timers.settle('session/a/x', 10_000, () => fired.push('x late'));
    vi.advanceTimersByTime(10_000);
    expect(fired).toEqual(['y', 'x late']);
  });

  it('clear cancels every pending request', () => {
    const timers = new RequeueTimers();
    const fire = vi.fn();
    timers.settle('session/a/x', 1_000, fire);
    timers.settle('session/a/y', 1_000, fire);
    timers.clear();
    vi.advanceTimersByTime(2_000);
    expect(fire).not.toHaveBeenCalled();
  });
});
