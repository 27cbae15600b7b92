import { type BackoffOptions, backoffDelay } from '@streamspace/shared';

/**
 * A write that leaves the entry as it is: its messages only wait for the key's earlier writes (a
 * deletion of an older incarnation, whose name a newer object holds already).
 */
export const KEEP_ENTRY: unique symbol = Symbol('keep the entry');

export interface StateWrite<M> {
  key: string;
  /**
   * The entry's new value (the object's JSON, the very string the change carries: a write
   * waiting here costs no copy), undefined to delete it, or KEEP_ENTRY to leave it. A function
   * gives the JSON when the write is sent, not before: a rebuild writes every Session, which the
   * watcher keeps deflated (packed-session.ts), and inflating all at once queued 10,000 Sessions'
   * JSON here (the watcher's resident memory rose from 98 to 139 MiB in the 10,000-Session run's
   * resync); so at most `concurrency` of them exist at a time.
   */
  value: string | (() => string) | undefined | typeof KEEP_ENTRY;
  /** Released (to the publisher) once this write, or a newer one of the same key, is stored. */
  after: M[];
  /**
   * The cached object `value` is the JSON of, if any: handed to `stored` with the revision the
   * value was stored at (written-revisions.ts). It goes with the value when writes of a key merge.
   */
  source?: object | undefined;
}

export interface StateStoreOptions<M> {
  /** Resolves with the bucket revision the value was stored at. */
  put(key: string, value: string): Promise<number>;
  delete(key: string): Promise<void>;
  /** Messages whose state is stored, in the order they were given. */
  release(messages: M[]): void;
  /** A write with a `source` was stored at `revision`. */
  stored?(source: object, revision: number): void;
  /** Writes in flight at once. */
  concurrency: number;
  backoff?: BackoffOptions;
  hooks?: {
    /** A write failed and is retried after `retryInMs` (undefined: it joined a pause already running). */
    failed?(key: string, error: unknown, retryInMs: number | undefined): void;
    /** Writing works (true) or fails and is being retried (false, with the last error). */
    health?(ok: boolean, reason: string): void;
  };
}

/**
 * One write of a key standing for an earlier and a later one: the later value (with its source),
 * unless the later is KEEP_ENTRY, which keeps what the earlier was to store; both writes' messages,
 * the earlier's first.
 */
function merged<M>(earlier: StateWrite<M>, later: StateWrite<M>): StateWrite<M> {
  const keepsEarlier = later.value === KEEP_ENTRY;
  return {
    key: later.key,
    value: keepsEarlier ? earlier.value : later.value,
    after: [...earlier.after, ...later.after],
    source: keepsEarlier ? earlier.source : later.source,
  };
}

/**
 * The watcher's writes to the shared state, and what waits for them. A change is stored before
 * the messages it triggers are released (`after`), so a worker woken by a message never reads
 * older state than the change that woke it.
 *
 * Bounded without dropping anything: per key only the newest value waits (an older one it
 * replaces was never needed — the newer one says more), and the messages of the replaced write
 * are released after the newer one is stored. So however long NATS is away, this holds at most
 * one write per object the watcher knows. One write per key is in flight at a time, so a key's
 * writes land in order.
 */
export class StateStore<M> {
  private readonly waiting = new Map<string, StateWrite<M>>();
  private readonly inFlight = new Set<string>();
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private healthy: boolean | undefined;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: StateStoreOptions<M>) {}

  /** Writes waiting or in flight. */
  get pending(): number {
    return this.waiting.size + this.inFlight.size;
  }

  /** Whether a write of `key` waits or is in flight. */
  has(key: string): boolean {
    return this.waiting.has(key) || this.inFlight.has(key);
  }

  write(write: StateWrite<M>): void {
    if (this.closed) return;
    const older = this.waiting.get(write.key);
    // Delete and re-insert: a replaced write keeps no place in the queue it no longer deserves.
    this.waiting.delete(write.key);
    if (write.value === KEEP_ENTRY && !older && !this.inFlight.has(write.key)) {
      // Nothing of this key is pending: the entry is as it will stay.
      this.options.release(write.after);
      return;
    }
    this.waiting.set(write.key, older ? merged(older, write) : write);
    this.pump();
  }

  /** Resolves once nothing waits or is in flight. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Retries at once instead of waiting out the backoff (the bucket is back). */
  resume(): void {
    if (this.retryTimer === undefined) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.pump();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private pump(): void {
    if (this.closed || this.retryTimer !== undefined) return;
    for (const [key, write] of this.waiting) {
      if (this.inFlight.size >= this.options.concurrency) break;
      if (this.inFlight.has(key)) continue;
      this.waiting.delete(key);
      this.inFlight.add(key);
      void this.send(write);
    }
    if (this.pending === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private async send(write: StateWrite<M>): Promise<void> {
    const { hooks } = this.options;
    try {
      if (write.value === undefined) await this.options.delete(write.key);
      else if (write.value !== KEEP_ENTRY) {
        const revision = await this.options.put(
          write.key,
          typeof write.value === 'function' ? write.value() : write.value,
        );
        if (write.source) this.options.stored?.(write.source, revision);
      }
      this.attempt = 0;
      if (this.healthy !== true) {
        this.healthy = true;
        hooks?.health?.(true, 'ok');
      }
      this.options.release(write.after);
    } catch (error) {
      if (!this.closed) {
        // Back in line unless a newer write of the key came meanwhile (it carries these messages on).
        const newer = this.waiting.get(write.key);
        this.waiting.set(write.key, newer ? merged(write, newer) : write);
        let delay: number | undefined;
        if (this.retryTimer === undefined) {
          delay = backoffDelay(this.attempt++, this.options.backoff);
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.pump();
          }, delay);
          this.healthy = false;
          hooks?.health?.(
            false,
            `writing the shared state fails: ${(error as Error).message ?? String(error)}`,
          );
        }
        hooks?.failed?.(write.key, error, delay);
      }
    } finally {
      this.inFlight.delete(write.key);
      this.pump();
    }
  }
}
