import { ANNOTATIONS, subjectToken } from '@streamspace/shared';
import type { SessionFacts } from './session-deadlines.js';

/** Who the reaper says it is in the state-changed-by annotation. */
export const REAPER_IDENTITY = 'idle-reaper';

/**
 * A Session as the reaper keeps it in memory: identity plus the few facts its deadlines need, in
 * one object (the facts inline, not an object of their own: every replica holds every Session, so
 * each object less per Session counts; BENCHMARKS.md run S5).
 */
export interface TrackedSession extends SessionFacts {
  key: string;
  namespace: string;
  name: string;
  resourceVersion: string;
}

/** The activity bucket key and the in-memory key of a Session: `<namespace>.<name>`. */
export function sessionKey(namespace: string, name: string): string {
  return `${subjectToken(namespace)}.${subjectToken(name)}`;
}

/** The key of a Session's shared-state entry is `session.` and its key (stateKey). */
const STATE_ENTRY_PREFIX = 'session.';

/** The Session key (sessionKey) of a Session's shared-state entry key. */
export function sessionKeyOfStateEntry(entryKey: string): string {
  return entryKey.startsWith(STATE_ENTRY_PREFIX) ? entryKey.slice(STATE_ENTRY_PREFIX.length) : entryKey;
}

function time(value: unknown): number | undefined {
  if (typeof value !== 'string' && !(value instanceof Date)) return undefined;
  const ms = value instanceof Date ? value.getTime() : Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}

function record(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * Reads a Session object (raw JSON from a list, a watch or a GET) into what the reaper keeps.
 * Tolerant: the API server has validated the object, but an old or hand-made status may lack
 * fields, and nothing here may throw on it. undefined when the object has no name or uid.
 */
export function readTrackedSession(object: unknown): TrackedSession | undefined {
  const o = record(object);
  const metadata = record(o.metadata);
  const spec = record(o.spec);
  const status = record(o.status);
  const annotations = record(metadata.annotations);
  const namespace = text(metadata.namespace);
  const name = text(metadata.name);
  const uid = text(metadata.uid);
  if (!namespace || !name || !uid) return undefined;

  const conditions = Array.isArray(status.conditions) ? status.conditions.map(record) : [];
  const ready = conditions.find((c) => c.type === 'Ready');
  const readySince = ready ? time(ready.lastTransitionTime) : undefined;
  // The reaper's own record of its last state change lives in status, which only StreamSpace's
  // service accounts may write: the state-changed-* annotations say the same for people, but
  // anyone who may patch the Session can write them (a forged time in the future used to hold
  // the idle clock at "now" forever).
  const stateChange = record(status.stateChange);
  const reaperChanged = stateChange.by === REAPER_IDENTITY;
  const reaperStateChangeAt = reaperChanged ? time(stateChange.at) : undefined;
  const statusLastActivity = time(status.lastActivity);
  const phase = text(status.phase);
  const idleTimeout = text(spec.idleTimeout);
  const maxSessionDuration = text(spec.maxSessionDuration);

  // One literal with every field (undefined when absent): every Session then shares one shape
  // with its fields in the object itself, where conditional spreads built each object property by
  // property (see IdleReaper.upsert for what the literals saved).
  return {
    key: sessionKey(namespace, name),
    namespace,
    name,
    resourceVersion: text(metadata.resourceVersion) ?? '',
    uid,
    state: text(spec.state) ?? 'running',
    reaperDisabled: annotations[ANNOTATIONS.reaperDisabled] === 'true',
    deleting: metadata.deletionTimestamp !== undefined && metadata.deletionTimestamp !== null,
    createdAt: time(metadata.creationTimestamp),
    phase,
    readyStatus: ready ? (text(ready.status) ?? 'Unknown') : undefined,
    readySince,
    idleTimeout,
    maxSessionDuration,
    statusLastActivity,
    reaperStateChangeAt,
  };
}
