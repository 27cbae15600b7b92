import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import { backoffDelay, type Logger, type Readiness, sleep } from '@streamspace/shared';
import { DeadlineScheduler } from './deadline-scheduler.js';
import type { ReaperMetrics } from './reaper-metrics.js';

/** What one bucket entry holds. */
interface StoredActivity {
  at: string;
}

interface Known {
  /** Latest activity (ms); undefined after a delete. */
  at?: number;
  /** The entry's revision, for compare-and-set. 0: no entry. */
  revision: number;
}

interface Waiter {
  resolve: (stored: boolean) => void;
  reject: (error: Error) => void;
}

interface Pending {
  at: number;
  /** Failed writes of this time so far. */
  attempts: number;
  waiters: Waiter[];
}

export function encodeActivity(at: number): string {
  return JSON.stringify({ at: new Date(at).toISOString() } satisfies StoredActivity);
}

const utf8 = new TextDecoder();

export function decodeActivity(entry: Pick<KvEntry, 'operation' | 'value'>): number | undefined {
  if (entry.operation !== 'PUT') return undefined;
  try {
    const value = JSON.parse(utf8.decode(entry.value)) as Partial<StoredActivity>;
    const at = typeof value.at === 'string' ? Date.parse(value.at) : Number.NaN;
    return Number.isFinite(at) ? at : undefined;
  } catch {
    return undefined;
  }
}

