import { describe, expect, it } from 'vitest';
import { livenessCheckInterval, MemberLiveness } from './member-liveness.js';
import { heartbeatInterval } from './reaper-membership.js';

describe('MemberLiveness', () => {
  it('keeps a member while its heartbeats arrive, and drops it a TTL after the last one', () => {
    const live = new MemberLiveness(1_500);
    live.seen('a', 0);
    live.seen('b', 0);
    live.seen('a', 1_000);
    expect(live.expire(1_499)).toEqual([]);
    expect(live.expire(1_500)).toEqual(['b']);
    expect(live.members).toEqual(['a']);
    expect(live.expire(2_499)).toEqual([]);
    expect(live.expire(2_500)).toEqual(['a']);
    expect(live.members).toEqual([]);
  });

  it('drops a member whose key was deleted at once, and takes it back at its next heartbeat', () => {
    const live = new MemberLiveness(1_500);
    live.seen('a', 0);
    live.gone('a');
    expect(live.has('a')).toBe(false);
    live.seen('a', 100);
    expect(live.members).toEqual(['a']);
  });

  it('drops nothing when its own check ran late (this process stalled: heartbeats may be unread)', () => {
    const live = new MemberLiveness(1_500);
    live.seen('a', 0);
    expect(live.expire(3_000, 2_000, 250)).toEqual([]);
    expect(live.members).toEqual(['a']);
    // The next check, on time, still finds no heartbeat: gone.
    expect(live.expire(3_250, 0, 250)).toEqual(['a']);
  });

  it('keeps a member whose heartbeats a stall of under three quarters of the TTL holds up, drops it after one a check longer', () => {
    const ttl = 1_000;
    const every = heartbeatInterval(ttl);
    expect(every).toBe(250);
    for (const [stall, kept] of [
      [740, true],
      [750 + livenessCheckInterval(ttl), false],
    ] as const) {
      const live = new MemberLiveness(ttl);
      live.seen('a', 0);
      // The next heartbeat was due at `every` and goes out `stall` later; checks run on time meanwhile.
      const arrives = every + stall;
      for (let t = 0; t < arrives; t += livenessCheckInterval(ttl))
        live.expire(t, 0, livenessCheckInterval(ttl));
      expect(live.has('a'), `stall ${stall} ms`).toBe(kept);
    }
  });

  it('checks six times per TTL, never more often than every 100 ms', () => {
    expect(livenessCheckInterval(1_500)).toBe(250);
    expect(livenessCheckInterval(300)).toBe(100);
  });
});
