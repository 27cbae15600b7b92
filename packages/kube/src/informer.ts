import { type BackoffOptions, backoffDelay, sleep } from '@streamspace/shared';
import { errorText, isGone, KubeApiError, statusError } from './kube-error.js';
import {
  forgetParsed,
  type KubeObject,
  type ObjectTransform,
  objectKeyOf,
  parseKubeObject,
} from './kube-object.js';
import { type CacheChange, type CachedIdentity, type CacheRetention, ObjectCache } from './object-cache.js';
import type { Slots } from './slots.js';

/** What a list page says beyond its items, which `WatchTransport.list` hands on one by one. */
export interface ListPage {
  /** The snapshot's resourceVersion: the watch starts from here. */
  resourceVersion: string;
  /** Set when more pages follow. */
  continueToken?: string;
}

export interface WatchHandle {
  abort(): void;
}

/** How one kind is listed and watched; the real one talks to the API server, tests fake it. */
export interface WatchTransport {
  /**
   * One page of a consistent list (see Informer.relist for why never resourceVersion=0), each item
   * handed to `onItem` as it arrives, parsed, and let go (list-items.ts: a page is never held
   * whole). A page cut off and read again may hand its first items on twice.
   */
  list(options: { limit: number; continueToken?: string }, onItem: (item: unknown) => void): Promise<ListPage>;
  /**
   * Starts a watch from `resourceVersion`. `onEvent` gets each event as sent; `onDone` is called
   * once when the watch ends, with the error if it failed (a KubeApiError: 410 means relist);
   * `onAnswered` once the API server has answered the request (its response headers came), which
   * it does as soon as the watch is running, before any event. Resolves once the request is
   * under way, which says nothing of whether it was sent: it may wait for a socket.
   */
  watch(
    resourceVersion: string,
    timeoutSeconds: number,
    onEvent: (type: string, object: unknown) => void,
    onDone: (error: unknown) => void,
    onAnswered: () => void,
  ): Promise<WatchHandle>;
}

/** Where a list stands after a page: the snapshot it reads at, and the page to read next, if any. */
interface ListedPage {
  resourceVersion: string;
  continueToken?: string;
}

/** Why a watch was started again (the watcher counts them in streamspace_watcher_watch_restarts_total). */
export type RestartReason = 'gone' | 'error' | 'closed' | 'watchdog';
export const RESTART_REASONS: readonly RestartReason[] = ['gone', 'error', 'closed', 'watchdog'];

export interface InformerOptions<C extends CachedIdentity = KubeObject> {
  /** Plural name for messages, e.g. "sessions". */
  resource: string;
  transport: WatchTransport;
  pageSize?: number;
  /**
   * Shared by informers whose list pages should go a few at a time (the watcher's: one per kind
   * and namespace): at its start (or after an API-server restart) every watch lists, and a page's
   * changes are held until they are taken in (afterPage). Absent, each lists when it needs to.
   */
  listSlots?: Slots;
  /**
   * Awaited after a list page's changes were handed on, before the next page is asked for: the
   * consumer's chance to take them in first (the watcher writes them to the shared state), so a
   * list does not outrun it and queue a whole cluster's objects.
   */
  afterPage?(): Promise<void>;
  /**
   * The shortest server-side timeout asked for a watch; each asks for a random one from this to
   * twice this (watchTimeoutFor), and the API server closes it then and we start another.
   */
  watchTimeoutSeconds: number;
  /** A watch that delivers nothing (not even a bookmark) for this long is presumed stuck and restarted. */
  silenceTimeoutMs: number;
  /**
   * A watch the API server has not answered this long after it was asked for makes the informer
   * down (not ready) until it is answered (default 90 s). The first watch after a list, and the
   * one after a failure, are down until answered anyway; this bounds the routine restart of a
   * healthy watch, which stays up meanwhile so that readiness does not blink every few minutes.
   * Longer than the API server's bookmark interval (about a minute): a proxy that holds response
   * headers until the first body byte (Go's ReverseProxy does, and Node's http server; the
   * integration tests' proxy did) delays the answer to the first bookmark, which must not be
   * taken for a watch never answered.
   */
  answerTimeoutMs?: number;
  /** A watch that lasted this long (or delivered anything) was healthy: retries start from the shortest delay again. */
  healthyAfterMs?: number;
  backoff?: BackoffOptions;
  /** What is kept of each object (drop what nobody reads); only managedFields are dropped without it. */
  transform?: ObjectTransform;
  /** What the cache keeps of each object (default: the whole object, as JSON). */
  retention?: CacheRetention<C>;
  /**
   * Every this many ms, hand every cached object to `onResync` (client-go's resync: a level-
   * triggered consumer gets to repair what it missed, without asking the API server anything).
   * 0 or absent: never.
   */
  resyncMs?: number;
  onResync?(objects: C[]): void;
  onChanges(changes: CacheChange<C>[]): void;
  onMalformed(raw: unknown, reason: string): void;
  /**
   * Up: listed, and the API server answered the watch. Down: the watch failed and is being
   * restarted, a list failed, or a watch has gone unanswered past answerTimeoutMs. Before the
   * first answered watch the informer is down without being told (the caller starts it so).
   */
  onState(up: boolean, reason: string): void;
  onRestart(reason: RestartReason, detail: string, delayMs: number): void;
}

