import type { KV, KvEntry } from '@nats-io/kv';
import { backoffDelay, hasKeys, type Logger, type Readiness, sleep } from '@streamspace/shared';
import {
  CHUNK_OVERHEAD,
  chunkItemBytes,
  chunkKey,
  chunkWriter,
  decodeEntry,
  encodeChunk,
  fitsInChunk,
  splitSessionKey,
} from './activity-chunks.js';
import type { ReaperMetrics } from './reaper-metrics.js';

/** A failed write is tried again at the next flushes, this many times, then dropped (logged, counted). */
const MAX_WRITE_ATTEMPTS = 5;

/** Chunk writes in flight at once during a flush: a flush is a few hundred small writes. */
const DEFAULT_WRITE_CONCURRENCY = 4;

const READINESS = 'activity-bucket';

/** One namespace's entries of this replica, by index (the last token of the entry's key). */
interface NamespaceEntries {
  /** The Sessions each entry holds. */
  sessions: Set<string>[];
  /** The bytes their items take (chunkItemBytes), to keep each entry within the value size. */
  bytes: number[];
  /** Entries to write at the next flush (a Session in them reported, left, or a write failed). */
  dirty: Set<number>;
  /** Entries written (and not deleted) since this process started. */
  stored: Set<number>;
}

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
 * (activity-chunks.ts): a flush rewrites this replica's entries that hold a Session with new
 * reports, a few hundred small writes at 10,000 Sessions instead of one write per Session, and
 * the watch skips this replica's own entries without decoding them. A Session keeps its entry
 * (see `place`), so a crash in the middle of a flush leaves each Session's stored time as it was
 * or as written. What a crash loses is at most one flush interval of reports; the restart grace
 * (see session-deadlines.ts, `idleNotBefore`) keeps that from hibernating anyone. Times only
 * move forward: readers keep, per Session, the latest time of every entry they have seen, so no
 * entry read late moves one back. Entries expire `ttl` after their last write (the bucket's max
 * age): a replica rewrites an entry whenever one of its Sessions reports, and those of a replica
 * that died go on their own.
 */
