/**
 * The bucket revision at which the watcher stored each cached Session and Template version, held
 * against the cache's own entry for that version (a WeakMap: nothing to forget when the entry goes).
 *
 * A rebuild of the shared state (at start, at every periodic resync) used to write every Session
 * and Template again so that an entry someone else overwrote (corrupt, or an older version) was
 * repaired. At 10,000 Sessions that was 10,010 entries inflated from their packed form and put,
 * at every resync and right after the start's lists had written each of them: 90,040 puts in the
 * 150-s restart bench where 60,010 now do (BENCHMARKS.md V7–V8). An entry whose revision is the one
 * this watcher stored the cached version at is still that version (an entry changes only by a new
 * write, which has a new revision), so the rebuild skips it; any other revision, or none, is
 * written again.
 *
 * Kept by entry, not by key: a map of 10,010 keys held a key string of its own for each (0.93 MiB of
 * heap for 10,000 such keys, a WeakMap of as many entries 0.25; BENCHMARKS.md J1–J14), where the
 * cache holds the entries anyway.
 * Children are not kept here: a rebuild writes only their missing entries.
 */
export class WrittenRevisions {
  private revisions = new WeakMap<object, number>();

  /** The cached version `entry` was stored at `revision`. */
  stored(entry: object, revision: number): void {
    this.revisions.set(entry, revision);
  }

  /** The bucket was recreated: nothing in it is known to be ours. */
  clear(): void {
    this.revisions = new WeakMap();
  }

  /** Whether the bucket's entry, at `storedRevision`, is what this watcher stored for the cached `entry`. */
  intact(entry: object, storedRevision: number | undefined): boolean {
    return storedRevision !== undefined && this.revisions.get(entry) === storedRevision;
  }
}
