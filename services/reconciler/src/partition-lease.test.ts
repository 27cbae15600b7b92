import { describe, expect, it } from 'vitest';
import { type LossReason, PartitionLease, PinLostError, pinTimings } from './partition-lease.js';

function lease(leaseMs = 2_000) {
  let now = 1_000;
  const lost: LossReason[] = [];
  const subject = new PartitionLease(
    leaseMs,
    (reason) => lost.push(reason),
    () => now,
  );
  return { subject, lost, advance: (ms: number) => (now += ms) };
}

describe('pinTimings', () => {
  it('ends the lease before the server could move the pin, with room for a pull and a margin', () => {
    for (const timeout of [3_000, 5_000, 10_000, 60_000]) {
      const t = pinTimings(timeout);
      expect(t.leaseMs + t.pullExpiresMs).toBeLessThan(timeout);
      expect(t.heartbeatMs).toBeLessThan(t.leaseMs);
      expect(t.pullExpiresMs).toBeGreaterThanOrEqual(1_000);
    }
    expect(() => pinTimings(2_000)).toThrow(/at least 3s/);
  });
});

describe('PartitionLease', () => {
  it('holds nothing and fences nothing before a pin', () => {
    const { subject } = lease();
    subject.proof();
    expect(subject.held()).toBe(false);
    expect(subject.fence()).toBeUndefined();
  });

  it('lasts from the last proof, and a fence refuses writes once it ran out (by the clock)', () => {
    const { subject, lost, advance } = lease();
    subject.pinnedAs('pin-1');
    const fence = subject.fence();
    expect(fence).toBeDefined();
    advance(1_500);
    subject.proof();
    advance(1_500);
    expect(fence?.lastPassedAt).toBeUndefined();
    expect(() => fence?.throwIfLost()).not.toThrow();
    expect(fence?.lastPassedAt).toBe(4_000);
    // A stall: no proof for longer than the lease; the next write check finds out.
    advance(600);
    expect(() => fence?.throwIfLost()).toThrow(PinLostError);
    expect(fence?.signal.aborted).toBe(true);
    expect(lost).toEqual(['lease_expired']);
    // The last write it let through stays the last.
    expect(fence?.lastPassedAt).toBe(4_000);
  });

  it('ends at once when the server unpins us, and a new pin gets a new fence', () => {
    const { subject, lost } = lease();
    subject.pinnedAs('pin-1');
    const old = subject.fence();
    subject.lose('unpinned');
    expect(() => old?.throwIfLost()).toThrow(/unpinned/);
    subject.pinnedAs('pin-2');
    expect(() => subject.fence()?.throwIfLost()).not.toThrow();
    expect(() => old?.throwIfLost()).toThrow(PinLostError);
    expect(lost).toEqual(['unpinned']);
  });

  it('treats a different pin id as a lost pin and a new one', () => {
    const { subject, lost } = lease();
    subject.pinnedAs('pin-1');
    const old = subject.fence();
    subject.pinnedAs('pin-2');
    expect(old?.signal.aborted).toBe(true);
    expect(subject.held()).toBe(true);
    expect(lost).toEqual(['pin_changed']);
  });
});
