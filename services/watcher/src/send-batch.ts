/**
 * Gathers the watcher's NATS sends (shared-state puts, change events, work items) and starts them
 * together, so nats.js writes them to its socket in one write.
 *
 * nats.js writes what was published at the end of the microtask queue in which the first publish
 * came: one write per burst of publishes made in one go. The watcher's sends come one I/O callback
 * at a time (a chunk of a watch; a read of acknowledgements, each releasing the messages its write
 * held back), and each write to that socket is costly: on loopback the kernel runs nats-server's
 * receive path and wakes it inside the sender's syscall. Writing was over a quarter of the
 * watcher's CPU samples in the 1,000-Session bench (BENCHMARKS.md R22–R23, and "The watcher's NATS
 * round trips"), about 0.2 ms a write on a loaded machine.
 *
 * So sends start from one setImmediate: every callback of a turn shares one write, nothing waits
 * for a timer, and what is started keeps the order it was asked in. And while earlier sends still
 * await their replies (the watcher is busy: a burst of changes), a batch starts no sooner than
 * `busyGapMs` after the previous one, gathering the callbacks of several turns into one write:
 * at most one write per gap under load, each a few ms later. When nothing awaits a reply (a
 * single change, the next hop of one released by its put's acknowledgement) the batch goes at
 * once, as before, so a lone change waits for nothing.
 */
export interface SendBatchOptions {
  /** While sends await replies, the least time between two batches (ms); 0 starts every turn's at once. */
  busyGapMs?: number;
  /** The clock (ms), for tests. */
  now?: () => number;
}

/** How long a batch asked for at `now` waits: nothing when idle or when the gap has passed. */
export function batchDelay(now: number, lastStartAt: number, awaitingReplies: number, busyGapMs: number): number {
  if (awaitingReplies === 0 || busyGapMs <= 0) return 0;
  return Math.max(0, lastStartAt + busyGapMs - now);
}

export class SendBatch {
  private queued: (() => void)[] = [];
  private scheduled = false;
  /** Sends started and not settled yet. */
  private awaiting = 0;
  private lastStartAt = Number.NEGATIVE_INFINITY;
  private readonly busyGapMs: number;
  private readonly now: () => number;

  constructor(options: SendBatchOptions = {}) {
    this.busyGapMs = options.busyGapMs ?? 0;
    this.now = options.now ?? (() => performance.now());
  }

  /** Starts `send` with the batch's other sends; settles as the promise it returns does. */
  run<T>(send: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queued.push(() => {
        this.awaiting++;
        const settled = () => {
          this.awaiting--;
        };
        // A send that throws instead of rejecting must not stop the ones behind it.
        try {
          send().then(
            (value) => {
              settled();
              resolve(value);
            },
            (error: unknown) => {
              settled();
              reject(error);
            },
          );
        } catch (error) {
          settled();
          reject(error);
        }
      });
      if (!this.scheduled) {
        this.scheduled = true;
        const delay = batchDelay(this.now(), this.lastStartAt, this.awaiting, this.busyGapMs);
        if (delay > 0) setTimeout(() => this.flush(), delay);
        else setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    this.lastStartAt = this.now();
    const queued = this.queued;
    this.queued = [];
    for (const start of queued) start();
  }
}