type Outcome =
  | { type: 'stopped' }
  | { type: 'closed' }
  | { type: 'gone'; detail: string }
  | { type: 'error'; detail: string; error?: unknown }
  | { type: 'watchdog'; detail: string };

const DEFAULT_ANSWER_TIMEOUT_MS = 90_000;
/** A list's changes are handed on every this many changed items (see readPage). */
const REPORT_EVERY_ITEMS = 50;

/**
 * The timeout one watch asks for: from `minSeconds` to just under twice that, at random, as
 * client-go's reflector does. With one timeout for all, every watch a process started together
 * ended together: the watcher's 80 (8 kinds x 10 namespaces) every 5 minutes, and those whose
 * resourceVersion had been compacted relisted their namespace at once, the watcher's resident
 * memory peaking at each round (the 10,000-Session run of issue 13).
 */
export function watchTimeoutFor(minSeconds: number, random: () => number = Math.random): number {
  return Math.floor(minSeconds * (1 + Math.min(Math.max(random(), 0), 0.999_999)));
}

/** Backoff, stretched to what the server asked for when it said how long to wait (a 429's Retry-After). */
function delayAfter(error: unknown, attempt: number, backoff?: BackoffOptions): number {
  const delay = backoffDelay(attempt, backoff);
  const asked =
    error instanceof KubeApiError && error.retryAfterSeconds !== undefined
      ? error.retryAfterSeconds * 1000
      : 0;
  return Math.max(delay, Math.min(asked, 60_000));
}

/**
 * THE informer: list + watch of one kind that does not give up. It keeps a uid-aware cache of
 * what exists and reports every change; on 410 Gone it relists (reporting what changed meanwhile,
 * deletions included); on any other error, or when the watch ends, it starts again with backoff;
 * a watchdog restarts a watch that has gone silent (bookmarks keep a healthy one talking). The
 * client library's informer stops for good on the first non-410 error, which is why this exists.
 */
export class Informer<C extends CachedIdentity = KubeObject> {
  readonly cache: ObjectCache<C>;
  private resourceVersion = '';
  private up = false;
  private listedOnce = false;
  private requested = false;
  private answered = false;

  constructor(private readonly options: InformerOptions<C>) {
    this.cache = new ObjectCache<C>(options.retention);
  }

  /** Whether the first full list has completed: until then the cache is not the cluster. */
  get synced(): boolean {
    return this.listedOnce;
  }

  /** Listed and watching (the API server answered the watch): what readiness should report. */
  get ready(): boolean {
    return this.listedOnce && this.up;
  }

  /** A watch has been asked for and has not ended (answered or not). */
  get watchRequested(): boolean {
    return this.requested;
  }

  /**
   * The API server answered the current watch. Requested but not answered is a watch that may
   * never have been sent: a request queued behind a connection cap looked just like a running
   * watch, and its changes went unseen with readiness green (issue 13, BENCHMARKS.md D1-D5).
   */
  get watchAnswered(): boolean {
    return this.answered;
  }

  objects(): IterableIterator<C> {
    return this.cache.values();
  }

