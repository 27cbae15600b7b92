/**
 * When periodic resyncs happen and what they are called. Time is cut into rounds of one
 * interval; every watcher resyncs once per round, at the middle of it, and names the resync
 * after the round. Two watchers (clocks a little apart, started at different times) thus resync
 * in the same round under the same name, and JetStream keeps one copy of what they publish.
 */
export function resyncRound(nowMs: number, intervalMs: number): number {
  return Math.floor(nowMs / intervalMs);
}

/** The next mid-round moment strictly after `nowMs`. */
export function nextResyncAt(nowMs: number, intervalMs: number): number {
  const round = resyncRound(nowMs, intervalMs);
  const middle = round * intervalMs + intervalMs / 2;
  return middle > nowMs ? middle : middle + intervalMs;
}

/** `state-lost`: the shared-state bucket was lost and rebuilt; triggers read meanwhile saw nothing. */
export type ResyncTrigger = 'periodic' | 'reconnect' | 'overflow' | 'state-lost';
export const RESYNC_TRIGGERS: readonly ResyncTrigger[] = ['periodic', 'reconnect', 'overflow', 'state-lost'];

/** Resyncs that are not periodic (after NATS came back, after dropped messages) share names per half minute. */
const UNSCHEDULED_BUCKET_MS = 30_000;

export function resyncName(trigger: ResyncTrigger, nowMs: number, intervalMs: number): string {
  if (trigger === 'periodic') return `p${resyncRound(nowMs, intervalMs)}`;
  return `${trigger[0]}${Math.floor(nowMs / UNSCHEDULED_BUCKET_MS)}`;
}
