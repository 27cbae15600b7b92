/**
 * The reports this replica passed on to other replicas lately (the latest time per session), kept
 * for one to two flush intervals: the owner holds them in memory until its next flush, so if it
 * dies before, these are the only copies. When the members change, the replica that adopts a
 * Session takes what it passed on for it as a report of its own, so a desktop whose reports all
 * happened to reach this replica is not hibernated for reports its dead owner never stored.
 * Two generations, rotated every flush interval: an entry lives at least one interval, at most
 * two, and memory stays bounded by the sessions that reported in that time.
 */
export class PassedOnReports {
  private current = new Map<string, number>();
  private previous = new Map<string, number>();

  record(key: string, at: number): void {
    const known = this.current.get(key);
    if (known === undefined || at > known) this.current.set(key, at);
  }

  /** Called every flush interval: what the owners have written since is no longer needed here. */
  rotate(): void {
    this.previous = this.current;
    this.current = new Map();
  }

  /** The latest time passed on per session, over both generations. */
  *entries(): Generator<[key: string, at: number]> {
    for (const [key, at] of this.current) yield [key, Math.max(at, this.previous.get(key) ?? at)];
    for (const [key, at] of this.previous) if (!this.current.has(key)) yield [key, at];
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }
}
