/**
 * One wall-clock deadline per key, fired by a single timer: a binary min-heap ordered by time,
 * with a key → entry map, each entry knowing its place in the heap. Rescheduling a key moves its
 * one entry up or down in place, and cancelling removes it, both O(log n): the heap holds exactly
 * the live deadlines. (It used to push a new entry per reschedule and skip the old one when it
 * surfaced; with every activity report of an owned Session rescheduling it, the heap carried up to
 * as many stale entries as live ones, each a new object, until rebuilt: ≈ 0.7 MiB more at 10,000
 * Sessions and garbage at the rate of the reports; BENCHMARKS.md run S5.)
 *
 * The timer never sleeps longer than `maxSleepMs` (1 s by default): deadlines are wall-clock
 * times, and a timer alone would not notice the system clock jumping forward. Waking once a
 * second to compare the earliest deadline with Date.now() costs nothing and keeps every decision
 * within about a second of its deadline whatever the clock does.
 */

interface Entry {
  at: number;
  key: string;
  /** When it was last scheduled (a counter): orders equal times, and keeps runDue from spinning. */
  seq: number;
  /** Its place in the heap. */
  index: number;
}

export interface DeadlineSchedulerOptions {
  /** Called, outside the heap's bookkeeping, for every key whose deadline has come; may reschedule it. */
  onDue(key: string, at: number): void;
  now?: () => number;
  maxSleepMs?: number;
}

export class DeadlineScheduler {
  private heap: Entry[] = [];
  private readonly current = new Map<string, Entry>();
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Number.POSITIVE_INFINITY;
  private running = false;
  private readonly now: () => number;
  private readonly maxSleepMs: number;

  constructor(private readonly options: DeadlineSchedulerOptions) {
    this.now = options.now ?? Date.now;
    this.maxSleepMs = options.maxSleepMs ?? 1_000;
  }

  /** Number of keys with a deadline. */
  get size(): number {
    return this.current.size;
  }

  deadlineOf(key: string): number | undefined {
    return this.current.get(key)?.at;
  }

  /** Deadlines fire only between start() and stop(); before, they are kept. */
  start(): void {
    this.running = true;
    this.arm(true);
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
  }

  schedule(key: string, at: number): void {
    const existing = this.current.get(key);
    if (existing) {
      if (existing.at === at) return;
      existing.at = at;
      existing.seq = this.seq++;
      this.siftUp(this.siftDown(existing.index));
    } else {
      const entry: Entry = { at, key, seq: this.seq++, index: this.heap.length };
      this.current.set(key, entry);
      this.heap.push(entry);
      this.siftUp(entry.index);
    }
    if (at < this.armedFor) this.arm(true);
  }

  cancel(key: string): void {
    const entry = this.current.get(key);
    if (!entry) return;
    this.current.delete(key);
    this.removeAt(entry.index);
  }

  /** Fires everything due now; the timer calls it, and tests may call it directly. */
  runDue(): void {
    const now = this.now();
    // Entries scheduled by onDue itself wait for the next turn, so a key rescheduled "now" cannot
    // spin this loop.
    const firstNew = this.seq;
    for (;;) {
      const top = this.heap[0];
      if (!top || top.at > now || top.seq >= firstNew) break;
      this.current.delete(top.key);
      this.removeAt(0);
      this.options.onDue(top.key, top.at);
    }
  }

  private arm(force = false): void {
    if (!this.running) return;
    const top = this.heap[0];
    if (!top) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.armedFor = Number.POSITIVE_INFINITY;
      return;
    }
    if (!force && this.timer && top.at >= this.armedFor) return;
    if (this.timer) clearTimeout(this.timer);
    const delay = Math.max(0, Math.min(top.at - this.now(), this.maxSleepMs));
    this.armedFor = top.at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.armedFor = Number.POSITIVE_INFINITY;
      try {
        this.runDue();
      } finally {
        this.arm(true);
      }
    }, delay);
    this.timer.unref?.();
  }

  /** Takes the entry at `i` out of the heap, the last one filling its place. */
  private removeAt(i: number): void {
    const last = this.heap.pop();
    if (last === undefined || i >= this.heap.length) return;
    this.heap[i] = last;
    last.index = i;
    this.siftUp(this.siftDown(i));
  }

  /** Moves the entry at `i` towards the root while it is earlier than its parent. */
  private siftUp(start: number): void {
    let i = start;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** Moves the entry at `start` towards the leaves while a child is earlier; returns where it ends. */
  private siftDown(start: number): number {
    let i = start;
    const n = this.heap.length;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < n && this.less(left, smallest)) smallest = left;
      if (right < n && this.less(right, smallest)) smallest = right;
      if (smallest === i) return i;
      this.swap(i, smallest);
      i = smallest;
    }
  }

  private less(a: number, b: number): boolean {
    const x = this.heap[a]!;
    const y = this.heap[b]!;
    return x.at < y.at || (x.at === y.at && x.seq < y.seq);
  }

  private swap(a: number, b: number): void {
    const x = this.heap[a]!;
    const y = this.heap[b]!;
    this.heap[a] = y;
    y.index = a;
    this.heap[b] = x;
    x.index = b;
  }
}
