import { type KubeObject, objectKeyOf } from './kube-object.js';

export type ChangeType = 'added' | 'modified' | 'deleted';

export interface CacheChange {
  type: ChangeType;
  /** The object as it is now (for a deletion: as it was last seen). */
  object: KubeObject;
  /** What the cache held before, when it held something. */
  previous?: KubeObject;
}

/**
 * The last known state of every object of one kind, keyed by namespace/name. It turns what a
 * watch or a relist reports into the changes that really happened: an object seen again at the
 * same resourceVersion is no change, an object missing from a relist was deleted while the watch
 * was down, and a name that came back with another uid is a deletion followed by a creation.
 */
export class ObjectCache {
  private readonly objects = new Map<string, KubeObject>();
  private totalBytes = 0;

  get size(): number {
    return this.objects.size;
  }

  /** JSON bytes of the (trimmed) objects held: what the per-object bound keeps in check. */
  get bytes(): number {
    return this.totalBytes;
  }

  private set(key: string, object: KubeObject, previous: KubeObject | undefined): void {
    this.objects.set(key, object);
    this.totalBytes += object.bytes - (previous?.bytes ?? 0);
  }

  private delete(key: string, previous: KubeObject): void {
    this.objects.delete(key);
    this.totalBytes -= previous.bytes;
  }

  get(namespace: string, name: string): KubeObject | undefined {
    return this.objects.get(objectKeyOf({ namespace, name }));
  }

  values(): IterableIterator<KubeObject> {
    return this.objects.values();
  }

  /** [objectKeyOf(object), object] pairs: the keys the cache already holds. */
  entries(): IterableIterator<[string, KubeObject]> {
    return this.objects.entries();
  }

  /** An object was added or modified. */
  upsert(object: KubeObject): CacheChange[] {
    const key = objectKeyOf(object);
    const previous = this.objects.get(key);
    this.set(key, object, previous);
    if (!previous) return [{ type: 'added', object }];
    if (previous.uid !== object.uid) {
      return [
        { type: 'deleted', object: previous },
        { type: 'added', object },
      ];
    }
    if (previous.resourceVersion === object.resourceVersion) return [];
    return [{ type: 'modified', object, previous }];
  }

  /** An object was deleted; `object` is its final state as the API server reported it. */
  remove(object: KubeObject): CacheChange[] {
    const key = objectKeyOf(object);
    const previous = this.objects.get(key);
    // A deletion of an older incarnation (another uid) must not evict the current one.
    if (previous && previous.uid !== object.uid) return [{ type: 'deleted', object }];
    if (previous) this.delete(key, previous);
    return [previous ? { type: 'deleted', object, previous } : { type: 'deleted', object }];
  }

  /** A full list replaced what the cache knew: report the differences. */
  replace(objects: readonly KubeObject[]): CacheChange[] {
    const changes: CacheChange[] = [];
    const listed = new Set<string>();
    for (const object of objects) {
      listed.add(objectKeyOf(object));
      changes.push(...this.upsert(object));
    }
    for (const [key, previous] of this.objects) {
      if (listed.has(key)) continue;
      this.delete(key, previous);
      changes.push({ type: 'deleted', object: previous });
    }
    return changes;
  }
}
