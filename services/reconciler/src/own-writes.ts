/**
 * Read-your-writes for one reconciler process. The shared state is stored by the watcher when it
 * sees a change, so for a moment after we write an object the state still holds the version
 * before our write. A reconcile that planned from that older Session status would write its
 * status again with new transition times (a Session seen Terminated twice, counted twice by the
 * metrics), and one that planned from an older child would apply it again for nothing.
 *
 * So each object the server answered a write of is remembered until the shared state holds that
 * version or a newer one, and a read takes whichever is newer (etcd's resourceVersions are
 * integers; anything else is not compared and the shared state wins). Bounded: an entry leaves as
 * soon as a read finds the state caught up, once it is `ttlMs` old (by then the watcher has long
 * stored our write; most entries are never read again, as a reconcile's last write is usually the
 * last of its key for a while, and kept until `maxEntries` they were megabytes of heap), and the
 * oldest leave first beyond `maxEntries`.
 */
export interface Versioned {
  metadata?: { uid?: string; resourceVersion?: string; managedFields?: unknown };
}

function newerVersion(candidate: string | undefined, than: string | undefined): boolean {
  if (!candidate || !than || !/^\d+$/.test(candidate) || !/^\d+$/.test(than)) return false;
  return BigInt(candidate) > BigInt(than);
}

export class OwnWrites {
  /** In the order written (a rewrite moves a key to the end), so the oldest come first. */
  private readonly written = new Map<string, { object: Versioned; at: number }>();

  constructor(
    private readonly maxEntries = 10_000,
    private readonly ttlMs = 30_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get size(): number {
    return this.written.size;
  }

  /** What the server answered a write of kind/namespace/name with. */
  remember(kind: string, namespace: string, name: string, object: Versioned | undefined): void {
    if (!object?.metadata?.resourceVersion) return;
    const key = `${kind}/${namespace}/${name}`;
    // managedFields are most of an applied object's size and nothing reads them.
    const { managedFields: _, ...metadata } = object.metadata;
    this.written.delete(key);
    this.written.set(key, { object: { ...object, metadata }, at: this.now() });
    if (this.written.size > this.maxEntries) {
      const oldest = this.written.keys().next().value;
      if (oldest !== undefined) this.written.delete(oldest);
    }
    this.forgetExpired();
  }

  private forgetExpired(): void {
    const expired = this.now() - this.ttlMs;
    for (const [key, { at }] of this.written) {
      if (at > expired) return;
      this.written.delete(key);
    }
  }

  /**
   * The newer of what the shared state holds and what we last wrote. Absent from the state means
   * deleted (or not seen yet): our write does not bring it back.
   */
  newest<T extends Versioned>(
    kind: string,
    namespace: string,
    name: string,
    fromState: T | undefined,
  ): T | undefined {
    this.forgetExpired();
    const key = `${kind}/${namespace}/${name}`;
    const ours = this.written.get(key)?.object;
    if (!ours) return fromState;
    const sameObject =
      fromState?.metadata?.uid !== undefined && fromState.metadata.uid === ours.metadata?.uid;
    if (
      fromState &&
      sameObject &&
      newerVersion(ours.metadata?.resourceVersion, fromState.metadata?.resourceVersion)
    )
      return ours as T;
    // The state has caught up (or the object is gone or another incarnation): it is the truth now.
    this.written.delete(key);
    return fromState;
  }
}