  /** Runs until `signal` aborts. Never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    const resync = this.startResync(signal);
    try {
      await this.loop(signal);
    } finally {
      if (resync) clearInterval(resync);
    }
  }

  private startResync(signal: AbortSignal): NodeJS.Timeout | undefined {
    const { resyncMs, onResync } = this.options;
    if (!resyncMs || !onResync) return undefined;
    return setInterval(() => {
      if (!signal.aborted && this.listedOnce) onResync([...this.cache.values()]);
    }, resyncMs);
  }

  private async loop(signal: AbortSignal): Promise<void> {
    const { resource } = this.options;
    // A watch the server ends on schedule is healthy even when the schedule is short (tests).
    const healthyAfterMs =
      this.options.healthyAfterMs ?? Math.min(10_000, (this.options.watchTimeoutSeconds * 1000) / 2);
    let attempt = 0;
    while (!signal.aborted) {
      if (!this.resourceVersion) {
        try {
          await this.relist(signal);
        } catch (error) {
          if (signal.aborted) break;
          const delay = delayAfter(error, attempt++, this.options.backoff);
          this.setState(false, `cannot list ${resource}: ${errorText(error)}`);
          this.options.onRestart(isGone(error) ? 'gone' : 'error', `list failed: ${errorText(error)}`, delay);
          await sleep(delay, signal);
          continue;
        }
        if (signal.aborted) break;
        // Up only once the watch that follows is answered (watchOnce).
      }
      const startedAt = Date.now();
      const { outcome, delivered } = await this.watchOnce(signal);
      if (outcome.type === 'stopped') break;
      const healthy = delivered || Date.now() - startedAt >= healthyAfterMs;
      if (healthy) attempt = 0;
      const routine = (outcome.type === 'closed' || outcome.type === 'gone') && healthy;
      const delay = routine
        ? 0
        : delayAfter('error' in outcome ? outcome.error : undefined, attempt++, this.options.backoff);
      switch (outcome.type) {
        case 'closed':
          this.options.onRestart('closed', 'the watch ended', delay);
          break;
        case 'gone':
          // The resourceVersion is too old (etcd compacted it): only a new list can catch up.
          this.resourceVersion = '';
          this.setState(false, `relisting ${resource}: ${outcome.detail}`);
          this.options.onRestart('gone', outcome.detail, delay);
          break;
        case 'error':
        case 'watchdog':
          this.setState(false, `watch of ${resource} is down: ${outcome.detail}`);
          this.options.onRestart(outcome.type, outcome.detail, delay);
          break;
      }
      if (delay > 0) await sleep(delay, signal);
    }
  }

  private setState(up: boolean, reason: string): void {
    if (up === this.up && up) return;
    this.up = up;
    this.options.onState(up, reason);
  }

  private parse(raw: unknown): KubeObject | undefined {
    const parsed = parseKubeObject(raw, this.options.transform);
    if (parsed.ok) return parsed.object;
    this.options.onMalformed(raw, parsed.reason);
    return undefined;
  }

  /**
   * Every list, the first and a relist after 410 alike, is a consistent read in pages (no
   * resourceVersion). Since Kubernetes 1.31 (ConsistentListFromCache) the API server answers it
   * from its watch cache once the cache has caught up with etcd's current revision, pages
   * included — measured on 1.36: apiserver_cache_list_total +1 per page, no etcd range read. The
   * alternative, resourceVersion=0 ("any version the cache has"), was measured there too and
   * rejected: it ignores `limit` (all 10,000 Sessions in one response, a memory spike the 100 MB
   * budget cannot take) and may be older than what this informer already reported, which after
   * a 410 would report live objects deleted, or resurrect deleted ones (client-go's reflector
   * avoids it after a 410 for the same reason). A continued page carries only its token.
   */
  private async relist(signal: AbortSignal): Promise<void> {
    const listed = new Set<string>();
    let next: ListedPage = { resourceVersion: '' };
    do next = await this.listPage(next, listed);
    while (next.continueToken && !signal.aborted);
    if (signal.aborted) return;
    const { resourceVersion } = next;
    if (!resourceVersion) throw new Error(`the list of ${this.options.resource} carried no resourceVersion`);
    // What the list did not return was deleted while nobody watched.
    this.report(this.cache.removeUnlisted(listed), []);
    this.resourceVersion = resourceVersion;
    this.listedOnce = true;
  }

  /**
   * One page of a list, from the page `after`, its objects' keys added to `listed`. A function of
   * its own so that nothing of the page outlives it: an async function keeps its locals (a `const`
   * of a loop's body too) in its suspended frame across every later await, so when relist read
   * the pages itself, each list waiting for its next slot still held its last page — the API
   * server's objects parsed, ~500 of them — and its changes. At 10,000 Sessions in 10 namespaces
   * (two pages a list) the lists queued for the watcher's two slots each held a page, and the
   * watcher ran out of heap (144 MB) seconds after its start (BENCHMARKS.md, W8–W13).
   */
  private async listPage(after: ListedPage, listed: Set<string>): Promise<ListedPage> {
    // A slot (listSlots) is held from the request until the page's changes are handed on and
    // taken in (afterPage): what a list holds at a time is a page, whoever shares the slots.
    const release = await this.options.listSlots?.take();
    try {
      const { next, changed } = await this.readPage(after, listed);
      if (changed) await this.options.afterPage?.();
      return next;
    } finally {
      release?.();
    }
  }

