import type { KV, KvEntry } from '@nats-io/kv';
import { backoffDelay, hasKeys, type Logger, type Readiness, sleep } from '@streamspace/shared';
import {
  chunkKey,
  chunkWriter,
  decodeEntry,
  fitsInChunk,
  packChunks,
  splitSessionKey,
} from './activity-chunks.js';
import type { ReaperMetrics } from './reaper-metrics.js';

interface Pending {
  at: number;
  /** Failed writes of this time so far. */
  attempts: number;
}

/** A failed write is tried again at the next flushes, this many times, then dropped (logged, counted). */
const MAX_WRITE_ATTEMPTS = 5;

/** Chunk writes in flight at once during a flush: a flush is a few hundred small writes. */
const DEFAULT_WRITE_CONCURRENCY = 4;

const READINESS = 'activity-bucket';

/**
 * The latest time the bucket holds for one Session, over every entry of its namespace (every
 * replica's, and the former one-per-Session entry): what a restarted reaper would start from.
 * Reads the whole namespace: for tests and tools, not for the reaper's own path.
 */
export async function readStoredActivity(
  kv: {
    keys(filter: string): Promise<AsyncIterable<string>>;
    get(key: string): Promise<Pick<KvEntry, 'operation' | 'value'> | null>;
  },
  key: string,
): Promise<number | undefined> {
  const [namespace] = splitSessionKey(key);
  let latest: number | undefined;
  for await (const entryKey of await kv.keys(`${namespace}.>`)) {
    const entry = await kv.get(entryKey);
    if (entry?.operation !== 'PUT') continue;
    for (const [k, at] of decodeEntry(entryKey, entry.value))
      if (k === key && (latest === undefined || at > latest)) latest = at;
  }
  return latest;
}

/**
 * The latest activity per Session, kept in the JetStream KV bucket so every replica and every
 * restart sees it, and mirrored in memory through a watch of the bucket.
 *
 * Reports are held in memory (the latest time per session) and flushed to the bucket every
 * `flushIntervalMs`. The bucket holds, per replica, its Sessions' times packed many to an entry
 * (activity-chunks.ts): a flush rewrites this replica's entries of each namespace that had
 * reports, a few hundred small writes at 10,000 Sessions instead of one write per Session, and
 * the watch skips this replica's own entries without decoding them. What a crash loses is at most
 * one flush interval of reports; the restart grace (see session-deadlines.ts, `idleNotBefore`)
 * keeps that from hibernating anyone. Times only move forward: readers keep, per Session, the
 * latest time of every entry they have seen, so no entry read late moves one back. Entries
 * expire `ttl` after their last write (the bucket's max age): a replica rewrites its own at each
 * flush with reports, and those of a replica that died go on their own.
 */
export class ActivityStore {
  /** The latest stored activity per Session (this replica's writes and every other entry seen). */
  private readonly known = new Map<string, number>();
  /** Reports held since the last flush: the latest time per key. */
  private pending = new Map<string, Pending>();
  /** The times being written right now. */
  private readonly writing = new Map<string, number>();
  /** The Sessions this replica stores the activity of, by namespace. */
  private readonly own = new Map<string, Set<string>>();
  /** Chunks this replica last wrote per namespace (the surplus is deleted when a namespace shrinks). */
  private readonly chunksWritten = new Map<string, number>();
  /** Namespaces whose entries a write failed for: rewritten at the next flush, reports or not. */
  private readonly dirty = new Set<string>();
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
      /** This replica's name in its entries' keys (a KV key token: letters, digits, `-`). */
      writer: string;
      /** Key filters for the bucket watch (`<namespace>.>` per namespace), `>` for all. */
      keyFilter: string | string[];
      /** Told whenever a key's activity moves forward (own writes and other replicas' alike). */
      onChange(key: string, at: number): void;
      /** Reports are written to the bucket this often, the latest per session (default 10 s). */
      flushIntervalMs?: number;
      /** Bucket writes in flight at once during a flush (default 4). */
      writeConcurrency?: number;
      /** The largest value the bucket takes (its max value size), in bytes. */
      maxValueBytes: number;
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

  /** Drops what memory holds for a key (its Session is gone); this replica stores it no more. */
  forget(key: string): void {
    this.disown(key);
    if (this.pending.has(key) || this.writing.has(key)) return;
    this.known.delete(key);
  }

