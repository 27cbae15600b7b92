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
  /**
   * `previous` is what the cache held under the object's namespace/name, if anything: an entry
   * may take its strings (its name) instead of holding copies of its own.
   */
  retain(object: KubeObject, previous?: C): C;
  restore(entry: C): KubeObject;
  /**
   * The form the cache holds `entry` in, where a smaller one than the entry object exists (a
   * string: no object of its own per entry); `unpack` makes an entry again from it and the names
   * the cache keys it by. Without them the cache holds the entry itself. `get` and iteration then
   * give a new entry object on each read, equal in every field.
   */
  pack?(entry: C): unknown;
  unpack?(namespace: string, name: string, packed: unknown): C;
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
  /**
   * namespace → name → entry. Keyed by the entry's own name string, not by a `namespace/name`
   * key of each entry's own: such a key cost ~96 bytes an entry (two concatenated strings and the
   * object's copy of its namespace), ~5.5 MiB of the watcher's heap at 10,000 Sessions and their
   * 50,000 children (BENCHMARKS.md, W5–W7). The watcher's informers each watch one namespace, so
   * the outer map holds one.
   */
  private readonly namespaces = new Map<string, Map<string, unknown>>();
  private count = 0;
  private totalBytes = 0;

  constructor(
    private readonly retention: CacheRetention<C> = WHOLE_OBJECTS as unknown as CacheRetention<C>,
  ) {}

  get size(): number {
    return this.count;
  }

  /** JSON bytes the entries hold: what the per-object bound keeps in check. */
  get bytes(): number {
    return this.totalBytes;
  }

  private set(entry: C, previous: C | undefined): void {
    let names = this.namespaces.get(entry.namespace);
    if (!names) {
      names = new Map();
      this.namespaces.set(entry.namespace, names);
    }
    names.set(entry.name, this.retention.pack ? this.retention.pack(entry) : entry);
    if (!previous) this.count++;
    this.totalBytes += entry.bytes - (previous?.bytes ?? 0);
  }

  private delete(previous: C): void {
    const names = this.namespaces.get(previous.namespace);
    if (!names?.delete(previous.name)) return;
    if (names.size === 0) this.namespaces.delete(previous.namespace);
    this.count--;
    this.totalBytes -= previous.bytes;
  }

  /** The entry held for namespace/name: what the cache holds, unpacked where the retention packs. */
  private entry(namespace: string, name: string, held: unknown): C {
    return this.retention.unpack ? this.retention.unpack(namespace, name, held) : (held as C);
  }

  get(namespace: string, name: string): C | undefined {
    const held = this.namespaces.get(namespace)?.get(name);
    return held === undefined ? undefined : this.entry(namespace, name, held);
  }

  *values(): IterableIterator<C> {
    for (const [namespace, names] of this.namespaces)
      for (const [name, held] of names) yield this.entry(namespace, name, held);
  }

  /** [objectKeyOf(entry), entry] pairs: the keys the cache already holds (made as they are read). */
  *entries(): IterableIterator<[string, C]> {
    for (const [namespace, names] of this.namespaces)
      for (const [name, held] of names)
        yield [objectKeyOf({ namespace, name }), this.entry(namespace, name, held)];
  }

  /** Whether the cache holds this very version of the object (same uid and resourceVersion). */
  holds(object: { namespace: string; name: string; uid: string; resourceVersion: string }): boolean {
    const entry = this.get(object.namespace, object.name);
    return (
      entry !== undefined && entry.uid === object.uid && entry.resourceVersion === object.resourceVersion
    );
  }

  /** An object was added or modified. */
  upsert(object: KubeObject): CacheChange<C>[] {
    const previous = this.get(object.namespace, object.name);
    if (previous && previous.uid === object.uid && previous.resourceVersion === object.resourceVersion)
      return [];
    const current = this.retention.retain(object, previous);
    this.set(current, previous);
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
    const previous = this.get(object.namespace, object.name);
    // A deletion of an older incarnation (another uid) must not evict the current one.
    if (previous && previous.uid !== object.uid) return [{ type: 'deleted', object }];
    if (previous) this.delete(previous);
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
    // A Map's iteration goes on past the deletion of the entry it is at.
    for (const [namespace, names] of this.namespaces)
      for (const [name, held] of names) {
        if (listed.has(objectKeyOf({ namespace, name }))) continue;
        const previous = this.entry(namespace, name, held);
        this.delete(previous);
        changes.push({ type: 'deleted', object: this.retention.restore(previous), previous });
      }
    return changes;
  }
}