function isWrongLastSequence(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
      error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

const READINESS = 'activity-bucket';

/**
 * The latest activity per Session, kept in the JetStream KV bucket so every replica and every
 * restart sees it, and mirrored in memory through a watch of the bucket.
 *
 * Values only move forward: a write is a compare-and-set on the entry's revision and is skipped
 * when the stored time is already as late, so replicas storing reports concurrently can never
 * move a session's activity back. Writes are coalesced per key (one pending time per session,
 * at most one write per key per `minWriteIntervalMs`) and made by a fixed number of concurrent
 * writers, so a flood of reports costs bounded memory and at most one write per session per
 * interval. Entries expire `ttl` after their last write (the bucket's max age), so reports for
 * sessions that do not (or no longer) exist do not stay forever.
 */
export class ActivityStore {
  private readonly known = new Map<string, Known>();
  private readonly pending = new Map<string, Pending>();
  /** Keys with a pending time that may be written now, in order. */
  private readonly ready = new Set<string>();
  /** Keys with a pending time waiting for their write interval to pass. */
  private readonly delayed: DeadlineScheduler;
  /** The time being written for a key right now. */
  private readonly writing = new Map<string, number>();
  /** When each key was last written by this replica (for the per-key write interval). */
  private readonly lastWrite = new Map<string, number>();
  private activeWriters = 0;
  private loaded = false;

  constructor(
    private readonly kv: KV,
    private readonly options: {
      log: Logger;
      readiness: Readiness;
      metrics: ReaperMetrics;
      /** Key filters for the bucket watch (`<namespace>.>` per namespace), `>` for all. */
      keyFilter: string | string[];
      /** Told whenever a key's activity moves forward (own writes and other replicas' alike). */
      onChange(key: string, at: number): void;
      /**
       * At most one write per key this often (default 1 s): a session reporting many times a second
       * costs one write a second. The first report after a quiet spell is written at once.
       */
      minWriteIntervalMs?: number;
      /** Bucket writes in flight at once (default 64). */
      writeConcurrency?: number;
      /** The key string to keep for a bucket key (the reaper's own, so Sessions share one). */
      canonicalKey?(key: string): string;
    },
  ) {
    options.readiness.register(READINESS, 'loading the activity bucket');
    this.delayed = new DeadlineScheduler({ onDue: (key) => this.markReady(key) });
    this.delayed.start();
  }

  /** Stops the write-interval timer (pending writes are not waited for). */
  stop(): void {
    this.delayed.stop();
  }

  /** The latest activity this replica knows: the bucket as last seen, plus what it is writing or about to. */
  get(key: string): number | undefined {
    return this.latestKnownOrPending(key);
  }

  /** The bucket's content has been read once since start. */
  get hasLoaded(): boolean {
    return this.loaded;
  }

  /** Drops what memory holds for a key (its Session is gone); the bucket entry expires on its own. */
  forget(key: string): void {
    if (this.pending.has(key) || this.writing.has(key)) return;
    this.known.delete(key);
    this.lastWrite.delete(key);
  }

  /** Reads the key from the bucket itself (for a decision that must not rely on a lagging watch). */
  async readFresh(key: string): Promise<number | undefined> {
    const entry = await this.kv.get(key);
    if (entry) this.learn(key, entry);
    return this.get(key);
  }

  /**
   * Queues `at` for `key` without waiting for the write: the way for fire-and-forget reports, so
   * a flood of them costs one pending time per session, not one promise per report. Returns true
   * when `at` is later than anything stored, being written or queued. A write that fails is
   * retried a few times, then counted and dropped.
   */
  offer(key: string, at: number): boolean {
    const latest = this.latestKnownOrPending(key);
    if (latest !== undefined && at <= latest) return false;
    this.enqueue(key, at);
    return true;
  }

  /**
   * Stores `at` for `key` unless a later time is already stored, and waits for it. Resolves true
   * when `at` was later than what was stored; false when the bucket already had it; rejects when
   * the bucket cannot be written (NATS unavailable) — the caller reports that as a failure.
   */
  record(key: string, at: number): Promise<boolean> {
    const known = this.known.get(key)?.at;
    if (known !== undefined && at <= known) return Promise.resolve(false);
    return new Promise<boolean>((resolve, reject) => this.enqueue(key, at, { resolve, reject }));
  }

  private latestKnownOrPending(key: string): number | undefined {
    let latest = this.known.get(key)?.at;
    for (const candidate of [this.pending.get(key)?.at, this.writing.get(key)]) {
      if (candidate !== undefined && (latest === undefined || candidate > latest)) latest = candidate;
    }
    return latest;
  }

  private enqueue(key: string, at: number, waiter?: Waiter, attempts = 0): void {
    const pending = this.pending.get(key);
    if (pending) {
      pending.at = Math.max(pending.at, at);
      pending.attempts = Math.min(pending.attempts, attempts);
      if (waiter) pending.waiters.push(waiter);
    } else {
      this.pending.set(key, { at, attempts, waiters: waiter ? [waiter] : [] });
    }
    this.scheduleWrite(key);
  }

  /** Makes sure a key with a pending time will be written: now if its interval has passed, else when it has. */
  private scheduleWrite(key: string): void {
    if (!this.pending.has(key) || this.writing.has(key) || this.ready.has(key)) return;
    if (this.delayed.deadlineOf(key) !== undefined) return;
    const last = this.lastWrite.get(key);
    const due = last === undefined ? 0 : last + (this.options.minWriteIntervalMs ?? 1_000);
    if (due <= Date.now()) this.markReady(key);
    else this.delayed.schedule(key, due);
  }

  private markReady(key: string): void {
    this.ready.add(key);
    this.pump();
  }

  private pump(): void {
    const limit = this.options.writeConcurrency ?? 64;
    while (this.activeWriters < limit && this.ready.size > 0) {
      const key = this.ready.values().next().value as string;
      this.ready.delete(key);
      this.activeWriters++;
      void this.writeOne(key).finally(() => {
        this.activeWriters--;
        this.scheduleWrite(key);
        this.pump();
      });
    }
  }

  /**
   * Watches the bucket until `signal` aborts, restarting the watch after any failure. Calls
   * `onLoaded` once, when the bucket's existing entries have been read for the first time.
   */
  async run(signal: AbortSignal, onLoaded: () => void): Promise<void> {
    const { log, readiness, metrics } = this.options;
    for (let failures = 0; !signal.aborted; ) {
      try {
        await this.watchOnce(signal, () => {
          failures = 0;
          readiness.set(READINESS, true);
          if (!this.loaded) {
            this.loaded = true;
            onLoaded();
          }
        });
        if (signal.aborted) break;
        throw new Error('the activity bucket watch ended');
      } catch (error) {
        if (signal.aborted) break;
        metrics.watchRestarts.labels('activity').inc();
        const delay = backoffDelay(failures++, { initialMs: 500, maxMs: 10_000 });
        readiness.set(READINESS, false, `cannot watch the activity bucket: ${(error as Error).message}`);
        log.warn(
          { err: (error as Error).message, retryInMs: delay },
          'activity bucket watch failed; restarting',
        );
        await sleep(delay, signal);
      }
    }
  }

  private async watchOnce(signal: AbortSignal, onCaughtUp: () => void): Promise<void> {
    const filter = this.options.keyFilter;
    // With no entries to deliver first, the watch is caught up at once (no entry would say so).
    const status = await this.kv.status();
    const empty = status.values === 0 || !(await this.hasEntries(filter));
    const watch = await this.kv.watch({ key: filter });
    const stop = () => watch.stop();
    signal.addEventListener('abort', stop, { once: true });
    let caughtUp = false;
    const catchUp = () => {
      if (caughtUp) return;
      caughtUp = true;
      onCaughtUp();
    };
    if (empty) catchUp();
    // Should the count have been wrong (entries expired in between), do not wait forever.
    const fallback = setTimeout(catchUp, 30_000);
    try {
      for await (const entry of watch) {
        this.learn(this.options.canonicalKey?.(entry.key) ?? entry.key, entry);
        if (!caughtUp && (entry.isUpdate || entry.delta === 0)) catchUp();
      }
    } finally {
      clearTimeout(fallback);
      signal.removeEventListener('abort', stop);
    }
  }

  private async hasEntries(filter: string | string[]): Promise<boolean> {
    const keys = await this.kv.keys(filter);
    for await (const _ of keys) {
      keys.stop();
      return true;
    }
    return false;
  }

  private learn(key: string, entry: Pick<KvEntry, 'operation' | 'value' | 'revision'>): void {
    const known = this.known.get(key);
    if (known && entry.revision <= known.revision) return;
    const at = decodeActivity(entry);
    const before = known?.at;
    // Keep the later time even if an entry says otherwise: activity never moves back.
    const next = at === undefined ? before : before === undefined ? at : Math.max(at, before);
    this.known.set(key, {
      revision: entry.revision,
      ...(entry.operation === 'PUT' && next !== undefined ? { at: next } : {}),
    });
    if (entry.operation === 'PUT' && next !== undefined && (before === undefined || next > before))
      this.options.onChange(key, next);
  }

  private async writeOne(key: string): Promise<void> {
    const { metrics, log } = this.options;
    const pending = this.pending.get(key);
    if (!pending) return;
    this.pending.delete(key);
    this.writing.set(key, pending.at);
    this.lastWrite.set(key, Date.now());
    try {
      const stored = await this.write(key, pending.at);
      metrics.bucketWrites.labels(stored ? 'written' : 'skipped').inc();
      for (const w of pending.waiters) w.resolve(stored);
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      metrics.bucketWrites.labels('failed').inc();
      for (const w of pending.waiters) w.reject(failure);
      // Nobody waits for a fire-and-forget report to answer them, so retry it here.
      if (pending.waiters.length === 0 && pending.attempts < 5) {
        const { at, attempts } = pending;
        setTimeout(
          () => this.enqueue(key, at, undefined, attempts + 1),
          backoffDelay(attempts, { initialMs: 500, maxMs: 5_000 }),
        ).unref();
      } else if (pending.waiters.length === 0) {
        log.warn(
          { key, err: failure.message },
          'could not store activity after several attempts; dropping it',
        );
      }
    } finally {
      this.writing.delete(key);
    }
  }

  /** Compare-and-set until the stored time is at least `at`; a few conflicts are normal between replicas. */
  private async write(key: string, at: number): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      const known = this.known.get(key);
      if (known?.at !== undefined && known.at >= at) return false;
      try {
        const revision = await this.kv.put(key, encodeActivity(at), { previousSeq: known?.revision ?? 0 });
        const before = this.known.get(key);
        if (!before || revision > before.revision) this.known.set(key, { at, revision });
        this.options.onChange(key, at);
        return true;
      } catch (error) {
        if (!isWrongLastSequence(error) || attempt >= 8) throw error;
        const entry = await this.kv.get(key);
        if (entry) this.learn(key, entry);
        else this.known.set(key, { revision: 0 });
        if (attempt > 2) await sleep(backoffDelay(attempt - 2, { initialMs: 5, maxMs: 100 }));
      }
    }
  }
}
