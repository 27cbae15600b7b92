import { type BackoffOptions, backoffDelay } from '@streamspace/shared';
import { type Publication, publicationData } from './work-routing.js';

export interface PublishResult {
  /** JetStream already held a message with this id (another watcher published it first). */
  duplicate: boolean;
}

export type PublishFn = (subject: string, data: Uint8Array, msgID: string) => Promise<PublishResult>;

export interface PublisherHooks {
  published?(publication: Publication, result: PublishResult): void;
  /** A publish attempt failed; the publication is retried unless `dropped` follows. */
  failed?(publication: Publication, error: unknown, retryInMs: number | undefined): void;
  /** A publication was given up: the queue was full, or the error can never go away. */
  dropped?(publication: Publication, reason: 'overflow' | 'permanent', error?: unknown): void;
  /** A work item was not queued because an identical trigger for the same key was still waiting. */
  coalesced?(publication: Publication): void;
  /** Publishing works (true) or is failing and being retried (false, with the last error). */
  health?(ok: boolean, reason: string): void;
  /** The queue emptied after something had been dropped: the caller should resync to repair. */
  drainedAfterDrops?(): void;
}

export interface PublisherOptions {
  publish: PublishFn;
  /** Publications held while NATS is unreachable; beyond this the oldest are dropped. */
  maxQueue: number;
  /** Publications awaiting their JetStream acknowledgement at once. */
  concurrency: number;
  backoff?: BackoffOptions;
  /** Errors that retrying cannot fix (a message larger than the server accepts, a bad subject). */
  isPermanent?: (error: unknown) => boolean;
  hooks?: PublisherHooks;
}

const encoder = new TextEncoder();

/**
 * An ordered, bounded queue in front of JetStream. Publishing never blocks the watches: changes
 * are queued, sent with a bounded number awaiting acknowledgement, and when NATS is down they
 * wait and are retried with backoff. Work items carry only a key, so a trigger for a key that is
 * already waiting in the queue adds nothing and is not queued twice; a trigger for a key whose
 * item is already on its way is queued, because the reconciler may have read the state before
 * this change.
 */
export class Publisher {
  private readonly items: (Publication | undefined)[] = [];
  private head = 0;
  /** Work subjects with an item waiting in the queue (not yet sent). */
  private readonly waitingWork = new Set<string>();
  private inFlight = 0;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private healthy: boolean | undefined;
  private droppedSinceDrain = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: PublisherOptions) {}

  /** Publications waiting to be sent or awaiting their acknowledgement. */
  get pending(): number {
    return this.items.length - this.head + this.inFlight;
  }

  enqueue(publication: Publication): void {
    if (this.closed) return;
    if (publication.stream === 'work') {
      if (this.waitingWork.has(publication.subject)) {
        this.options.hooks?.coalesced?.(publication);
        return;
      }
      this.waitingWork.add(publication.subject);
    }
    if (this.items.length - this.head >= this.options.maxQueue) {
      const oldest = this.take();
      if (oldest) {
        this.droppedSinceDrain = true;
        this.options.hooks?.dropped?.(oldest, 'overflow');
      }
    }
    this.items.push(publication);
    this.pump();
  }

  /**
   * Resolves true once everything queued has been acknowledged, or false when `timeoutMs`
   * passes first (what is left is lost; a resync of the next watcher repairs it).
   */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.pending === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([idle, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Retries at once instead of waiting out the backoff (NATS just came back). */
  resume(): void {
    if (this.retryTimer === undefined) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.pump();
  }

  /** Stops sending; whatever is still queued is discarded. */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private take(): Publication | undefined {
    if (this.head >= this.items.length) return undefined;
    const publication = this.items[this.head];
    this.items[this.head] = undefined;
    this.head++;
    // Compact now and then so the array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    if (publication?.stream === 'work') this.waitingWork.delete(publication.subject);
    return publication;
  }

  private putBack(publication: Publication): void {
    if (publication.stream === 'work') {
      // A newer trigger for the same key is already waiting; it does the same job.
      if (this.waitingWork.has(publication.subject)) return;
      this.waitingWork.add(publication.subject);
    }
    if (this.head > 0) {
      this.head--;
      this.items[this.head] = publication;
    } else {
      this.items.unshift(publication);
    }
  }

  private pump(): void {
    while (!this.closed && this.retryTimer === undefined && this.inFlight < this.options.concurrency) {
      const publication = this.take();
      if (!publication) break;
      this.inFlight++;
      void this.send(publication);
    }
    if (this.pending === 0) {
      if (this.droppedSinceDrain) {
        this.droppedSinceDrain = false;
        this.options.hooks?.drainedAfterDrops?.();
      }
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private async send(publication: Publication): Promise<void> {
    const { hooks } = this.options;
    try {
      const data = encoder.encode(publicationData(publication));
      const result = await this.options.publish(publication.subject, data, publication.msgID);
      this.attempt = 0;
      if (this.healthy !== true) {
        this.healthy = true;
        hooks?.health?.(true, 'ok');
      }
      hooks?.published?.(publication, result);
    } catch (error) {
      if (this.options.isPermanent?.(error)) {
        hooks?.failed?.(publication, error, undefined);
        hooks?.dropped?.(publication, 'permanent', error);
      } else if (this.closed) {
        hooks?.failed?.(publication, error, undefined);
      } else {
        this.putBack(publication);
        let delay: number | undefined;
        if (this.retryTimer === undefined) {
          // One pause for the whole queue: the other in-flight failures join it.
          delay = backoffDelay(this.attempt++, this.options.backoff);
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.pump();
          }, delay);
          this.healthy = false;
          hooks?.health?.(
            false,
            `publishing to JetStream fails: ${(error as Error).message ?? String(error)}`,
          );
        }
        hooks?.failed?.(publication, error, delay);
      }
    } finally {
      this.inFlight--;
      this.pump();
    }
  }
}
