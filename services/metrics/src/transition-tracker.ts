import type { SessionPhase, SessionState } from '@streamspace/shared';
import type { SessionSnapshot } from './session-snapshot.js';

/**
 * Turns the stream of Session states (change events) into counted transitions: a session
 * started, hibernated, terminated or failed, with how long it took. Pure: no clock, no I/O.
 *
 * A transition is identified by the object itself, not by the message that carried it: an
 * *episode* is a settled phase together with the Ready condition's reason and
 * lastTransitionTime, which only move when the phase really changes. A duplicated, replayed or
 * re-announced (resync) message repeats an episode and counts nothing; a missed message is
 * repaired by the next one, which shows the new episode. Messages older than what was already
 * seen for the Session (by resourceVersion) are ignored.
 *
 * After a restart the tracker is seeded from the cluster's current state, so the episodes that
 * existed then are history and are not counted again: counters start from zero, as Prometheus
 * expects of a restarted process.
 */

/** Who asked for a hibernation or termination. */
export const END_REASONS = ['user', 'idle', 'max_duration'] as const;
export type EndReason = (typeof END_REASONS)[number];

/** The Ready reasons of a failed session that the reconciler writes today (others are passed through). */
export const FAILURE_REASONS = ['StartupDeadlineExceeded', 'InvalidSpec'] as const;

/** The idle reaper's name in the state-changed-by annotation. */
export const IDLE_REAPER = 'idle-reaper';

/** What a session started from: a new session, a wake, or a start after a termination or failure. */
export type StartOrigin = 'created' | 'hibernated' | 'terminated' | 'failed' | 'running' | 'unknown';

export type Transition =
  | {
      type: 'started';
      template: string;
      from: StartOrigin;
      /** Creation or wake (or whatever preceded it) → Running; undefined when the start time is unknown. */
      startSeconds: number | undefined;
      /** Set only for a wake from hibernation. */
      wakeSeconds: number | undefined;
    }
  | { type: 'hibernated'; template: string; reason: EndReason; seconds: number | undefined }
  | { type: 'terminated'; template: string; reason: EndReason }
  | { type: 'failed'; template: string; reason: string };

export type ChangeType = 'added' | 'modified' | 'deleted' | 'resync';

export interface ObservedChange {
  type: ChangeType;
  snapshot: SessionSnapshot;
  /** When the watcher saw the change (the event's observedAt). */
  observedAtMs: number;
}

/** Ready reasons of a session on its way somewhere: its phase is not settled yet. */
const TRANSITIONAL_REASONS = ['Starting', 'Hibernating', 'Terminating', 'WaitingForTemplate'] as const;
type TransitionalReason = (typeof TRANSITIONAL_REASONS)[number];

function isTransitional(reason: string | undefined): reason is TransitionalReason {
  return (TRANSITIONAL_REASONS as readonly string[]).includes(reason ?? '');
}

type SettledPhase = Exclude<SessionPhase, 'Pending'>;

/** An episode: a settled phase with the Ready condition's reason and since when; equal fields, one episode. */
export interface Episode {
  phase: SettledPhase;
  reason: string;
  sinceMs: number | undefined;
}

/** The settled phase of a snapshot as an episode, or undefined while it is on its way. */
export function episodeOf(snapshot: SessionSnapshot): Episode | undefined {
  const { phase, ready } = snapshot;
  if (phase === 'Pending') return undefined;
  // A session keeps its old phase while its pod is going (Hibernating, Terminating).
  if (ready && isTransitional(ready.reason)) return undefined;
  if (phase === 'Running' && ready && ready.status !== 'True') return undefined;
  return { phase, reason: ready?.reason ?? '', sinceMs: ready?.sinceMs };
}

/** An episode written out, for logs and tests. */
export function episodeKey(episode: Episode): string {
  return `${episode.phase}/${episode.reason}/${episode.sinceMs ?? ''}`;
}

function sameEpisode(a: Episode | undefined, b: Episode): boolean {
  return a !== undefined && a.phase === b.phase && a.reason === b.reason && a.sinceMs === b.sinceMs;
}

/** Which spec.state each transitional reason is heading for. */
const HEADING: Record<TransitionalReason, SessionState> = {
  Starting: 'running',
  WaitingForTemplate: 'running',
  Hibernating: 'hibernated',
  Terminating: 'terminated',
};

/** resourceVersions are opaque, but etcd's are integers; compare them when they are, else only tell them apart. */
export function isNewerVersion(candidate: string, seen: string): boolean {
  if (/^\d+$/.test(candidate) && /^\d+$/.test(seen)) return BigInt(candidate) > BigInt(seen);
  return candidate !== seen;
}

