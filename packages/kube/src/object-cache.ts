import { type KubeObject, objectKeyOf } from './kube-object.js';

export type ChangeType = 'added' | 'modified' | 'deleted';

/** What a cache entry must keep of an object, whatever else it keeps: what list and watch key and compare on. */
export interface CachedIdentity {
  namespace: string;
  name: string;
  uid: string;
  resourceVersion: string;
  generation: number | undefined;
  /** Bytes of object JSON the entry holds in memory (0 when it holds none). */
  bytes: number;
}

/**
 * What a cache keeps of each object, and how an entry stands in for the object when the object
 * itself is gone (a deletion a relist found, or an older incarnation replaced). The default keeps
 * the whole object (its JSON); a consumer that stores objects elsewhere keeps less.
 */
export interface CacheRetention<C extends CachedIdentity> {
  retain(object: KubeObject): C;
  restore(entry: C): KubeObject;
}

/** Keeps the whole object as JSON (its parsed form is let go once its change was handed on). */
export const WHOLE_OBJECTS: CacheRetention<KubeObject> = {
  retain: (object) => object,
  restore: (entry) => entry,
};

export interface CacheChange<C extends CachedIdentity = KubeObject> {
  type: ChangeType;
  /**
   * The object as it is now; for a deletion, as the API server last reported it, or what the
   * cache held of it (`retention.restore`) when a relist or a new uid found it gone.
   */
  object: KubeObject;
  /** What the cache keeps of `object` now (absent for a deletion). */
  current?: C;
  /** What the cache held before, when it held something. */
  previous?: C;
}

/**
 * The last known state of every object of one kind, keyed by namespace/name. It turns what a
 * watch or a relist reports into the changes that really happened: an object seen again at the
 * same resourceVersion is no change, an object missing from a relist was deleted while the watch
 * was down, and a name that came back with another uid is a deletion followed by a creation.
 */
export class ObjectCache<C extends CachedIdentity = KubeObject> {
  private readonly objects = new Map<string, C>();
  private totalBytes = 0;

  constructor(
    private readonly retention: CacheRetention<C> = WHOLE_OBJECTS as unknown as CacheRetention<C>,
  ) {}

  get size(): number {
    return this.objects.size;
  }

  /** JSON bytes the entries hold: what the per-object bound keeps in check. */
  get bytes(): number {
    return this.totalBytes;
  }

  private set(key: string, entry: C, previous: C | undefined): void {
    this.objects.set(key, entry);
    this.totalBytes += entry.bytes - (previous?.bytes ?? 0);
  }

  private delete(key: string, previous: C): void {
    this.objects.delete(key);
    this.totalBytes -= previous.bytes;
  }

  get(namespace: string, name: string): C | undefined {
    return this.objects.get(objectKeyOf({ namespace, name }));
  }

  values(): IterableIterator<C> {
    return this.objects.values();
  }

  /** [objectKeyOf(object), entry] pairs: the keys the cache already holds. */
  entries(): IterableIterator<[string, C]> {
    return this.objects.entries();
  }

  /** Whether the cache holds this very version of the object (same uid and resourceVersion). */
  holds(object: { namespace: string; name: string; uid: string; resourceVersion: string }): boolean {
    const entry = this.objects.get(objectKeyOf(object));
    return (
      entry !== undefined && entry.uid === object.uid && entry.resourceVersion === object.resourceVersion
    );
  }

  /** An object was added or modified. */
  upsert(object: KubeObject): CacheChange<C>[] {
    const key = objectKeyOf(object);
    const previous = this.objects.get(key);
    if (previous && previous.uid === object.uid && previous.resourceVersion === object.resourceVersion)
      return [];
    const current = this.retention.retain(object);
    this.set(key, current, previous);
    if (!previous) return [{ type: 'added', object, current }];
    if (previous.uid !== object.uid) {
      return [
        { type: 'deleted', object: this.retention.restore(previous), previous },
        { type: 'added', object, current },
      ];
    }
    return [{ type: 'modified', object, current, previous }];
  }

  /** An object was deleted; `object` is its final state as the API server reported it. */
  remove(object: KubeObject): CacheChange<C>[] {
    const key = objectKeyOf(object);
    const previous = this.objects.get(key);
    // A deletion of an older incarnation (another uid) must not evict the current one.
    if (previous && previous.uid !== object.uid) return [{ type: 'deleted', object }];
    if (previous) this.delete(key, previous);
    return [previous ? { type: 'deleted', object, previous } : { type: 'deleted', object }];
  }

  /**
   * A full list replaced what the cache knew: report the differences. `unchanged` names objects
   * the list returned at the version the cache holds (a relist of thousands need not keep them).
   */
  replace(objects: readonly KubeObject[], unchanged: ReadonlySet<string> = new Set()): CacheChange<C>[] {
    const changes: CacheChange<C>[] = [];
    const listed = new Set<string>(unchanged);
    for (const object of objects) {
      listed.add(objectKeyOf(object));
      changes.push(...this.upsert(object));
    }
    changes.push(...this.removeUnlisted(listed));
    return changes;
  }

  /**
   * The end of a list whose objects were upserted page by page: what the cache holds under a key
   * the list did not return was deleted meanwhile.
   */
  removeUnlisted(listed: ReadonlySet<string>): CacheChange<C>[] {
    const changes: CacheChange<C>[] = [];
    for (const [key, previous] of this.objects) {
      if (listed.has(key)) continue;
      this.delete(key, previous);
      changes.push({ type: 'deleted', object: this.retention.restore(previous), previous });
    }
    return changes;
  }
}