export class ActivityStore {
  /** The latest stored activity per Session (this replica's writes and every other entry seen). */
  private readonly known = new Map<string, number>();
  /** Reports held since the last flush: the latest time per key. */
  private pending = new Map<string, number>();
  /**
   * The times being written right now: the flush's batch itself (what `pending` held when the
   * flush began), not a copy of it — a copy of every held time at every flush.
   */
  private writing = new Map<string, number>();
  /**
   * Failed writes so far of the keys held again after a failed write; none for a key whose
   * latest report is newer than the last failure. A count per such key, not an object per held
   * report: all but a few keys never fail.
   */
  private readonly failedWrites = new Map<string, number>();
  /** This replica's entries per namespace: which Sessions each holds (see `place`). */
  private readonly layouts = new Map<string, NamespaceEntries>();
  /** The entry (its index in the namespace) each Session this replica stores is in. */
  private readonly entryOf = new Map<string, number>();
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
    for (const [key, at] of this.pending) yield [key, at];
    for (const [key, at] of this.writing) if (!this.pending.has(key)) yield [key, at];
  }

  /** Drops what memory holds for a key (its Session is gone); this replica stores it no more. */
  forget(key: string): void {
    this.disown(key);
    this.failedWrites.delete(key);
    if (this.pending.has(key) || this.writing.has(key)) return;
    this.known.delete(key);
  }

  /**
   * This replica stores the key's activity no more (its Session went to another replica, which
   * stores it from now on; or it is gone): its entry is rewritten without it at the next flush.
   * What this replica knows of it stays, should the Session come back.
   */
  disown(key: string): void {
    const index = this.entryOf.get(key);
    if (index === undefined) return;
    const [namespace, name] = splitSessionKey(key);
    const layout = this.layouts.get(namespace);
    this.entryOf.delete(key);
    if (!layout) return;
    layout.sessions[index]?.delete(key);
    layout.bytes[index] = (layout.bytes[index] ?? 0) - chunkItemBytes(name);
    layout.dirty.add(index);
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
    this.hold(key, at);
    // A new report: its write gets every attempt again.
    this.failedWrites.delete(key);
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
    const held = this.pending.get(key);
    if (held !== undefined && (latest === undefined || held > latest)) latest = held;
    const writing = this.writing.get(key);
    if (writing !== undefined && (latest === undefined || writing > latest)) latest = writing;
    return latest;
  }

  private hold(key: string, at: number): void {
    const pending = this.pending.get(key);
    if (pending === undefined || at > pending) this.pending.set(key, at);
  }


  /**
   * Writes this replica's entries that hold a Session with held reports (each entry with the
   * latest time of every Session in it), with a few writers. One flush at a time: what arrives
   * meanwhile waits for the next.
   */
  flush(): Promise<void> {
    if (this.flushing || (this.pending.size === 0 && !this.anyDirty()))
      return this.flushing ?? Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    this.writing = batch;
    for (const key of batch.keys()) this.place(key, batch);
    this.flushing = (async () => {
      try {
        for (const [namespace, layout] of this.layouts)
          if (layout.dirty.size > 0) await this.writeEntries(namespace, layout, batch);
      } finally {
        this.writing = new Map();
        this.flushing = undefined;
      }
    })();
    return this.flushing;
  }

  private anyDirty(): boolean {
    for (const layout of this.layouts.values()) if (layout.dirty.size > 0) return true;
    return false;
  }

  /**
   * Marks the entry of a Session to be written, giving it one first if it has none: the last
   * entry of its namespace while there is room, else a new one. A Session stays in its entry
   * until this replica stores it no more, so every write of an entry holds the same Sessions (or
   * more): a crash in the middle of a flush leaves each Session's stored time as it was or as
   * written, never lost between two entries.
   */
  private place(key: string, batch: Map<string, number>): void {
    const [namespace, name] = splitSessionKey(key);
    let layout = this.layouts.get(namespace);
    if (!layout) {
      layout = { sessions: [], bytes: [], dirty: new Set(), stored: new Set() };
      this.layouts.set(namespace, layout);
    }
    const known = this.entryOf.get(key);
    if (known !== undefined) {
      layout.dirty.add(known);
      return;
    }
    const { maxValueBytes } = this.options;
    if (!fitsInChunk(name, maxValueBytes)) {
      // Known here, never stored: the latest report stays the known time in this replica's memory.
      const at = batch.get(key);
      const before = this.known.get(key);
      if (at !== undefined && (before === undefined || at > before)) this.known.set(key, at);
      batch.delete(key);
      this.options.metrics.bucketWrites.labels('failed').inc();
      this.options.log.warn(
        { key, maxValueBytes },
        "a Session name too long for the activity bucket's value size: its activity is kept in memory only",
      );
      return;
    }
    const item = chunkItemBytes(name);
    let index = layout.sessions.length - 1;
    if (index < 0 || CHUNK_OVERHEAD + (layout.bytes[index] ?? 0) + item > maxValueBytes) {
      index = layout.sessions.length;
      layout.sessions.push(new Set());
      layout.bytes.push(0);
    }
    layout.sessions[index]?.add(key);
    layout.bytes[index] = (layout.bytes[index] ?? 0) + item;
    this.entryOf.set(key, index);
    layout.dirty.add(index);
  }

  /** Writes a namespace's dirty entries; the held reports of an entry whose write failed are held again. */
  private async writeEntries(
    namespace: string,
    layout: NamespaceEntries,
    batch: Map<string, number>,
  ): Promise<void> {
    const { metrics, writer } = this.options;
    const indices = [...layout.dirty];
    layout.dirty.clear();
    let next = 0;
    const writeSome = async () => {
      for (let n = next++; n < indices.length; n = next++) {
        const index = indices[n] as number;
        const sessions = layout.sessions[index] ?? new Set<string>();
        const key = chunkKey(namespace, writer, index);
        const times: [string, number][] = [];
        const keys: string[] = [];
        for (const session of sessions) {
          const at = this.latestKnownOrPending(session);
          if (at === undefined) continue;
          times.push([splitSessionKey(session)[1], at]);
          keys.push(session);
        }
        try {
          if (times.length === 0) {
            // Every Session of the entry went elsewhere or is gone: it need not wait for its TTL.
            if (layout.stored.has(index)) await this.kv.delete(key);
            layout.stored.delete(index);
            continue;
          }
          await this.kv.put(key, encodeChunk(times));
          layout.stored.add(index);
          this.failure = undefined;
          metrics.bucketWrites.labels('written').inc();
          for (const [i, session] of keys.entries()) this.advance(session, (times[i] as [string, number])[1]);
          if (this.failedWrites.size > 0) for (const session of keys) this.failedWrites.delete(session);
        } catch (error) {
          this.failure = error instanceof Error ? error : new Error(String(error));
          metrics.bucketWrites.labels('failed').inc();
          // Written again at the next flush, reports or not.
          layout.dirty.add(index);
          for (const session of keys) this.writeFailed(session, batch);
        }
      }
    };
    const limit = Math.min(this.options.writeConcurrency ?? DEFAULT_WRITE_CONCURRENCY, indices.length);
    await Promise.all(Array.from({ length: limit }, writeSome));
  }

  /** Takes a stored time for a Session, if later than the one known: activity never moves back. */
  private advance(key: string, at: number): void {
    const before = this.known.get(key);
    if (before !== undefined && before >= at) return;
    this.known.set(key, at);
    this.options.onChange(key, at);
  }

  private writeFailed(key: string, batch: Map<string, number>): void {
    const at = batch.get(key);
    if (at === undefined) return;
    // A report that arrived since the flush began is held already, with every attempt ahead of it.
    if (this.pending.has(key)) return;
    const attempts = (this.failedWrites.get(key) ?? 0) + 1;
    if (attempts < MAX_WRITE_ATTEMPTS) {
      this.hold(key, at);
      this.failedWrites.set(key, attempts);
      return;
    }
    this.failedWrites.delete(key);
    this.options.log.warn(
      { key, err: this.failure?.message, attempts },
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
    for (const [raw, at] of decodeEntry(entry.key, entry.value))
      this.advance(this.options.canonicalKey?.(raw) ?? raw, at);
  }
}
