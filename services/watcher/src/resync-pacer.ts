/**
 * Hands a resync's announcements to the publisher a few at a time.
 *
 * A resync announces every Session again. Published in one burst, a thousand work items queue in
 * front of the change a user has just made: the pipeline benchmark measured a single hibernate
 * waiting 22.8 s behind a resync of 1,000 Sessions. Spread at `ratePerSecond` objects, they
 * interleave with live changes instead, and a large resync never overflows the publish queue.
 *
 * The spread is capped (`maxSpreadMs`): a resync must finish well within its round, and two
 * watchers — which start a round's resync at the same moment and announce in the same order —
 * must publish each object within JetStream's duplicate window of each other.
 *
 * A new resync replaces what is left of the previous one: it announces the same objects, newer.
 */
export interface ResyncPacerOptions<T> {
  /** Objects announced per second, unless that would take longer than `maxSpreadMs`. */
  ratePerSecond: number;
  maxSpreadMs: number;
  emit(batch: T[]): void;
  tickMs?: number;
}

export class ResyncPacer<T> {
  private timer: NodeJS.Timeout | undefined;
  private items: T[] = [];
  private next = 0;

  constructor(private readonly options: ResyncPacerOptions<T>) {}

  /** Objects of the current resync not announced yet. */
  get pending(): number {
    return this.items.length - this.next;
  }

  /** How long announcing `count` objects takes. */
  spreadMs(count: number): number {
    return Math.min((count / this.options.ratePerSecond) * 1000, this.options.maxSpreadMs);
  }

  /** Announces `items` over the spread; the first batch goes out at once. */
  start(items: T[]): void {
    this.stop();
    const tickMs = this.options.tickMs ?? 200;
    const ticks = Math.max(1, Math.floor(this.spreadMs(items.length) / tickMs));
    const perTick = Math.max(1, Math.ceil(items.length / ticks));
    this.items = items;
    this.next = 0;
    const step = () => {
      this.timer = undefined;
      const batch = this.items.slice(this.next, this.next + perTick);
      this.next += batch.length;
      if (batch.length > 0) this.options.emit(batch);
      if (this.pending > 0) this.timer = setTimeout(step, tickMs);
    };
    step();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.items = [];
    this.next = 0;
  }
}
