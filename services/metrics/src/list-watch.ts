import { type BackoffOptions, backoffDelay, sleep } from '@streamspace/shared';

/**
 * The current set of one kind of object, kept by list + watch, that never gives up: a 410 Gone
 * (the resourceVersion was compacted) relists; any other error or a watch that ends starts again
 * with backoff; a watch silent for too long is presumed stuck and restarted. The client
 * library's informer stops for good on the first non-410 error, hence this.
 *
 * It keeps parsed values, not whole objects: what the gauges need of 10,000 Sessions is small.
 */

export interface ListPage {
  items: unknown[];
  /** The snapshot's resourceVersion: the watch starts from here. */
  resourceVersion: string;
  continueToken?: string;
}

export interface WatchHandle {
  abort(): void;
}

/** How one kind is listed and watched; the real one talks to the API server, tests fake it. */
export interface ListWatchTransport {
  list(options: { limit: number; continueToken?: string }): Promise<ListPage>;
  /** Starts a watch; `onDone` is called once when it ends, with the error if it failed (410 carries statusCode/code 410). */
  watch(
    resourceVersion: string,
    timeoutSeconds: number,
    onEvent: (type: string, object: unknown) => void,
    onDone: (error: unknown) => void,
  ): Promise<WatchHandle>;
}

export type Parsed<T> = { ok: true; key: string; value: T } | { ok: false; reason: string };

export type RestartReason = 'gone' | 'error' | 'closed' | 'watchdog';
export const RESTART_REASONS: readonly RestartReason[] = ['gone', 'error', 'closed', 'watchdog'];

export interface ListWatchOptions<T> {
  /** Plural name for messages, e.g. "sessions". */
  resource: string;
  transport: ListWatchTransport;
  parse(raw: unknown): Parsed<T>;
  pageSize?: number;
  watchTimeoutSeconds: number;
  silenceTimeoutMs: number;
  backoff?: BackoffOptions;
  /** Up: listed and watching. Down: being relisted or restarted after a failure. */
  onState(up: boolean, reason: string): void;
  onRestart?(reason: RestartReason, detail: string, delayMs: number): void;
  onMalformed?(raw: unknown, reason: string): void;
  /** Called after every change to the set (a list, or one watch event). */
  onChange?(): void;
}

type Outcome = { type: 'stopped' } | { type: 'closed' } | { type: RestartReason; detail: string };

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isGone(error: unknown): boolean {
  const e = error as { statusCode?: unknown; code?: unknown } | null;
  return e?.statusCode === 410 || e?.code === 410;
}

export class ListWatch<T> {
  private items = new Map<string, T>();
  private resourceVersion = '';
  private listedOnce = false;
  private up = false;
  private readonly syncedWaiters: (() => void)[] = [];

  constructor(private readonly options: ListWatchOptions<T>) {}

  /** Whether the first full list has completed (the set is meaningful from then on). */
  get synced(): boolean {
    return this.listedOnce;
  }

  /** Whether the set is current: listed and the watch running. */
  get current(): boolean {
    return this.up;
  }

  values(): T[] {
    return [...this.items.values()];
  }

