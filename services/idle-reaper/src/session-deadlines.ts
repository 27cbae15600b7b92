import { ANNOTATIONS, formatDuration, isoTime, parseDuration } from '@streamspace/shared';

/**
 * The pure core of the idle reaper: given what is known about one Session and the time, when
 * must it be hibernated (idle) or terminated (too old), and is either due now? No I/O, no clock
 * of its own: the caller passes `now`, so tests can move time freely (forwards and backwards).
 *
 * All times are milliseconds since the epoch.
 */

export type ReaperAction = 'hibernate' | 'terminate';
export type ReaperReason = 'Idle' | 'MaxDurationExceeded';

/** What the reaper needs to know about a Session (see session-facts.ts for how it is read). */
export interface SessionFacts {
  uid: string;
  /** spec.state: running | hibernated | terminated (anything else is treated as "not ours to touch"). */
  state: string;
  /** status.phase, as the reconciler last wrote it. */
  phase?: string;
  /** The Ready condition's status; undefined when the status has no Ready condition. */
  readyStatus?: string;
  /**
   * The Ready condition's lastTransitionTime: for status 'True' the moment the session last
   * became Running. (Flat, not a `ready` object: one object less per Session held.)
   */
  readySince?: number;
  /** spec.idleTimeout / spec.maxSessionDuration as written (undefined: use the default). */
  idleTimeout?: string;
  maxSessionDuration?: string;
  /**
   * The annotation stream.streamspace.io/reaper-disabled is "true": the user asks to be left
   * alone, which is honoured only when the platform owner allows it (ReaperLimits.allowOptOut).
   */
  reaperDisabled: boolean;
  /** metadata.deletionTimestamp is set: the Session is going away on its own. */
  deleting: boolean;
  /** metadata.creationTimestamp (always set by the API server; without it nothing is decided). */
  createdAt?: number;
  /** status.lastActivity. */
  statusLastActivity?: number;
  /**
   * The reaper's own record (status.stateChange, which users cannot write) says it set
   * spec.state at this moment. If spec.state is running now, a person has woken the session
   * since, so its idle time starts no earlier than this.
   */
  reaperStateChangeAt?: number;
}

/**
 * What the platform owner allows a Session to ask of the reaper. A Session's timeouts of 0
 * ("never") and timeouts longer than a maximum get the maximum; the opt-out annotation is
 * ignored unless allowed. A maximum of 0 means none.
 */
export interface ReaperLimits {
  allowOptOut: boolean;
  maxIdleTimeoutMs: number;
  maxSessionDurationMs: number;
}

/** Where each limit is set, for the messages that name it. */
export const LIMIT_SETTINGS = {
  optOut: 'REAPER_OPT_OUT_ALLOWED (chart value sessions.limits.allowReaperOptOut)',
  idleTimeout: 'MAX_IDLE_TIMEOUT (chart value sessions.limits.maxIdleTimeout)',
  maxSessionDuration: 'MAX_SESSION_DURATION (chart value sessions.limits.maxDuration)',
} as const;

export type LimitedSetting = keyof typeof LIMIT_SETTINGS;

/** A Session asked for more than the platform allows, and the limit applies instead. */
export interface LimitApplied {
  setting: LimitedSetting;
  /** What the Session asked for, as written. */
  requested: string;
  /** The sentence for the Event and the log. */
  message: string;
}

export interface ReaperDefaults {
  idleTimeoutMs: number;
  maxSessionDurationMs: number;
  /** No limits when absent: every Session's settings are honoured as written. */
  limits?: ReaperLimits;
}

/** Evidence observed outside the Session object. */
export interface SessionObservations {
  /** Latest reported activity (the activity bucket). */
  activityAt?: number;
  /** When this process saw spec.state change to running (a wake), if it did. */
  wokenAt?: number;
  /**
   * No idle decision before this moment: the restart grace. Reports are held in memory for up to
   * one flush interval before they reach the bucket, so a process that has just started may not
   * know the latest activity another process received and lost; it waits one flush interval
   * before it hibernates anything.
   */
  idleNotBefore?: number;
}

export interface Deadline {
  at: number;
  action: ReaperAction;
  reason: ReaperReason;
  /** The moment the deadline is counted from (last activity or start for Idle, creation for MaxDurationExceeded). */
  from: number;
  /** The timeout that was applied. */
  timeoutMs: number;
}