interface Track {
  lastVersion: string;
  /**
   * The last settled episode counted or seeded: its fields (the reason a string the snapshot
   * holds anyway), where a key written out was a string of its own per Session.
   */
  episode: Episode | undefined;
  /** The last settled phase and since when; 'Unknown' when seeded mid-way with a history we cannot see. */
  settled: { phase: SettledPhase | 'Unknown'; sinceMs: number | undefined } | undefined;
  state: SessionState;
  /** Best known time spec.state took its current value. */
  stateSinceMs: number | undefined;
  /**
   * lastTransitionTime of transitional Ready reasons seen since the last settled episode; none
   * (undefined, not an empty object: a Track is kept per Session) for a settled Session.
   */
  transitional: Partial<Record<TransitionalReason, number>> | undefined;
  /** observedAt of the session's `added` event, to refine the whole-second creationTimestamp. */
  addedAtMs: number | undefined;
  touchedMs: number;
}

function earliest(...times: (number | undefined)[]): number | undefined {
  const known = times.filter((t): t is number => t !== undefined);
  return known.length > 0 ? Math.min(...known) : undefined;
}

function seconds(fromMs: number | undefined, toMs: number): number | undefined {
  if (fromMs === undefined) return undefined;
  return Math.max(0, toMs - fromMs) / 1000;
}

export class TransitionTracker {
  private readonly tracks = new Map<string, Track>();
  /** Transitions that settled before this moment are history (guards the instant between seeding and the first event). */
  private countFromMs = Number.NEGATIVE_INFINITY;

  get size(): number {
    return this.tracks.size;
  }

  /**
   * Takes the cluster's current Sessions as history: their present episodes are not counted.
   * `countFromMs` (when the event subscription began) keeps a transition that settled before it
   * from being counted when its event arrives after the seed.
   */
  seed(snapshots: Iterable<SessionSnapshot>, countFromMs: number, nowMs = countFromMs): void {
    this.countFromMs = countFromMs;
    for (const snapshot of snapshots) {
      const existing = this.tracks.get(snapshot.uid);
      if (existing && !isNewerVersion(snapshot.resourceVersion, existing.lastVersion)) continue;
      this.tracks.set(snapshot.uid, this.historyOf(snapshot, nowMs));
    }
  }

  /** The transitions one observed change completes (usually none, at most one). */
  observe(change: ObservedChange): Transition[] {
    const { snapshot, observedAtMs } = change;
    if (change.type === 'deleted') {
      this.tracks.delete(snapshot.uid);
      return [];
    }
    let track = this.tracks.get(snapshot.uid);
    if (track && !isNewerVersion(snapshot.resourceVersion, track.lastVersion)) return [];
    if (!track) {
      // Not seen before, and not part of the seeded history: it appeared after we started.
      track = {
        lastVersion: snapshot.resourceVersion,
        episode: undefined,
        // A session whose spec was changed before we saw it may have a past we do not know.
        settled:
          change.type === 'added' || snapshot.generation <= 1
            ? undefined
            : { phase: 'Unknown', sinceMs: undefined },
        state: snapshot.state,
        stateSinceMs: undefined,
        transitional: undefined,
        addedAtMs: change.type === 'added' ? observedAtMs : undefined,
        touchedMs: observedAtMs,
      };
      this.tracks.set(snapshot.uid, track);
    }

    const previous = track.settled;
    const episode = episodeOf(snapshot);
    const settlesNow = episode !== undefined && !sameEpisode(track.episode, episode);
    if (snapshot.state !== track.state) {
      track.state = snapshot.state;
      // Seen only once it had already settled, the change was missed: only a recorded time can say when it was made.
      track.stateSinceMs = this.stateChangeTime(snapshot, previous, settlesNow ? undefined : observedAtMs);
      track.transitional = undefined;
    }
    const { ready } = snapshot;
    if (ready && isTransitional(ready.reason) && ready.sinceMs !== undefined) {
      track.transitional ??= {};
      track.transitional[ready.reason] ??= ready.sinceMs;
    }
    track.lastVersion = snapshot.resourceVersion;
    track.touchedMs = observedAtMs;

    if (!episode || !settlesNow) return [];
    const endMs = episode.sinceMs ?? observedAtMs;
    const transition = this.transitionTo(episode.phase, snapshot, track, endMs);
    track.episode = episode;
    track.settled = { phase: episode.phase, sinceMs: endMs };
    track.transitional = undefined;
    if (endMs < this.countFromMs) return [];
    return [transition];
  }

  /** Forgets Sessions that no longer exist (their deletion event was missed) and were quiet for `graceMs`. */
  prune(liveUids: ReadonlySet<string>, nowMs: number, graceMs: number): number {
    let removed = 0;
    for (const [uid, track] of this.tracks) {
      if (!liveUids.has(uid) && nowMs - track.touchedMs > graceMs) {
        this.tracks.delete(uid);
        removed++;
      }
    }
    return removed;
  }

