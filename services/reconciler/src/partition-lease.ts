/**
 * What a worker knows about its pin on one work partition, and the fence that stops a reconcile
 * from writing once that knowledge is too old.
 *
 * The server pins a partition consumer to one worker and moves the pin when that worker has not
 * pulled for the consumer's priority_timeout (ADR-42). A worker cannot ask the server "am I still
 * pinned?" before each write, so it keeps a lease of its own that ends strictly before the server
 * could move the pin: every message delivered with our pin id and every heartbeat on our pull
 * proves the pin at that moment; the lease lasts `leaseMs` from the last proof, shorter than the
 * pin timeout by one pull's lifetime (the pull that proved it may have reached the server that
 * long ago) and a margin. Losing the pin outright (the server's 423 on our pull, a new pin id, the
 * consumer stopping) ends the lease at once. The fence is checked against the clock before every
 * write, so a worker that stalled past its lease (a long GC, a paused process) finds out before it
 * writes, not after.
 */

/** Raised by a fence whose lease ended: the reconcile stops before its next write. */
export class PinLostError extends Error {
  override name = 'PinLostError';
}

/** What a reconcile carries into the writer: aborted when the pin is lost, checked before every write. */
export interface WriteFence {
  readonly signal: AbortSignal;
  /** Throws PinLostError when the lease has ended (by the clock, not only by the timer). */
  throwIfLost(): void;
  /** When (performance.now()) a check last passed: the start of the reconcile's latest write. */
  readonly lastPassedAt?: number;
}

/** The pull and lease timings that follow from a consumer's priority_timeout. */
export function pinTimings(pinTimeoutMs: number): {
  pullExpiresMs: number;
  heartbeatMs: number;
  leaseMs: number;
} {
  if (!(pinTimeoutMs >= 3_000))
    throw new Error(
      `a work partition's pin timeout must be at least 3s (it is ${pinTimeoutMs} ms): shorter leaves no room for a lease that ends before the pin moves`,
    );
  // A pull lives a quarter of the timeout (nats.js's minimum is 1s); heartbeats come twice per pull.
  const pullExpiresMs = Math.max(1_000, Math.min(30_000, Math.floor(pinTimeoutMs / 4)));
  const heartbeatMs = Math.floor(pullExpiresMs / 2);
  const margin = Math.max(500, Math.floor(pinTimeoutMs / 5));
  return { pullExpiresMs, heartbeatMs, leaseMs: pinTimeoutMs - pullExpiresMs - margin };
}

export type LossReason =
  | 'unpinned'
  | 'pin_changed'
  | 'lease_expired'
  | 'consumer_stopped'
  | 'disconnected'
  | 'released';
export const LOSS_REASONS: readonly LossReason[] = [
  'unpinned',
  'pin_changed',
  'lease_expired',
  'consumer_stopped',
  'disconnected',
  'released',
];

export class PartitionLease {
  private pinId: string | undefined;
  private deadline = 0;
  private controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly leaseMs: number,
    private readonly onLost: (reason: LossReason) => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get pinned(): boolean {
    return this.pinId !== undefined;
  }

  /** A message arrived with this pin id: only the pinned client gets messages, so this proves the pin. */
  pinnedAs(pinId: string): void {
    if (this.pinId !== undefined && this.pinId !== pinId) this.lose('pin_changed');
    if (this.pinId === undefined) {
      this.pinId = pinId;
      this.controller = new AbortController();
    }
    this.proof();
  }

  /** The server answered our pull (a heartbeat, an expiry): the pin we hold, if any, still stands. */
  proof(): void {
    if (this.pinId === undefined) return;
    this.deadline = this.now() + this.leaseMs;
    this.arm();
  }

  lose(reason: LossReason): void {
    if (this.pinId === undefined) return;
    this.pinId = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.controller.abort(new PinLostError(`the pin on this work partition was lost (${reason})`));
    this.onLost(reason);
  }

  /** Whether the lease holds now; ends it when its deadline passed. */
  held(): boolean {
    if (this.pinId !== undefined && this.now() >= this.deadline) this.lose('lease_expired');
    return this.pinId !== undefined;
  }

  /** The fence for a reconcile starting now, or undefined when the pin is not held. */
  fence(): WriteFence | undefined {
    if (!this.held()) return undefined;
    const { signal } = this.controller;
    let lastPassedAt: number | undefined;
    return {
      signal,
      throwIfLost: () => {
        this.held();
        if (signal.aborted) throw signal.reason as Error;
        lastPassedAt = this.now();
      },
      get lastPassedAt() {
        return lastPassedAt;
      },
    };
  }

  /** One timer per lease, re-armed from its own callback when proofs moved the deadline. */
  private arm(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        if (this.held()) this.arm();
      },
      Math.max(1, this.deadline - this.now()),
    );
    this.timer.unref();
  }
}
