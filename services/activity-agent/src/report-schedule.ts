/**
 * When the activity agent reports, as a pure state machine (the shell samples the sockets and
 * sends). It keeps a handful of numbers whatever happens, so an unreachable reaper costs no memory:
 * only the latest moment a client was seen is ever sent, never a backlog.
 *
 * - While a client is connected: a report at once, then one every `intervalMs` (±10 % jitter, so a
 *   node's agents do not report in step).
 * - When the last client leaves: one more report at once, carrying the moment it was last seen, so
 *   the idle countdown starts from there and not from the previous periodic report.
 * - After a failed report: retries with exponential backoff from `minBackoffMs`, capped at
 *   `intervalMs` (never a tight loop), still carrying only the latest moment seen.
 */
export interface ScheduleOptions {
  intervalMs: number;
  minBackoffMs: number;
  /** [0, 1); Math.random in production, fixed in tests. */
  random?: () => number;
}

export class ReportSchedule {
  private lastSeen: number | undefined;
  private reported = Number.NEGATIVE_INFINITY;
  private nextDueAt = Number.NEGATIVE_INFINITY;
  private retryAt = Number.NEGATIVE_INFINITY;
  private failures = 0;
  private wasConnected = false;
  private readonly random: () => number;

  constructor(private readonly options: ScheduleOptions) {
    this.random = options.random ?? Math.random;
  }

  /**
   * Records a sample (`connected`: a client was connected at `now`) and returns the activity time
   * to report now, or undefined.
   */
  sample(now: number, connected: boolean): number | undefined {
    const leaving = this.wasConnected && !connected;
    this.wasConnected = connected;
    if (connected) this.lastSeen = now;
    if (this.lastSeen === undefined || this.lastSeen <= this.reported) return undefined;
    if (now < this.retryAt) return undefined;
    if (!leaving && now < this.nextDueAt && this.failures === 0) return undefined;
    this.nextDueAt = now + this.options.intervalMs * (0.9 + 0.2 * this.random());
    return this.lastSeen;
  }

  /** The reaper stored (or already had) the activity time `at`. */
  succeeded(at: number): void {
    this.reported = Math.max(this.reported, at);
    this.failures = 0;
    this.retryAt = Number.NEGATIVE_INFINITY;
  }

  /** The report did not get through; returns how long until the next attempt. */
  failed(now: number): number {
    this.failures++;
    const exponential = this.options.minBackoffMs * 2 ** Math.min(this.failures - 1, 20);
    const delay = Math.min(this.options.intervalMs, exponential) * (0.5 + 0.5 * this.random());
    this.retryAt = now + delay;
    return delay;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }
}