export interface SessionDeadlines {
  idle?: Deadline;
  maxDuration?: Deadline;
  /** The earliest deadline (terminate wins a tie). */
  next?: Deadline;
  /** The action due at `now`, if any (terminate wins over hibernate). */
  due?: Deadline;
  /** Why a deadline is missing, for logs: e.g. 'reaper disabled by annotation', 'not running'. */
  notes: string[];
  /** What the Session asked for beyond the platform's limits (the limits apply). */
  limited: LimitApplied[];
}

/**
 * Durations already parsed, by their text. Sessions write a handful of distinct timeouts ('30m',
 * '8h', …) and every evaluation reads two of them: parsing with the regular expression each time
 * cost about half of computeDeadlines without V8's optimizing compiler (the reaper's flags), so
 * re-evaluating 10,000 adopted Sessions at a takeover took ≈ 200 ms, and ≈ 1,000 evaluations a
 * second at 10,000 reporting Sessions paid it too. Bounded: cleared when full (texts are
 * user-written, any number of them may appear).
 */
const parsedDurations = new Map<string, number | undefined>();
const PARSED_DURATIONS_MAX = 256;

/** A duration field read with its default; undefined when the text is not a duration (the caller decides nothing). */
export function timeoutMs(text: string | undefined, fallbackMs: number): number | undefined {
  if (text === undefined) return fallbackMs;
  if (parsedDurations.has(text)) return parsedDurations.get(text);
  let ms: number | undefined;
  try {
    ms = parseDuration(text);
  } catch {
    ms = undefined;
  }
  if (parsedDurations.size >= PARSED_DURATIONS_MAX) parsedDurations.clear();
  parsedDurations.set(text, ms);
  return ms;
}

/** Timestamps from the future (clock skew, a bad report) count as now, never later. */
function clamp(at: number | undefined, now: number): number | undefined {
  if (at === undefined || !Number.isFinite(at)) return undefined;
  return Math.min(at, now);
}

function maxDefined(values: (number | undefined)[]): number | undefined {
  let best: number | undefined;
  for (const v of values) if (v !== undefined && (best === undefined || v > best)) best = v;
  return best;
}

/**
 * When the session's idle clock started: the latest of its last activity, the moment it last
 * became Running, and any wake since the reaper last hibernated it. A woken session therefore
 * gets a full idle timeout before it is hibernated again, even if its old activity is ancient.
 * undefined when the session is not running (not Ready), so there is nothing to be idle.
 */
export function idleSince(
  facts: SessionFacts,
  observations: SessionObservations,
  now: number,
): number | undefined {
  if (facts.state !== 'running' || facts.phase !== 'Running') return undefined;
  let becameRunningAt: number | undefined;
  if (facts.readyStatus === undefined) {
    // A status without conditions (written by something other than the reconciler): creation is
    // the only start we know.
    becameRunningAt = facts.createdAt;
  } else if (facts.readyStatus === 'True') {
    becameRunningAt = facts.readySince ?? facts.createdAt;
  } else {
    // Phase still says Running while Ready is not True: the status is mid-change (a hibernation
    // being undone, a pod going away). Wait for it to settle rather than guess.
    return undefined;
  }
  if (becameRunningAt === undefined) return undefined;
  return maxDefined([
    clamp(becameRunningAt, now),
    clamp(observations.activityAt, now),
    clamp(facts.statusLastActivity, now),
    clamp(observations.wokenAt, now),
    clamp(facts.reaperStateChangeAt, now),
  ]);
}

/**
 * A timeout as the limits allow it: `0` (never) and anything longer than the maximum become the
 * maximum, and so does text that is not a duration (the CRD refuses it; a limit must not depend
 * on that). Without a maximum (0) the timeout stays as asked.
 */
export function limitedTimeout(
  text: string | undefined,
  fallbackMs: number,
  maxMs: number,
  setting: 'idleTimeout' | 'maxSessionDuration',
): { ms: number | undefined; limited?: LimitApplied } {
  const ms = timeoutMs(text, fallbackMs);
  if (maxMs <= 0 || (ms !== undefined && ms > 0 && ms <= maxMs)) return { ms };
  const requested = text ?? (ms === undefined ? '' : formatDuration(ms));
  const asked = ms === 0 ? `${requested} (never)` : requested;
  const effect = setting === 'idleTimeout' ? 'hibernated when idle for' : 'terminated when older than';
  return {
    ms: maxMs,
    limited: {
      setting,
      requested,
      message: `spec.${setting} ${asked} is beyond what the platform allows: the session is ${effect} ${formatDuration(maxMs)}, the maximum set by ${LIMIT_SETTINGS[setting]}. Set spec.${setting} to at most ${formatDuration(maxMs)}.`,
    },
  };
}

