/**
 * The "look again later" of each key (controller-runtime's RequeueAfter): at most one per key, and
 * the key's latest reconcile decides. A reconcile that asks for nothing cancels what an earlier
 * one asked for: a Session that was Pending asked to be looked at again at its startup deadline,
 * and once Running that look would be a reconcile that changes nothing (the pipeline benchmark
 * counted one for every Session started or woken, five minutes later).
 */
export class RequeueTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  /** After a reconcile of `key`: `fire` in `afterMs`, or never when it asked for no look again. */
  settle(key: string, afterMs: number | undefined, fire: () => void): void {
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
    if (afterMs === undefined) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(key);
        fire();
      },
      Math.min(afterMs, 2 ** 31 - 1),
    );
    // A pending look again never keeps the process alive.
    timer.unref();
    this.timers.set(key, timer);
  }

  get pending(): number {
    return this.timers.size;
  }

  clear(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
