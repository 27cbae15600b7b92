/**
 * One deadline per key, fired at most one slot (`slotMs`, 1 s by default) after it and never
 * before: for deadlines that need no precision, such as the coarse status.lastActivity writes
 * (minutes apart). Each key costs an entry in a key → slot map, the slot a small integer, and its
 * place in its slot's list — against DeadlineScheduler's entry object, boxed time and heap place
 * per key, which the reaper's decisions need (they are due to the millisecond) but these writes
 * do not: a replica holds one such deadline for nearly every Session it owns, and the survivor of
 * a takeover for all of them (BENCHMARKS.md run S5).
 *
 * A key rescheduled or cancelled stays in its old slot's list until that slot comes, and is
 * skipped then. The timer ticks once a slot while deadlines are pending, and a tick fires every
 * slot up to the wall clock's, so a clock jumping forward is noticed within a slot.
 */
export interface CoarseSchedulerOptions {
  /** Called for every key whose deadline has come (outside the bookkeeping; may reschedule it). */
  onDue(key: string): void;
  slotMs?: number;
  now?: () => number;
}

export class CoarseScheduler {
  /** The slot each key is due in, counted from `base`: small integers, no boxed times. */
  private readonly slotOf = new Map<string, number>();
  private readonly slots = new Map<number, string[]>();
  private readonly slotMs: number;
  private readonly now: () => number;
  private readonly base: number;
  /** Slots up to this one have been fired. */
  private fired: number;
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(private readonly options: CoarseSchedulerOptions) {
    this.slotMs = options.slotMs ?? 1_000;
    this.now = options.now ?? Date.now;
    this.base = this.now();
    this.fired = this.currentSlot() - 1;
  }

  /** Number of keys with a deadline. */
  get size(): number {
    return this.slotOf.size;
  }

  /** When the key's deadline fires at the earliest (its slot's start); undefined without one. */
  deadlineOf(key: string): number | undefined {
    const slot = this.slotOf.get(key);
    return slot === undefined ? undefined : this.base + slot * this.slotMs;
  }

  /** Deadlines fire only between start() and stop(); before, they are kept. */
  start(): void {
    this.running = true;
    this.arm();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  schedule(key: string, at: number): void {
    // The first slot that starts at or after `at`, and one not fired yet.
    const slot = Math.max(Math.ceil((at - this.base) / this.slotMs), this.fired + 1);
    if (this.slotOf.get(key) === slot) return;
    this.slotOf.set(key, slot);
    const list = this.slots.get(slot);
    if (list) list.push(key);
    else this.slots.set(slot, [key]);
    this.arm();
  }

  cancel(key: string): void {
    this.slotOf.delete(key);
  }

  /** Fires every slot that has begun; the timer calls it, and tests may call it directly. */
  runDue(): void {
    const current = this.currentSlot();
    if (current <= this.fired) return;
    const due: number[] = [];
    // Step through the slots passed, or (a long gap: the clock jumped) through the pending ones.
    if (current - this.fired <= this.slots.size) {
      for (let slot = this.fired + 1; slot <= current; slot++) if (this.slots.has(slot)) due.push(slot);
    } else {
      for (const slot of this.slots.keys()) if (slot <= current) due.push(slot);
      due.sort((a, b) => a - b);
    }
    this.fired = current;
    for (const slot of due) {
      const keys = this.slots.get(slot) ?? [];
      this.slots.delete(slot);
      for (const key of keys) {
        if (this.slotOf.get(key) !== slot) continue;
        this.slotOf.delete(key);
        this.options.onDue(key);
      }
    }
    if (this.slots.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private currentSlot(): number {
    return Math.floor((this.now() - this.base) / this.slotMs);
  }

  private arm(): void {
    if (!this.running || this.timer || this.slots.size === 0) return;
    this.timer = setInterval(() => this.runDue(), this.slotMs);
    this.timer.unref?.();
  }
}
