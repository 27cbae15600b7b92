import { KubeApiError, type KubeClient, type ResourceRef } from '@streamspace/kube';
import { API_GROUP, API_VERSION, backoffDelay, type Logger, type Readiness, sleep } from '@streamspace/shared';
import type { ReaperMetrics } from './reaper-metrics.js';
import { readTrackedSession, type TrackedSession } from './session-facts.js';

export interface SessionInformerOptions {
  kube: KubeClient;
  /** One namespace, or every namespace when undefined. */
  namespace?: string;
  /** The /readyz check it reports on (one per informer when several run side by side). */
  readinessCheck?: string;
  log: Logger;
  readiness: Readiness;
  metrics: ReaperMetrics;
  watchTimeoutMs: number;
  resyncIntervalMs: number;
  pageSize?: number;
  onUpsert(session: TrackedSession): void;
  onDelete(key: string): void;
  /** After every complete list: the reaper's view of the cluster is whole. */
  onSynced(): void;
}

class WatchExpired extends Error {
  override name = 'WatchExpired';
}

const READINESS = 'kubernetes';

/**
 * The reaper's own list + watch of Sessions. It wants the full current state of every Session
 * at start (to rebuild its schedule) and every change after, without depending on another
 * service being up, so it reads the API server directly rather than the watcher's change events.
 *
 * The realities of watches are handled here, as STYLE.md asks of anything built on the client
 * library's Watch: a 410 relists at once; any other failure relists after a backoff; a watch
 * silent for longer than its own server-side timeout is presumed stuck and restarted; and every
 * Session is listed again every `resyncIntervalMs`. `/readyz` says "kubernetes" is not ready
 * until the first list completes and whenever the watch is down.
 */
export class SessionInformer {
  private readonly keys = new Set<string>();
  private abortWatch: (() => void) | undefined;
  private synced = false;

  private readonly check: string;

  constructor(private readonly options: SessionInformerOptions) {
    this.check = options.readinessCheck ?? READINESS;
    options.readiness.register(this.check, 'listing Sessions');
  }

  /** At least one complete list has been applied (a later watch failure does not undo this). */
  get hasSynced(): boolean {
    return this.synced;
  }

  async run(signal: AbortSignal): Promise<void> {
    const { log, readiness, metrics } = this.options;
    signal.addEventListener('abort', () => this.abortWatch?.(), { once: true });
    for (let failures = 0; !signal.aborted; ) {
      try {
        let resourceVersion = await this.list(signal);
        readiness.set(this.check, true);
        failures = 0;
        const relistAt = Date.now() + this.options.resyncIntervalMs;
        while (!signal.aborted && Date.now() < relistAt)
          resourceVersion = await this.watchOnce(resourceVersion, relistAt);
      } catch (error) {
        if (signal.aborted) break;
        metrics.watchRestarts.labels('sessions').inc();
        if (error instanceof WatchExpired || (error instanceof KubeApiError && error.code === 410)) {
          log.info({ err: error.message }, 'Session watch expired; listing again');
          continue;
        }
        const delay = backoffDelay(failures++, { initialMs: 500, maxMs: 15_000 });
        readiness.set(this.check, false, `cannot list or watch Sessions: ${(error as Error).message}`);
        log.warn({ err: (error as Error).message, retryInMs: delay }, 'Session list/watch failed; retrying');
        await sleep(delay, signal);
      }
    }
  }

  private collection(): ResourceRef {
    return {
      group: API_GROUP,
      version: API_VERSION,
      plural: 'sessions',
      ...(this.options.namespace ? { namespace: this.options.namespace } : {}),
    };
  }

  /** Lists every Session page by page, replaces the known set, and returns the list's resourceVersion. */
  private async list(signal: AbortSignal): Promise<string> {
    const seen = new Set<string>();
    let continueToken: string | undefined;
    let resourceVersion = '';
    do {
      if (signal.aborted) throw new Error('stopped');
      const page = await this.options.kube.list<unknown>(this.collection(), {
        limit: this.options.pageSize ?? 500,
        ...(continueToken ? { continue: continueToken } : {}),
      });
      for (const item of page.items ?? []) {
        const session = readTrackedSession(item);
        if (!session) continue;
        seen.add(session.key);
        this.keys.add(session.key);
        this.options.onUpsert(session);
      }
      continueToken = page.metadata?.continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    } while (continueToken);
    for (const key of [...this.keys]) {
      if (seen.has(key)) continue;
      this.keys.delete(key);
      this.options.onDelete(key);
    }
    this.synced = true;
    this.options.onSynced();
    return resourceVersion;
  }

  /**
   * One watch request from `resourceVersion`. Resolves with the last resourceVersion seen when
   * the server ends it normally (its timeout) or the resync time comes; rejects on errors, with
   * WatchExpired when the resourceVersion is too old.
   */
  private watchOnce(resourceVersion: string, relistAt: number): Promise<string> {
    const { log, watchTimeoutMs } = this.options;
    let latest = resourceVersion;
    return new Promise<string>((resolve, reject) => {
      let settled = false;
      let abort: (() => void) | undefined;
      let watchdog: NodeJS.Timeout | undefined;
      const finish = (error?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        clearTimeout(resync);
        this.abortWatch = undefined;
        abort?.();
        if (error) reject(error);
        else resolve(latest);
      };
      const silenceLimit = watchTimeoutMs + 30_000;
      const feedWatchdog = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(
          () => finish(new Error(`the Session watch was silent for ${Math.round(silenceLimit / 1000)}s`)),
          silenceLimit,
        );
      };
      const resync = setTimeout(() => finish(), Math.max(0, relistAt - Date.now()));
      this.abortWatch = () => finish();
      feedWatchdog();
      const handle = this.options.kube.watch<unknown>(
        this.collection(),
        { resourceVersion, timeoutSeconds: Math.ceil(watchTimeoutMs / 1000) },
        ({ type, object }) => {
          feedWatchdog();
          const metadata = (object as { metadata?: { resourceVersion?: string } })?.metadata;
          if (metadata?.resourceVersion) latest = metadata.resourceVersion;
          if (type === 'BOOKMARK') return;
          const session = readTrackedSession(object);
          if (!session) {
            log.warn({ type }, 'ignoring a Session watch event without name, namespace or uid');
            return;
          }
          if (type === 'DELETED') {
            this.keys.delete(session.key);
            this.options.onDelete(session.key);
          } else {
            this.keys.add(session.key);
            this.options.onUpsert(session);
          }
        },
        (error) => {
          if (!error) return finish();
          if (error instanceof KubeApiError && error.code === 410)
            return finish(new WatchExpired(error.message));
          finish(error);
        },
      );
      abort = () => handle.abort();
      if (settled) handle.abort();
    });
  }
}