export function computeDeadlines(
  facts: SessionFacts,
  observations: SessionObservations,
  defaults: ReaperDefaults,
  now: number,
): SessionDeadlines {
  const notes: string[] = [];
  const limited: LimitApplied[] = [];
  const limits = defaults.limits;
  if (facts.deleting) return { notes: ['being deleted'], limited };
  // Checked before the limits, so a terminated Session is not told about limits that no longer matter.
  if (facts.state !== 'running' && facts.state !== 'hibernated')
    return { notes: [`state is ${facts.state}`], limited };
  if (facts.reaperDisabled) {
    if (!limits || limits.allowOptOut) return { notes: ['reaper disabled by annotation'], limited };
    limited.push({
      setting: 'optOut',
      requested: 'true',
      message: `The annotation ${ANNOTATIONS.reaperDisabled}=true is ignored: the platform does not allow sessions to opt out of idle hibernation and the maximum duration (${LIMIT_SETTINGS.optOut}).`,
    });
  }

  let idle: Deadline | undefined;
  const idleLimit = limits
    ? limitedTimeout(facts.idleTimeout, defaults.idleTimeoutMs, limits.maxIdleTimeoutMs, 'idleTimeout')
    : { ms: timeoutMs(facts.idleTimeout, defaults.idleTimeoutMs) };
  if (idleLimit.limited) limited.push(idleLimit.limited);
  const idleMs = idleLimit.ms;
  if (idleMs === undefined) notes.push(`idleTimeout '${facts.idleTimeout}' is not a duration`);
  else if (idleMs === 0) notes.push('idle timeout disabled');
  else {
    const from = idleSince(facts, observations, now);
    if (from === undefined) notes.push('not running');
    else {
      const at = Math.max(from + idleMs, observations.idleNotBefore ?? Number.NEGATIVE_INFINITY);
      idle = { at, action: 'hibernate', reason: 'Idle', from, timeoutMs: idleMs };
    }
  }

  let maxDuration: Deadline | undefined;
  const durationLimit = limits
    ? limitedTimeout(
        facts.maxSessionDuration,
        defaults.maxSessionDurationMs,
        limits.maxSessionDurationMs,
        'maxSessionDuration',
      )
    : { ms: timeoutMs(facts.maxSessionDuration, defaults.maxSessionDurationMs) };
  if (durationLimit.limited) limited.push(durationLimit.limited);
  const maxMs = durationLimit.ms;
  if (maxMs === undefined) notes.push(`maxSessionDuration '${facts.maxSessionDuration}' is not a duration`);
  else if (maxMs === 0) notes.push('maximum duration disabled');
  else {
    const created = clamp(facts.createdAt, now);
    if (created === undefined) notes.push('no creation time');
    else {
      maxDuration = {
        at: created + maxMs,
        action: 'terminate',
        reason: 'MaxDurationExceeded',
        from: created,
        timeoutMs: maxMs,
      };
    }
  }

  const next = idle && maxDuration ? (maxDuration.at <= idle.at ? maxDuration : idle) : (idle ?? maxDuration);
  const due = maxDuration && maxDuration.at <= now ? maxDuration : idle && idle.at <= now ? idle : undefined;
  // One literal (absent deadlines are undefined): the conditional spreads it replaces allocated an
  // object per field on every evaluation, a third of computeDeadlines' time without V8's
  // optimizing compiler.
  return { idle, maxDuration, next, due, notes, limited };
}

function iso(ms: number): string {
  return isoTime(ms);
}

/** The sentence a person reads in `kubectl describe` (the Event) and in the command. */
export function describeDeadline(deadline: Deadline): string {
  if (deadline.reason === 'Idle') {
    return `No activity since ${iso(deadline.from)}, longer than its idleTimeout ${formatDuration(deadline.timeoutMs)}: hibernated by the idle reaper. Set spec.state to running to wake it.`;
  }
  return `Older than its maxSessionDuration ${formatDuration(deadline.timeoutMs)} (created ${iso(deadline.from)}): terminated by the idle reaper. To run it again, raise spec.maxSessionDuration (within the platform's maximum, if it sets one) and set spec.state to running.`;
}
