/**
 * Gathers the watcher's NATS sends (shared-state puts, change events, work items) of one turn of
 * the event loop and starts them together, once the I/O callbacks of that turn have run.
 *
 * nats.js writes what was published to its socket at the end of the microtask queue in which the
 * first publish came: one write per burst of publishes made in one go. The watcher's sends come
 * one I/O callback at a time (a chunk of a watch; a read of acknowledgements, each releasing the
 * messages its write held back), and each callback made a burst, a write and a wake-up of
 * nats-server of its own: writing to that socket was a quarter of the watcher's CPU samples in
 * the 1,000-Session bench (R22–R23 in BENCHMARKS.md). Started from one setImmediate, the sends of
 * every callback of a turn share one write. setImmediate runs in the same turn, after its I/O
 * callbacks, so nothing waits for a timer, and what is started keeps the order it was asked in.
 */
export class SendBatch {
  private queued: (() => void)[] = [];
  private scheduled = false;

  /** Starts `send` with the turn's other sends; settles as the promise it returns does. */
  run<T>(send: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queued.push(() => {
        // A send that throws instead of rejecting must not stop the ones behind it.
        try {
          send().then(resolve, reject);
        } catch (error) {
          reject(error);
        }
      });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const queued = this.queued;
    this.queued = [];
    for (const start of queued) start();
  }
}
