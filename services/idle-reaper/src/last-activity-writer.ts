import type { Logger } from '@streamspace/shared';
import { CoarseScheduler } from './coarse-scheduler.js';
import type { ReaperMetrics } from './reaper-metrics.js';

export interface LastActivityWriterOptions {
  intervalMs: number;
  /** Latest known activity of a session. */
  latest(key: string): number | undefined;
  /** status.lastActivity as last seen on the Session, and where the Session is; undefined when it is not known. */
  session(key: string): { namespace: string; name: string; statusLastActivity?: number } | undefined;
  write(namespace: string, name: string, at: number): Promise<void>;
  metrics: ReaperMetrics;
  log: Logger;
  /** Writes in flight at once (across all sessions). */
  concurrency?: number;
  random?: () => number;
}

/**
 * Keeps status.lastActivity coarsely current without a write per report: at most one write per
 * session per interval (the precise time lives in the activity bucket, and each decision writes
 * the time it was made on). A write is due `interval` after the last one this replica made and
 * after the time the status already shows (or, with none, `interval` after the activity is first
 * seen), so steady activity costs one write per interval and the last report of a burst is still
 * written (trailing). Replicas derive the same due time from the shared status; a random delay of
 * up to a tenth of the interval lets the later one see the earlier one's write and skip, and
 * spreads the writes of Sessions that started together.
 */
export class LastActivityWriter {
  private readonly lastWrite = new Map<string, number>();
  /**
   * Writes minutes apart need no millisecond: a coarse scheduler holds nearly every owned
   * Session's next write for ≈ 65 bytes less each than a DeadlineScheduler (coarse-scheduler.ts).
   */
  private readonly scheduler: CoarseScheduler;
  /** Keys waiting for a write slot, in order (a Set: a key waits once, and taking the first is O(1)). */
  private readonly queue = new Set<string>();
  private inFlight = 0;

  constructor(private readonly options: LastActivityWriterOptions) {
    this.scheduler = new CoarseScheduler({ onDue: (key) => this.enqueue(key) });
  }

  start(): void {
    this.scheduler.start();
  }

  stop(): void {
    this.scheduler.stop();
  }

  forget(key: string): void {
    this.scheduler.cancel(key);
    this.queue.delete(key);
    this.lastWrite.delete(key);
  }

  /** Activity of `key` moved forward (or its Session changed): make sure a write is planned if one is needed. */
  notify(key: string, now = Date.now()): void {
    if (this.scheduler.deadlineOf(key) !== undefined) return;
    const latest = this.options.latest(key);
    const session = this.options.session(key);
    if (latest === undefined || !session) return;
    const status = session.statusLastActivity;
    if (status !== undefined && latest <= status) return;
    const interval = this.options.intervalMs;
    const jitter = Math.floor((this.options.random ?? Math.random)() * (interval / 10));
    const due = Math.max(
      now,
      (this.lastWrite.get(key) ?? Number.NEGATIVE_INFINITY) + interval,
      (status ?? now) + interval,
    );
    this.scheduler.schedule(key, due + jitter);
  }

  private enqueue(key: string): void {
    this.queue.add(key);
    this.drain();
  }

  private drain(): void {
    const limit = this.options.concurrency ?? 32;
    while (this.inFlight < limit && this.queue.size > 0) {
      const key = this.queue.values().next().value as string;
      this.queue.delete(key);
      this.inFlight++;
      void this.writeOne(key).finally(() => {
        this.inFlight--;
        this.drain();
      });
    }
  }

  private async writeOne(key: string): Promise<void> {
    const { metrics, log } = this.options;
    const latest = this.options.latest(key);
    const session = this.options.session(key);
    if (latest === undefined || !session) return;
    if (session.statusLastActivity !== undefined && latest <= session.statusLastActivity) return;
    const now = Date.now();
    try {
      await this.options.write(session.namespace, session.name, latest);
      this.lastWrite.set(key, now);
      metrics.statusWrites.labels('written').inc();
    } catch (error) {
      const code = (error as { code?: number }).code;
      if (code === 404) {
        metrics.statusWrites.labels('gone').inc();
        return;
      }
      metrics.statusWrites.labels('error').inc();
      log.warn({ err: (error as Error).message, key }, 'could not write status.lastActivity; will retry');
      this.lastWrite.set(key, now);
    }
    // More activity may have come in meanwhile; plan its write (one interval on).
    this.notify(key);
  }
}
