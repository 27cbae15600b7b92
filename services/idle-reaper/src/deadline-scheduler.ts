/**
 * One wall-clock deadline per key, fired by a single timer: a binary min-heap ordered by time,
 * with a key → current entry map. Rescheduling a key pushes a new entry and leaves the old one to
 * be skipped when it surfaces (lazy deletion), so schedule and cancel are O(log n) and O(1);
 * the heap is rebuilt when stale entries outnumber live ones. Ten thousand sessions cost a few
 * hundred kilobytes and one timer.
 *
 * The timer never sleeps longer than `maxSleepMs` (1 s by default): deadlines are wall-clock
 * times, and a timer alone would not notice the system clock jumping forward. Waking once a
 * second to compare the earliest deadline with Date.now() costs nothing and keeps every decision
 * within about a second of its deadline whatever the clock does.
 */

interface Entry {
  at: number;
  key: string;
  seq: number;
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
    if (existing && existing.at === at) return;
    const entry: Entry = { at, key, seq: this.seq++ };
    this.current.set(key, entry);
    this.push(entry);
    this.compactIfNeeded();
    if (at < this.armedFor) this.arm(true);
  }

  cancel(key: string): void {
    // The heap entry stays until it surfaces or the heap is compacted.
    if (this.current.delete(key)) this.compactIfNeeded();
  }

  /** Fires everything due now; the timer calls it, and tests may call it directly. */
  runDue(): void {
    const now = this.now();
    // Entries scheduled by onDue itself wait for the next turn, so a key rescheduled "now" cannot
    // spin this loop.
    const firstNew = this.seq;
    for (;;) {
      const top = this.heap[0];
      if (!top || top.at > now) break;
      if (top.seq >= firstNew && this.current.get(top.key) === top) break;
      this.pop();
      if (this.current.get(top.key) !== top) continue;
      this.current.delete(top.key);
      this.options.onDue(top.key, top.at);
    }
  }

  private arm(force = false): void {
    if (!this.running) return;
    this.dropStaleTop();
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

  private dropStaleTop(): void {
    for (;;) {
      const top = this.heap[0];
      if (!top || this.current.get(top.key) === top) return;
      this.pop();
    }
  }

  private compactIfNeeded(): void {
    if (this.heap.length <= 1_024 || this.heap.length <= 2 * this.current.size) return;
    this.heap = [...this.current.values()];
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  private push(entry: Entry): void {
    this.heap.push(entry);
    let i = this.heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private pop(): void {
    const last = this.heap.pop();
    if (last === undefined || this.heap.length === 0) return;
    this.heap[0] = last;
    this.siftDown(0);
  }

  private siftDown(start: number): void {
    let i = start;
    const n = this.heap.length;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < n && this.less(left, smallest)) smallest = left;
      if (right < n && this.less(right, smallest)) smallest = right;
      if (smallest === i) return;
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
    const tmp = this.heap[a]!;
    this.heap[a] = this.heap[b]!;
    this.heap[b] = tmp;
  }
}
