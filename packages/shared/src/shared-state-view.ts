import type { KV, KvEntry } from '@nats-io/kv';
import { backoffDelay, sleep } from './backoff.js';
import { hasKeys } from './kv-keys.js';
import { type StateKind, stateKindFilter } from './shared-state.js';

/**
 * A live view of one kind of the shared state (shared-state.ts) for services that want every
 * object of a kind and each change after (the idle reaper, metrics): a KV watch, which delivers
 * the current value of every key and then every update — list-then-watch, without the API server.
 *
 * Synced once the watch has delivered the values that existed when it started; current while the
 * watch runs. A watch that ends (NATS gone, the bucket deleted and rebuilt by the watcher) is
 * started again with a backoff, and once the new one has delivered what exists, keys it no longer
 * has are reported deleted. An entry that cannot be read is reported (onCorrupt) and treated as
 * absent; the watcher's next write replaces it.
 */
export interface StateViewOptions<T> {
  /** The bucket, or a function that binds it (called again after a failure). */
  bucket: () => Promise<KV>;
  kind: StateKind;
  /** Only these namespaces (WATCH_NAMESPACE); every namespace when undefined. */
  namespaces?: readonly string[];
  /**
   * Keep every value, for `values()` (default true). A caller that keeps what it needs of each
   * value itself (the idle reaper) says false: the view then holds only the keys, to report
   * deletions, and `values()` is empty.
   */
  keepValues?: boolean;
  /**
   * The caller's key of an entry's key, when it follows from it (the idle reaper's
   * `<namespace>.<name>` from `session.<namespace>.<name>`): the view then keeps the caller's key
   * strings only, not every entry's key beside them.
   */
  keyOf?(entryKey: string): string;
  /** The value and the caller's key of an object, or why it cannot be used. */
  parse(object: unknown): { ok: true; key: string; value: T } | { ok: false; reason: string };
  onUpsert?(key: string, value: T): void;
  onDelete?(key: string): void;
  /** After the values that existed when a watch started have all been delivered. */
  onSynced?(): void;
  /** Watching (true), or not, with why. */
  onState?(up: boolean, reason: string): void;
  onCorrupt?(entryKey: string, reason: string): void;
}

const utf8 = new TextDecoder();

export class SharedStateView<T> {
  private items = new Map<string, T>();
  /**
   * The caller's key of every entry, to report a deletion (its entry no longer says whose it
   * was), by the entry's key (or by what `keyOf` makes of it).
   */
  private keysOf = new Map<string, string>();
  private listedOnce = false;
  private up = false;
  private reason = '';
  private readonly syncedWaiters: (() => void)[] = [];

  constructor(private readonly options: StateViewOptions<T>) {}

  get synced(): boolean {
    return this.listedOnce;
  }

  get current(): boolean {
    return this.up;
  }

  /** Every value (none with `keepValues: false`). */
  values(): T[] {
    return [...this.items.values()];
  }

  whenSynced(signal?: AbortSignal): Promise<void> {
    if (this.listedOnce || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      this.syncedWaiters.push(resolve);
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  private filters(): string[] {
    const { kind, namespaces } = this.options;
    return namespaces ? namespaces.map((ns) => stateKindFilter(kind, ns)) : [stateKindFilter(kind)];
  }

  /** Runs until `signal` aborts. Never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      try {
        const delivered = await this.watchOnce(signal);
        if (delivered) attempt = 0;
        if (signal.aborted) break;
        this.setState(false, 'the shared-state watch ended; starting another');
      } catch (error) {
        if (signal.aborted) break;
        this.setState(false, `cannot watch the shared state: ${(error as Error).message}`);
      }
      await sleep(backoffDelay(attempt++, { initialMs: 250, maxMs: 10_000 }), signal);
    }
  }

  /**
   * Says when the view goes up or down, and when it stays down for another reason: a view that
   * was never up (its bucket not declared yet, a NATS cluster without quorum) says why it cannot
   * watch, where its caller's readiness would otherwise keep the reason it started with.
   */
  private setState(up: boolean, reason: string): void {
    if (this.up === up && (up || this.reason === reason)) return;
    this.up = up;
    this.reason = reason;
    this.options.onState?.(up, reason);
  }

  /** One watch; resolves when it ends. Returns whether it delivered anything. */
  private async watchOnce(signal: AbortSignal): Promise<boolean> {
    const kv = await this.options.bucket();
    const filters = this.filters();
    // With nothing to deliver first, a watch is caught up at once (no entry would say so).
    const empty = !(await hasKeys(kv, filters));
    const watch = await kv.watch({ key: filters });
    const stop = () => watch.stop();
    signal.addEventListener('abort', stop, { once: true });
    /** The keys delivered before catching up (dropped then: a long watch would hold every key twice). */
    let seen: Set<string> | undefined = new Set<string>();
    let caughtUp = false;
    let delivered = false;
    const catchUp = () => {
      if (caughtUp) return;
      caughtUp = true;
      // What the previous watch knew and this one does not have is gone.
      const seenBefore = seen;
      seen = undefined;
      for (const [entryKey, key] of [...this.keysOf]) {
        if (seenBefore?.has(entryKey)) continue;
        this.keysOf.delete(entryKey);
        this.items.delete(key);
        this.options.onDelete?.(key);
      }
      this.setState(true, 'ok');
      if (!this.listedOnce) {
        this.listedOnce = true;
        for (const resolve of this.syncedWaiters.splice(0)) resolve();
      }
      this.options.onSynced?.();
    };
    if (empty) catchUp();
    try {
      for await (const entry of watch) {
        delivered = true;
        seen?.add(this.indexKey(entry.key));
        this.apply(entry);
        if (!caughtUp && (entry.isUpdate || entry.delta === 0)) catchUp();
      }
    } finally {
      signal.removeEventListener('abort', stop);
    }
    return delivered;
  }

  private indexKey(entryKey: string): string {
    return this.options.keyOf ? this.options.keyOf(entryKey) : entryKey;
  }

  private apply(entry: KvEntry): void {
    const index = this.indexKey(entry.key);
    const known = this.keysOf.get(index);
    const forget = () => {
      if (known === undefined) return;
      this.keysOf.delete(index);
      this.items.delete(known);
      this.options.onDelete?.(known);
    };
    if (entry.operation !== 'PUT') {
      forget();
      return;
    }
    const parsed = this.read(entry);
    if (!parsed.ok) {
      this.options.onCorrupt?.(entry.key, parsed.reason);
      forget();
      return;
    }
    if (known !== undefined && known !== parsed.key) forget();
    // The caller's own string where the two are alike, so the view holds no copy of its own.
    this.keysOf.set(index === parsed.key ? parsed.key : index, parsed.key);
    if (this.options.keepValues !== false) this.items.set(parsed.key, parsed.value);
    this.options.onUpsert?.(parsed.key, parsed.value);
  }

  private read(entry: KvEntry): { ok: true; key: string; value: T } | { ok: false; reason: string } {
    // No size check: the bucket's max_value_size refuses an oversized entry at write.
    let raw: unknown;
    try {
      raw = JSON.parse(utf8.decode(entry.value));
    } catch (error) {
      return { ok: false, reason: `not JSON: ${(error as Error).message}` };
    }
    return this.options.parse(raw);
  }
}
