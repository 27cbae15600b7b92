/**
 * The per-key work queue of one worker, after client-go's workqueue: `dirty` holds the keys
 * waiting to be handed out (with the newest item of each), `processing` the keys being worked on.
 * A key is never handed out twice at once; adding a key that is already waiting replaces its
 * item (repeated triggers coalesce into one reconcile); adding a key that is being processed
 * queues it once, to be handed out again only after `done`. No locks, no polling: a plain data
 * structure the work consumer drives from its message and completion callbacks.
 *
 * Two levels: a key added as `first` (the work consumer's: a trigger that finishes a change
 * already under way, such as a Session's pod becoming ready) is handed out before the others.
 */
export class KeyedWorkQueue<T> {
  /** Keys ready to hand out, oldest first; each is in `dirty` and not in `processing`. */
  private readonly ready: string[] = [];
  /** The same for keys added as `first`, handed out before those of `ready`; a key is in one of them. */
  private readonly readyFirst: string[] = [];
  /** Waiting keys (in `dirty`) last added as `first`. */
  private readonly first = new Set<string>();
  private readonly dirty = new Map<string, T>();
  /** Keys being worked on, with the item each was handed out with. */
  private readonly processing = new Map<string, T>();

  /**
   * Queues `item` under `key`, ahead of the keys not added as `first` if it is; returns the
   * waiting item it replaced, if any (coalesced).
   */
  add(key: string, item: T, first = false): T | undefined {
    const replaced = this.dirty.get(key);
    this.dirty.set(key, item);
    const waiting = replaced !== undefined && !this.processing.has(key);
    if (first && !this.first.has(key)) {
      this.first.add(key);
      // Already waiting behind the others: moved ahead.
      if (waiting) this.ready.splice(this.ready.indexOf(key), 1);
      if (!this.processing.has(key)) this.readyFirst.push(key);
    } else if (replaced === undefined && !this.processing.has(key)) {
      (this.first.has(key) ? this.readyFirst : this.ready).push(key);
    }
    return replaced;
  }

  /** The next key to work on with its newest item, or undefined when none is ready. */
  next(): { key: string; item: T } | undefined {
    const key = this.readyFirst.shift() ?? this.ready.shift();
    if (key === undefined) return undefined;
    const item = this.dirty.get(key) as T;
    this.dirty.delete(key);
    this.first.delete(key);
    this.processing.set(key, item);
    return { key, item };
  }

  /** The work on `key` ended: if it was added meanwhile, it becomes ready again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) (this.first.has(key) ? this.readyFirst : this.ready).push(key);
  }

  /** Takes out every waiting item that matches (those being processed are the caller's). */
  remove(matches: (item: T, key: string) => boolean): T[] {
    const removed: T[] = [];
    for (const [key, item] of this.dirty)
      if (matches(item, key)) {
        removed.push(item);
        this.dirty.delete(key);
      }
    if (removed.length > 0) {
      for (const list of [this.ready, this.readyFirst]) {
        const kept = list.filter((key) => this.dirty.has(key));
        list.splice(0, list.length, ...kept);
      }
      for (const key of this.first) if (!this.dirty.has(key)) this.first.delete(key);
    }
    return removed;
  }

  /** Keys held (waiting, being worked on, or both) whose newest item matches: each key once. */
  count(matches: (item: T) => boolean): number {
    let held = 0;
    for (const item of this.processing.values()) if (matches(item)) held++;
    for (const [key, item] of this.dirty) if (!this.processing.has(key) && matches(item)) held++;
    return held;
  }

  /** Keys waiting to be handed out. */
  get waiting(): number {
    return this.dirty.size;
  }

  /** Keys being worked on. */
  get inProgress(): number {
    return this.processing.size;
  }
}