  /**
   * Reads a page and hands its changes on. Its own function, returning only the next page's token
   * and whether anything changed, for the reason listPage is: nothing of the page may stay in
   * listPage's suspended frame while it awaits afterPage, the shared state's writes of the page,
   * for each of the slots (BENCHMARKS.md, X1–X6). Each item is parsed, trimmed and cached as it
   * arrives, so the API server's objects as JSON.parse made them (~4–5 MiB for 500 Pods or
   * Deployments, managedFields and all) are never held together; the page's changes, trimmed,
   * live on in the consumer's writes.
   */
  private async readPage(
    after: ListedPage,
    listed: Set<string>,
  ): Promise<{ next: ListedPage; changed: boolean }> {
    // Each page's changes are reported as it comes, and the page let go: holding a whole list's
    // changed objects parsed until its end took the watcher's start at 10,000 Sessions (every
    // object a change, 80 lists at once) far over its memory budget (BENCHMARKS.md, W1-W4).
    // What the pages report is the list's snapshot, in order, as a watch would have.
    let changes: CacheChange<C>[] = [];
    let objects: KubeObject[] = [];
    let changed = false;
    // Reported every few items, not once a page: until reported, each changed object is held
    // with its parsed form and its trimmed JSON, ~1-1.5 MiB for 500 Pods in each list slot,
    // which a watcher restarted against 10,000 Sessions could not spare (BENCHMARKS.md, U1–U12).
    const reportHeld = () => {
      const held = { changes, objects };
      changes = [];
      objects = [];
      this.report(held.changes, held.objects);
    };
    let page: ListPage;
    try {
      page = await this.options.transport.list(
        {
          limit: this.options.pageSize ?? 500,
          ...(after.continueToken ? { continueToken: after.continueToken } : {}),
        },
        (raw) => {
          const object = this.parse(raw);
          if (!object) return;
          listed.add(objectKeyOf(object));
          // An item handed on again (its page was cut off and read again) is held by now: no change.
          // (One cache read an item: a watcher's child entry is unpacked on each read.)
          const upserted = this.cache.upsert(object);
          if (upserted.length === 0) return;
          objects.push(object);
          changed = true;
          changes.push(...upserted);
          if (objects.length >= REPORT_EVERY_ITEMS) reportHeld();
        },
      );
    } finally {
      // A page that failed half-way has cached what it brought: reported, or it would never be.
      reportHeld();
    }
    return {
      next: {
        // Every page of one list is read at the first page's snapshot.
        resourceVersion: after.resourceVersion || page.resourceVersion,
        ...(page.continueToken ? { continueToken: page.continueToken } : {}),
      },
      changed,
    };
  }

  /** Hands changes on, then lets go of the parsed form of their objects: the cache keeps JSON only. */
  private report(changes: CacheChange<C>[], objects: KubeObject[]): void {
    try {
      if (changes.length > 0) this.options.onChanges(changes);
    } finally {
      for (const object of objects) forgetParsed(object);
    }
  }