  /**
   * This replica stores the key's activity no more (its Session went to another replica, which
   * stores it from now on); what it knows of it stays, should the Session come back.
   */
  disown(key: string): void {
    const [namespace] = splitSessionKey(key);
    this.own.get(namespace)?.delete(key);
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
    let latest = this.known.get(key);
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
   * Writes this replica's entries of every namespace with held reports (each holding the latest
   * time of every Session this replica stores there), with a few writers. One flush at a time:
   * what arrives meanwhile waits for the next.
   */
  flush(): Promise<void> {
    if (this.flushing || (this.pending.size === 0 && this.dirty.size === 0))
      return this.flushing ?? Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    const namespaces = new Set<string>(this.dirty);
    this.dirty.clear();
    for (const [key, held] of batch) {
      const [namespace] = splitSessionKey(key);
      namespaces.add(namespace);
      let own = this.own.get(namespace);
      if (!own) {
        own = new Set();
        this.own.set(namespace, own);
      }
      own.add(key);
      this.writing.set(key, held.at);
    }
    this.flushing = (async () => {
      try {
        for (const namespace of namespaces) await this.writeNamespace(namespace, batch);
      } finally {
        for (const key of batch.keys()) this.writing.delete(key);
        this.flushing = undefined;
      }
    })();
    return this.flushing;
  }

  /** Rewrites this replica's entries of one namespace; the held reports of a failed entry are held again. */
  private async writeNamespace(namespace: string, batch: Map<string, Pending>): Promise<void> {
    const { metrics, log, writer, maxValueBytes } = this.options;
    const own = this.own.get(namespace) ?? new Set<string>();
    const times: [name: string, at: number][] = [];
    const keys: string[] = [];
    for (const key of own) {
      const at = this.latestKnownOrPending(key);
      if (at === undefined) continue;
      const name = splitSessionKey(key)[1];
      if (!fitsInChunk(name, maxValueBytes)) {
        own.delete(key);
        batch.delete(key);
        metrics.bucketWrites.labels('failed').inc();
        log.warn(
          { key, maxValueBytes },
          "a Session name too long for the activity bucket's value size: its activity is kept in memory only",
        );
        continue;
      }
      times.push([name, at]);
      keys.push(key);
    }
    const chunks = packChunks(times, maxValueBytes);
    const firsts: number[] = [];
    let first = 0;
    for (const chunk of chunks) {
      firsts.push(first);
      first += chunk.count;
    }
    let next = 0;
    const writeChunks = async () => {
      for (let i = next++; i < chunks.length; i = next++) {
        const { value, count } = chunks[i] as { value: string; count: number };
        const from = firsts[i] as number;
        try {
          await this.kv.put(chunkKey(namespace, writer, i), value);
          this.failure = undefined;
          metrics.bucketWrites.labels('written').inc();
          for (let k = from; k < from + count; k++)
            this.stored(keys[k] as string, (times[k] as [string, number])[1]);
        } catch (error) {
          this.failure = error instanceof Error ? error : new Error(String(error));
          metrics.bucketWrites.labels('failed').inc();
          // The chunks are packed anew at each flush: rewrite them all next time, reports or not.
          this.dirty.add(namespace);
          for (let k = from; k < from + count; k++) this.writeFailed(keys[k] as string, batch);
        }
      }
    };
    const limit = Math.min(this.options.writeConcurrency ?? DEFAULT_WRITE_CONCURRENCY, chunks.length);
    await Promise.all(Array.from({ length: limit }, writeChunks));
    // Entries beyond the new count (Sessions gone) would expire on their own; delete them now.
    const before = this.chunksWritten.get(namespace) ?? 0;
    this.chunksWritten.set(namespace, chunks.length);
    for (let i = chunks.length; i < before; i++)
      await this.kv.delete(chunkKey(namespace, writer, i)).catch(() => undefined);
  }

  private stored(key: string, at: number): void {
    const before = this.known.get(key);
    if (before !== undefined && before >= at) return;
    this.known.set(key, at);
    this.options.onChange(key, at);
  }

  private writeFailed(key: string, batch: Map<string, Pending>): void {
    const held = batch.get(key);
    if (!held) return;
    if (held.attempts + 1 < MAX_WRITE_ATTEMPTS) this.hold(key, held.at, held.attempts + 1);
    else
      this.options.log.warn(
        { key, err: this.failure?.message, attempts: held.attempts + 1 },
        'could not store activity after several flushes; dropping it (the session may be hibernated early if it reports nothing more)',
      );
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
        this.learn(entry);
        if (!caughtUp && (entry.isUpdate || entry.delta === 0)) catchUp();
      }
    } finally {
      clearTimeout(fallback);
      signal.removeEventListener('abort', stop);
    }
  }

  /**
   * Takes the times an entry of the bucket holds (the watch's part), keeping the later one per
   * Session: activity never moves back.
   */
  learn(entry: Pick<KvEntry, 'key' | 'operation' | 'value'>): void {
    // A deleted entry takes nothing back; this replica's own entries hold what it already knows.
    if (entry.operation !== 'PUT' || chunkWriter(entry.key) === this.options.writer) return;
    for (const [raw, at] of decodeEntry(entry.key, entry.value)) {
      const key = this.options.canonicalKey?.(raw) ?? raw;
      const before = this.known.get(key);
      if (before !== undefined && before >= at) continue;
      this.known.set(key, at);
      this.options.onChange(key, at);
    }
  }
}
