import { stateKindFilter } from '@streamspace/shared';

/** Keys of the kinds the watcher holds whole, and so writes again at a rebuild. */
const WHOLE_PREFIXES = [stateKindFilter('session').slice(0, -1), stateKindFilter('template').slice(0, -1)];

/**
 * The bucket revision of the watcher's own last write of each Session and Template entry.
 *
 * A rebuild of the shared state (at start, at every periodic resync) used to write every Session
 * and Template again so that an entry someone else overwrote (corrupt, or an older version) was
 * repaired. At 10,000 Sessions that was 10,010 entries inflated from their packed form and put,
 * at every resync and right after the start's lists had written each of them: 90,040 puts in the
 * 150-s restart bench where 60,010 now do (BENCHMARKS.md V7–V8; the watcher's peak memory did not
 * move, V1–V8). An entry whose revision is the one this watcher wrote is
 * still what it wrote (an entry changes only by a new write, which has a new revision), so the
 * rebuild skips it; any other revision, or none, is written again.
 *
 * Children are not kept here: a rebuild writes only their missing entries.
 */
export class WrittenRevisions {
  private readonly revisions = new Map<string, number>();

  /** A put of `key` was stored at `revision`. */
  put(key: string, revision: number): void {
    if (WHOLE_PREFIXES.some((prefix) => key.startsWith(prefix))) this.revisions.set(key, revision);
  }

  /** `key` was deleted by this watcher. */
  deleted(key: string): void {
    this.revisions.delete(key);
  }

  /** The bucket was recreated: nothing in it is known to be ours. */
  clear(): void {
    this.revisions.clear();
  }

  /** Whether the bucket's entry of `key`, at `storedRevision`, is this watcher's last write of it. */
  intact(key: string, storedRevision: number | undefined): boolean {
    return storedRevision !== undefined && this.revisions.get(key) === storedRevision;
  }

  get size(): number {
    return this.revisions.size;
  }
}
