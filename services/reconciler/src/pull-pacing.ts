/**
 * How much a worker asks one work partition for: the pure core of PacedPull.
 *
 * The server's `max_ack_pending` does not bound what a worker holds. The work stream keeps one
 * item per key (`max_msgs_per_subject: 1`), so a newer trigger of a key removes the item the
 * worker holds unacknowledged; a removed item no longer counts against the consumer's limit, and
 * the server hands out another. At the 10,000-Session resync two workers held 1,243–1,716 keys
 * that way, with the server counting 16 a partition (BENCHMARKS.md, issue 13). nats.js's
 * `consume()` asks again whenever items arrive, not when the worker takes them, so the bound has
 * to be the worker's own: it asks a partition for no more items than the keys it may still take,
 * counting what it holds (waiting or being reconciled) and what it asked for and has not had yet.
 *
 * A worker that holds its bound still has to pull: the server moves a partition's pin when its
 * pinned worker sends no pull for the pin timeout (ADR-42). Then it sends a keep-alive, a pull
 * the server cannot fill (`max_bytes` 1: every item is larger, so the server ends the pull with
 * a 409 instead of delivering), at most once per `keepAliveMs` — the cadence at which the
 * library's own pulls expired and were renewed before.
 */

export interface PartitionPullState {
  /** Keys of the partition the worker holds, waiting or being reconciled. */
  held: number;
  /** Whether a pull that may deliver (not a keep-alive) is open: what it may still bring is not held yet. */
  pullOpen: boolean;
  /** Whether a keep-alive is open. */
  keepAliveOpen: boolean;
  /** When (ms, any clock) the last pull of any kind was sent; undefined before the first. */
  lastSentAtMs: number | undefined;
  now: number;
}

export type PullDecision =
  | { kind: 'pull'; batch: number }
  | { kind: 'keepalive' }
  /** Nothing to send now; ask again at `atMs` at the latest (undefined: when something changes). */
  | { kind: 'wait'; atMs: number | undefined };

export interface PullPacing {
  /** The most keys of one partition a worker holds at a time. */
  bound: number;
  /** The longest a pinned worker goes without sending a pull while it holds its bound. */
  keepAliveMs: number;
}

export function nextPull(state: PartitionPullState, pacing: PullPacing): PullDecision {
  // One pull that may deliver at a time, asking for no more than the room left when it was sent:
  // until it ends (filled or expired), what it may still bring is room already given away.
  if (state.pullOpen) return { kind: 'wait', atMs: undefined };
  const room = pacing.bound - state.held;
  if (room > 0) return { kind: 'pull', batch: room };
  if (state.keepAliveOpen) return { kind: 'wait', atMs: undefined };
  const due = state.lastSentAtMs === undefined ? state.now : state.lastSentAtMs + pacing.keepAliveMs;
  return due <= state.now ? { kind: 'keepalive' } : { kind: 'wait', atMs: due };
}
