/**
 * Which replicas are alive, from the heartbeats a replica sees arrive (its watch of the membership
 * bucket). A member is live while its last heartbeat arrived less than `ttlMs` ago here, or until
 * its key is deleted (a graceful leave, or the server's delete marker once the heartbeat's own
 * per-message TTL ran out).
 *
 * Why not wait for the server's delete marker alone: the server expires per-message TTLs on a
 * one-second wheel (nats-server's thw tick) and takes whole seconds, so a TTL of N seconds is
 * noticed N to N+1 seconds after the last heartbeat, and never in less than a second.
 * Timing heartbeats here needs no server feature and no clock agreement between hosts: every time
 * is this process's own monotonic clock at arrival.
 *
 * A stall of this process (a GC pause, a long synchronous task) must not expire members whose
 * heartbeats are waiting unread on the socket: `expire` is given how late its own timer fired, and
 * decides nothing after a late timer; the heartbeats are read before the next check.
 */
export class MemberLiveness {
  /** Each member's last heartbeat seen, on this process's monotonic clock (ms). */
  private readonly seenAt = new Map<string, number>();

  constructor(private readonly ttlMs: number) {}

  /** A heartbeat (a PUT of the member's key) arrived at `now`. */
  seen(member: string, now: number): void {
    this.seenAt.set(member, now);
  }

  /** The member's key was deleted: it left, or the server expired its last heartbeat. */
  gone(member: string): void {
    this.seenAt.delete(member);
  }

  has(member: string): boolean {
    return this.seenAt.has(member);
  }

  get members(): string[] {
    return [...this.seenAt.keys()];
  }

  /**
   * Drops and returns the members whose last heartbeat is older than the TTL at `now`, unless the
   * check itself ran `lateMs` later than planned by more than `maxLateMs` (this process stalled:
   * what it has not read yet may be their heartbeats).
   */
  expire(now: number, lateMs = 0, maxLateMs = Number.POSITIVE_INFINITY): string[] {
    if (lateMs > maxLateMs) return [];
    const expired: string[] = [];
    for (const [member, at] of this.seenAt)
      if (now - at >= this.ttlMs) {
        this.seenAt.delete(member);
        expired.push(member);
      }
    return expired;
  }
}

/** How often a replica checks for members whose heartbeats stopped: six times per TTL. */
export function livenessCheckInterval(ttlMs: number): number {
  return Math.max(100, Math.floor(ttlMs / 6));
}
