import type { KV } from '@nats-io/kv';

/**
 * At most one worker, in any process, reconciles a key at a time. Within a process a promise
 * chain serialises; across processes an entry in a JetStream KV bucket created only if absent
 * does. Entries expire with the bucket's TTL, so a worker killed mid-reconcile frees its keys.
 */
export class KeyLocks {
  private readonly local = new Map<string, Promise<void>>();

  constructor(
    private readonly kv: KV,
    private readonly owner: string,
  ) {}

  /** Waits for this process's earlier holder of `key`, if any; returns a release function. */
  async holdLocally(key: string): Promise<() => void> {
    while (this.local.has(key)) await this.local.get(key);
    let release!: () => void;
    this.local.set(key, new Promise<void>((resolve) => (release = resolve)));
    return () => {
      this.local.delete(key);
      release();
    };
  }

  /** The entry's revision when this worker now holds the key; undefined when another worker does. */
  async tryAcquire(key: string): Promise<number | undefined> {
    try {
      return await this.kv.create(key, this.owner);
    } catch (error) {
      if (/wrong last sequence|key exists/i.test((error as Error).message)) return undefined;
      throw error;
    }
  }

  /** Extends the hold past the TTL for a long reconcile; returns the new revision. */
  async refresh(key: string, revision: number): Promise<number> {
    return this.kv.update(key, this.owner, revision);
  }

  async release(key: string, revision: number): Promise<void> {
    try {
      await this.kv.delete(key, { previousSeq: revision });
    } catch {
      // Expired or taken over after a TTL: nothing of ours to release.
    }
  }
}