  private historyOf(snapshot: SessionSnapshot, nowMs: number): Track {
    const episode = episodeOf(snapshot);
    const { ready } = snapshot;
    const transitional: Track['transitional'] =
      ready && isTransitional(ready.reason) && ready.sinceMs !== undefined
        ? { [ready.reason]: ready.sinceMs }
        : undefined;
    // Mid-way (not settled): when the current spec.state was set, if the object says so.
    const candidates: number[] = [];
    const recorded = snapshot.stateChange.atMs;
    if (recorded !== undefined && (episode?.sinceMs === undefined || recorded >= episode.sinceMs))
      candidates.push(recorded);
    if (
      ready &&
      isTransitional(ready.reason) &&
      ready.sinceMs !== undefined &&
      HEADING[ready.reason] === snapshot.state
    ) {
      candidates.push(ready.sinceMs);
    }
    return {
      lastVersion: snapshot.resourceVersion,
      episode,
      settled: episode
        ? { phase: episode.phase, sinceMs: episode.sinceMs }
        : snapshot.generation > 1
          ? { phase: 'Unknown', sinceMs: undefined }
          : undefined,
      state: snapshot.state,
      stateSinceMs: episode ? undefined : candidates.length > 0 ? Math.min(...candidates) : undefined,
      transitional,
      addedAtMs: undefined,
      touchedMs: nowMs,
    };
  }

  /**
   * When spec.state changed: the time recorded in the state-changed-at annotation when it belongs
   * to this change (it is not older than the last settled phase), else when the watcher saw it.
   */
  private stateChangeTime(
    snapshot: SessionSnapshot,
    previous: Track['settled'],
    observedAtMs: number | undefined,
  ): number | undefined {
    const recorded = snapshot.stateChange.atMs;
    if (recorded !== undefined && (previous?.sinceMs === undefined || recorded >= previous.sinceMs)) {
      return observedAtMs === undefined ? recorded : Math.min(recorded, observedAtMs);
    }
    return observedAtMs;
  }

  /** user, idle or max_duration: the reaper's annotations count only when they belong to this change. */
  private endReason(snapshot: SessionSnapshot, previous: Track['settled']): EndReason {
    const { by, reason, atMs } = snapshot.stateChange;
    if (by !== IDLE_REAPER) return 'user';
    const since = previous?.sinceMs;
    if (since !== undefined && (atMs === undefined || atMs < since)) return 'user';
    if (reason === 'Idle') return 'idle';
    if (reason === 'MaxDurationExceeded') return 'max_duration';
    return 'user';
  }

  private transitionTo(
    phase: SettledPhase,
    snapshot: SessionSnapshot,
    track: Track,
    endMs: number,
  ): Transition {
    const template = snapshot.template;
    const previous = track.settled;
    switch (phase) {
      case 'Running': {
        // The earliest evidence of a start: the spec change as seen, or the reconciler's Starting condition.
        const starting = earliest(track.transitional?.Starting, track.transitional?.WaitingForTemplate);
        let from: StartOrigin;
        let beginMs: number | undefined;
        if (!previous) {
          from = 'created';
          beginMs = creationTime(snapshot.createdAtMs, track.addedAtMs);
        } else if (previous.phase === 'Hibernated' || previous.phase === 'Terminated') {
          from = previous.phase === 'Hibernated' ? 'hibernated' : 'terminated';
          beginMs = earliest(track.stateSinceMs, starting);
        } else if (previous.phase === 'Failed') {
          from = 'failed';
          const after = (ms: number | undefined) =>
            ms !== undefined && previous.sinceMs !== undefined && ms > previous.sinceMs ? ms : undefined;
          beginMs = earliest(after(track.stateSinceMs), after(starting));
        } else if (previous.phase === 'Running') {
          from = 'running';
          beginMs = starting;
        } else {
          from = 'unknown';
          beginMs = earliest(starting, track.stateSinceMs);
        }
        const startSeconds = seconds(beginMs, endMs);
        return {
          type: 'started',
          template,
          from,
          startSeconds,
          wakeSeconds: from === 'hibernated' ? startSeconds : undefined,
        };
      }
      case 'Hibernated': {
        const beginMs = earliest(
          track.state === 'hibernated' ? track.stateSinceMs : undefined,
          track.transitional?.Hibernating,
        );
        return {
          type: 'hibernated',
          template,
          reason: this.endReason(snapshot, previous),
          seconds: seconds(beginMs, endMs),
        };
      }
      case 'Terminated':
        return { type: 'terminated', template, reason: this.endReason(snapshot, previous) };
      case 'Failed':
        return { type: 'failed', template, reason: snapshot.ready?.reason || 'Unknown' };
    }
  }
}

/**
 * creationTimestamp has whole seconds; the watcher's sighting of the creation is later than the
 * true moment by only the watch latency, so when it falls within that second it is the better
 * estimate.
 */
export function creationTime(
  createdAtMs: number | undefined,
  addedAtMs: number | undefined,
): number | undefined {
  if (createdAtMs === undefined) return addedAtMs;
  if (addedAtMs !== undefined && addedAtMs >= createdAtMs && addedAtMs < createdAtMs + 1000) return addedAtMs;
  return createdAtMs;
}
