import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import { backoffDelay, hasKeys, type Logger, type Readiness, sleep } from '@streamspace/shared';
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

interface Pending {
  at: number;
  /** Failed writes of this time so far. */
  attempts: number;
}

/** A failed write is tried again at the next flushes, this many times, then dropped (logged, counted). */
const MAX_WRITE_ATTEMPTS = 5;

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
 * Reports are held in memory (the latest time per session) and flushed to the bucket every
 * `flushIntervalMs`, one write per session that reported since the last flush, by a fixed number
 * of concurrent writers: a session reporting every few seconds costs one write per flush
 * interval, not one per report. What a crash loses is at most one flush interval of reports;
 * the restart grace (see session-deadlines.ts, `idleNotBefore`) keeps that from hibernating
 * anyone. Values only move forward: a write is a compare-and-set on the entry's revision and is
 * skipped when the stored time is already as late, so replicas flushing concurrently can never
 * move a session's activity back. Entries expire `ttl` after their last write (the bucket's max
 * age), so reports for sessions that do not (or no longer) exist do not stay forever.
 */
export class ActivityStore {
  private readonly known = new Map<string, Known>();
  /** Reports held since the last flush: the latest time per key. */
  private pending = new Map<string, Pending>();
  /** The time being written for a key right now. */
  private readonly writing = new Map<string, number>();
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The last write failed (NATS or the bucket unavailable), with this error; cleared by a write that succeeds. */
  private failure: Error | undefined;
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
      /** Reports are written to the bucket this often, the latest per session (default 10 s). */
      flushIntervalMs?: number;
      /** Bucket writes in flight at once during a flush (default 64). */
      writeConcurrency?: number;
      /** The key string to keep for a bucket key (the reaper's own, so Sessions share one). */
      canonicalKey?(key: string): string;
    },
  ) {
    options.readiness.register(READINESS, 'loading the activity bucket');
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 10_000);
    this.timer.unref();
  }

  /**
   * Stops the flush timer and writes what is held (waiting at most for one flush): a graceful
   * stop loses nothing; only a crash loses the reports of the last flush interval.
   */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flushing;
    await this.flush();
  }

  /** The latest activity this replica knows: the bucket as last seen, plus what it holds or is writing. */
  get(key: string): number | undefined {
    return this.latestKnownOrPending(key);
  }

  /** The bucket's content has been read once since start. */
  get hasLoaded(): boolean {
    return this.loaded;
  }

  /** Reports held in memory, not yet written. */
  get heldCount(): number {
    return this.pending.size;
  }

  /** The reports held in memory and not yet stored (being written included): the latest time per key. */
  *held(): Generator<[key: string, at: number]> {
    for (const [key, pending] of this.pending) yield [key, pending.at];
    for (const [key, at] of this.writing) if (!this.pending.has(key)) yield [key, at];
  }

  /** Drops what memory holds for a key (its Session is gone); the bucket entry expires on its own. */
  forget(key: string): void {
    if (this.pending.has(key) || this.writing.has(key)) return;
    this.known.delete(key);
  }

  /** Reads the key from the bucket itself (for a decision that must not rely on a lagging watch). */
  async readFresh(key: string): Promise<number | undefined> {
    const entry = await this.kv.get(key);
    if (entry) this.learn(key, entry);
    return this.get(key);
  }

  /**
   * Holds `at` for `key` until the next flush: the way for fire-and-forget reports, so a flood of
   * them costs one held time per session. Returns true when `at` is later than anything stored,
   * being written or held. A write that fails is tried again at the next flushes, a few times,
   * then counted and dropped.
   */
  offer(key: string, at: number): boolean {
    const latest = this.latestKnownOrPending(key);
    if (latest !== undefined && at <= latest) return false;
    this.hold(key, at, 0);
    return true;
  }

  /**
   * As `offer`, for a caller that answers the reporter (HTTP, a NATS request): resolves true when
   * `at` is later than what was known, false when it was not; rejects while the bucket cannot be
   * written (the last write failed), so the reporter is told to retry. The report is held either
   * way, and the write that succeeds clears the failure.
   */
  record(key: string, at: number): Promise<boolean> {
    const later = this.offer(key, at);
    if (this.failure)
      return Promise.reject(new Error(`the activity bucket cannot be written: ${this.failure.message}`));
    return Promise.resolve(later);
  }

  private latestKnownOrPending(key: string): number | undefined {
    let latest = this.known.get(key)?.at;
    for (const candidate of [this.pending.get(key)?.at, this.writing.get(key)]) {
      if (candidate !== undefined && (latest === undefined || candidate > latest)) latest = candidate;
    }
    return latest;
  }

  private hold(key: string, at: number, attempts: number): void {
    const pending = this.pending.get(key);
    if (pending) {
      pending.at = Math.max(pending.at, at);
      pending.attempts = Math.min(pending.attempts, attempts);
    } else {
      this.pending.set(key, { at, attempts });
    }
  }

  /**
   * Writes every held report (the latest time per session) with a bounded number of writers. One
   * flush at a time: what arrives meanwhile waits for the next.
   */
  flush(): Promise<void> {
    if (this.flushing || this.pending.size === 0) return this.flushing ?? Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    const entries = batch.entries();
    const writer = async () => {
      for (let next = entries.next(); !next.done; next = entries.next()) {
        const [key, held] = next.value;
        await this.writeOne(key, held);
      }
    };
    const limit = Math.min(this.options.writeConcurrency ?? 64, batch.size);
    this.flushing = Promise.all(Array.from({ length: limit }, writer))
      .then(() => undefined)
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
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
    const empty = status.values === 0 || !(await hasKeys(this.kv, filter));
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

  private async writeOne(key: string, held: Pending): Promise<void> {
    const { metrics, log } = this.options;
    this.writing.set(key, held.at);
    try {
      const stored = await this.write(key, held.at);
      this.failure = undefined;
      metrics.bucketWrites.labels(stored ? 'written' : 'skipped').inc();
    } catch (error) {
      this.failure = error instanceof Error ? error : new Error(String(error));
      metrics.bucketWrites.labels('failed').inc();
      if (held.attempts + 1 < MAX_WRITE_ATTEMPTS) this.hold(key, held.at, held.attempts + 1);
      else
        log.warn(
          { key, err: this.failure.message, attempts: held.attempts + 1 },
          'could not store activity after several flushes; dropping it (the session may be hibernated early if it reports nothing more)',
        );
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