  /** Resolves once the first list has completed (or when `signal` aborts). */
  whenSynced(signal?: AbortSignal): Promise<void> {
    if (this.listedOnce || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      this.syncedWaiters.push(resolve);
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  /** Runs until `signal` aborts. Never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    const { resource } = this.options;
    let attempt = 0;
    while (!signal.aborted) {
      if (!this.resourceVersion) {
        try {
          await this.relist(signal);
        } catch (error) {
          if (signal.aborted) break;
          const delay = backoffDelay(attempt++, this.options.backoff);
          this.setState(false, `cannot list ${resource}: ${errorText(error)}`);
          this.options.onRestart?.(
            isGone(error) ? 'gone' : 'error',
            `list failed: ${errorText(error)}`,
            delay,
          );
          await sleep(delay, signal);
          continue;
        }
        if (signal.aborted) break;
      }
      const startedAt = Date.now();
      const { outcome, delivered } = await this.watchOnce(signal);
      if (outcome.type === 'stopped') break;
      // A watch that delivered something or lasted a while was healthy: the next failure starts the backoff afresh.
      const healthy =
        delivered ||
        Date.now() - startedAt >= Math.min(10_000, (this.options.watchTimeoutSeconds * 1000) / 2);
      if (healthy) attempt = 0;
      const routine = (outcome.type === 'closed' || outcome.type === 'gone') && healthy;
      const delay = routine ? 0 : backoffDelay(attempt++, this.options.backoff);
      const detail = outcome.type === 'closed' ? 'the watch ended' : outcome.detail;
      if (outcome.type === 'gone') {
        this.resourceVersion = '';
        this.setState(false, `relisting ${resource}: ${detail}`);
      } else if (outcome.type !== 'closed') {
        this.setState(false, `watch of ${resource} is down: ${detail}`);
      }
      this.options.onRestart?.(outcome.type, detail, delay);
      if (delay > 0) await sleep(delay, signal);
    }
  }

  private setState(up: boolean, reason: string): void {
    // Every failure is reported (its reason is news); being up only when it changes.
    if (up && this.up) return;
    this.up = up;
    this.options.onState(up, reason);
  }

  private parse(raw: unknown): Parsed<T> {
    const parsed = this.options.parse(raw);
    if (!parsed.ok) this.options.onMalformed?.(raw, parsed.reason);
    return parsed;
  }

  private async relist(signal: AbortSignal): Promise<void> {
    const items = new Map<string, T>();
    let continueToken: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.options.transport.list({
        limit: this.options.pageSize ?? 500,
        ...(continueToken ? { continueToken } : {}),
      });
      // Every page of one list is read at the first page's snapshot.
      if (!resourceVersion) resourceVersion = page.resourceVersion;
      for (const raw of page.items) {
        const parsed = this.parse(raw);
        if (parsed.ok) items.set(parsed.key, parsed.value);
      }
      continueToken = page.continueToken;
    } while (continueToken && !signal.aborted);
    if (signal.aborted) return;
    if (!resourceVersion) throw new Error(`the list of ${this.options.resource} carried no resourceVersion`);
    this.items = items;
    this.resourceVersion = resourceVersion;
    if (!this.listedOnce) {
      this.listedOnce = true;
      for (const resolve of this.syncedWaiters.splice(0)) resolve();
    }
    this.options.onChange?.();
  }

  private watchOnce(signal: AbortSignal): Promise<{ outcome: Outcome; delivered: boolean }> {
    const { transport, silenceTimeoutMs, watchTimeoutSeconds } = this.options;
    return new Promise((resolve) => {
      let settled = false;
      let delivered = false;
      let handle: WatchHandle | undefined;
      let lastActivity = Date.now();
      const finish = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearInterval(watchdog);
        signal.removeEventListener('abort', onAbort);
        handle?.abort();
        resolve({ outcome, delivered });
      };
      const onAbort = () => finish({ type: 'stopped' });
      signal.addEventListener('abort', onAbort, { once: true });
      const watchdog = setInterval(
        () => {
          const silentFor = Date.now() - lastActivity;
          if (silentFor > silenceTimeoutMs)
            finish({ type: 'watchdog', detail: `no event or bookmark for ${Math.round(silentFor / 1000)}s` });
        },
        Math.max(10, Math.min(1_000, silenceTimeoutMs / 4)),
      );
      if (signal.aborted) return finish({ type: 'stopped' });
      const onEvent = (type: string, raw: unknown) => {
        if (settled) return;
        lastActivity = Date.now();
        if (type !== 'ERROR') delivered = true;
        this.handleEvent(type, raw, finish);
      };
      const onDone = (error: unknown) => {
        if (!error) finish({ type: 'closed' });
        else if (isGone(error)) finish({ type: 'gone', detail: `410 Gone: ${errorText(error)}` });
        else finish({ type: 'error', detail: errorText(error) });
      };
      transport.watch(this.resourceVersion, watchTimeoutSeconds, onEvent, onDone).then(
        (h) => {
          handle = h;
          if (settled) h.abort();
          else this.setState(true, 'ok');
        },
        (error) => finish({ type: 'error', detail: errorText(error) }),
      );
    });
  }

  private handleEvent(type: string, raw: unknown, finish: (outcome: Outcome) => void): void {
    switch (type) {
      case 'ADDED':
      case 'MODIFIED':
      case 'DELETED': {
        const parsed = this.parse(raw);
        const rv = (raw as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
        if (typeof rv === 'string' && rv) this.resourceVersion = rv;
        if (!parsed.ok) return;
        if (type === 'DELETED') this.items.delete(parsed.key);
        else this.items.set(parsed.key, parsed.value);
        this.options.onChange?.();
        return;
      }
      case 'BOOKMARK': {
        const rv = (raw as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
        if (typeof rv === 'string' && rv) this.resourceVersion = rv;
        return;
      }
      case 'ERROR': {
        const status = (raw ?? {}) as { code?: unknown; reason?: unknown; message?: unknown };
        const detail =
          `${String(status.code ?? '?')} ${String(status.reason ?? '')}: ${String(status.message ?? '')}`.trim();
        finish(
          status.code === 410
            ? { type: 'gone', detail }
            : { type: 'error', detail: `watch error event ${detail}` },
        );
        return;
      }
      default:
        this.options.onMalformed?.(raw, `unknown watch event type '${type}'`);
    }
  }
}

/**
 * Several ListWatches of one kind read as one set, e.g. one per namespace when the service may
 * list nothing cluster-wide (WATCH_NAMESPACE with several namespaces). Synced and current only
 * when every member is.
 */
export class ListWatchSet<T> {
  constructor(private readonly members: readonly ListWatch<T>[]) {}

  get synced(): boolean {
    return this.members.every((m) => m.synced);
  }

  get current(): boolean {
    return this.members.every((m) => m.current);
  }

  values(): T[] {
    return this.members.flatMap((m) => m.values());
  }

  async whenSynced(signal?: AbortSignal): Promise<void> {
    await Promise.all(this.members.map((m) => m.whenSynced(signal)));
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all(this.members.map((m) => m.run(signal)));
  }
}