  private watchOnce(signal: AbortSignal): Promise<{ outcome: Outcome; delivered: boolean }> {
    const { transport, silenceTimeoutMs, watchTimeoutSeconds, resource } = this.options;
    const answerTimeoutMs = this.options.answerTimeoutMs ?? DEFAULT_ANSWER_TIMEOUT_MS;
    return new Promise((resolve) => {
      let settled = false;
      let delivered = false;
      let handle: WatchHandle | undefined;
      let lastActivity = Date.now();
      let unanswered: NodeJS.Timeout | undefined;
      let watchdog: NodeJS.Timeout | undefined;
      const finish = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        this.requested = false;
        this.answered = false;
        clearTimeout(watchdog);
        clearTimeout(unanswered);
        signal.removeEventListener('abort', onAbort);
        handle?.abort();
        resolve({ outcome, delivered });
      };
      const onAbort = () => finish({ type: 'stopped' });
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) return finish({ type: 'stopped' });
      const requestedAt = Date.now();
      this.requested = true;
      this.answered = false;
      // Response headers, or failing those any event but an error: the server is serving the watch.
      const onAnswered = () => {
        if (settled || this.answered) return;
        this.answered = true;
        clearTimeout(unanswered);
        this.setState(true, 'ok');
      };
      unanswered = setTimeout(() => {
        if (settled || this.answered) return;
        const waited = Math.round((Date.now() - requestedAt) / 1000);
        this.setState(false, `the API server has not answered the watch of ${resource} for ${waited}s`);
      }, answerTimeoutMs);
      // One timer, due when the watch would have been silent too long, and moved on to the new
      // due time when something came meanwhile. A check every second woke an idle watcher once a
      // second for each of its watches (80 of them at 8 kinds x 10 namespaces).
      const checkSilence = () => {
        if (settled) return;
        const silentFor = Date.now() - lastActivity;
        if (silentFor > silenceTimeoutMs)
          finish({ type: 'watchdog', detail: `no event or bookmark for ${Math.round(silentFor / 1000)}s` });
        else watchdog = setTimeout(checkSilence, silenceTimeoutMs - silentFor + 1);
      };
      watchdog = setTimeout(checkSilence, silenceTimeoutMs + 1);
      const onEvent = (type: string, raw: unknown) => {
        if (settled) return;
        lastActivity = Date.now();
        // An error event proves the connection works, not that the watch does: it keeps the backoff growing.
        if (type !== 'ERROR') {
          delivered = true;
          onAnswered();
        }
        this.handleEvent(type, raw, onDone);
      };
      const onDone = (error: unknown) => {
        if (!error) finish({ type: 'closed' });
        else if (isGone(error)) finish({ type: 'gone', detail: `410 Gone: ${errorText(error)}` });
        else finish({ type: 'error', detail: errorText(error), error });
      };
      transport
        .watch(this.resourceVersion, watchTimeoutFor(watchTimeoutSeconds), onEvent, onDone, onAnswered)
        .then(
          (h) => {
            handle = h;
            if (settled) h.abort();
          },
          (error) => finish({ type: 'error', detail: errorText(error), error }),
        );
    });
  }

  /** `fail` ends the watch as a failed request would (an ERROR event is one, said in the stream). */
  private handleEvent(type: string, raw: unknown, fail: (error: unknown) => void): void {
    switch (type) {
      case 'ADDED':
      case 'MODIFIED':
      case 'DELETED': {
        const object = this.parse(raw);
        if (!object) return;
        this.resourceVersion = object.resourceVersion;
        const changes = type === 'DELETED' ? this.cache.remove(object) : this.cache.upsert(object);
        try {
          if (changes.length > 0) this.options.onChanges(changes);
        } finally {
          forgetParsed(object);
        }
        return;
      }
      case 'BOOKMARK': {
        const rv = (raw as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
        if (typeof rv === 'string' && rv) this.resourceVersion = rv;
        return;
      }
      case 'ERROR':
        // One way to tell a 410 (isGone), whether the server refused the watch or ended it so.
        fail(statusError(raw, 'watch error event'));
        return;
      default:
        this.options.onMalformed(raw, `unknown watch event type '${type}'`);
    }
  }
}

/**
 * Runs informers together until `signal` aborts: each on a signal of its own, stopped by the one
 * listener this puts on `signal`. An informer listens to its signal while it watches or waits
 * (one listener at a time), so many informers run on one shared signal put one listener each on
 * it: the watcher's 80 watches (8 kinds x 10 namespaces) were 80 on its stop signal, and Node
 * warned of a listener leak (MaxListenersExceededWarning at the 11th) where there was none.
 */
export function runInformers(
  informers: Iterable<{ run(signal: AbortSignal): Promise<void> }>,
  signal: AbortSignal,
): Promise<void>[] {
  const stops: AbortController[] = [];
  const runs: Promise<void>[] = [];
  for (const informer of informers) {
    const stop = new AbortController();
    stops.push(stop);
    runs.push(informer.run(stop.signal));
  }
  const stopAll = () => {
    for (const stop of stops) stop.abort();
  };
  if (signal.aborted) stopAll();
  else signal.addEventListener('abort', stopAll, { once: true });
  // Once every run has ended (none does before the abort), the listener goes with them.
  void Promise.all(runs).then(() => signal.removeEventListener('abort', stopAll));
  return runs;
}
