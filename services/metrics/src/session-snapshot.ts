import {
  ANNOTATIONS,
  fromSubjectToken,
  SESSION_PHASES,
  SESSION_STATES,
  type SessionPhase,
  type SessionState,
} from '@streamspace/shared';

/**
 * The few facts about a Session that the metrics are made of, read defensively from the JSON the
 * API server sends (through the Session watch, or inside a change event). Everything the metrics
 * need is on the object itself, so the numbers can be rebuilt from the cluster after a restart.
 */
export interface SessionSnapshot {
  uid: string;
  namespace: string;
  name: string;
  resourceVersion: string;
  generation: number;
  /** metadata.creationTimestamp (the API server keeps whole seconds). */
  createdAtMs: number | undefined;
  template: string;
  user: string;
  /** spec.state, defaulted as the CRD does. */
  state: SessionState;
  /** status.phase; a Session the reconciler has not written yet is Pending. */
  phase: SessionPhase;
  /** The Ready condition; its lastTransitionTime says since when the session has been in its phase. */
  ready: ReadyCondition | undefined;
  /** What the idle reaper (or anyone else recording it) wrote when it changed spec.state. */
  stateChange: StateChangeRecord;
}

export interface ReadyCondition {
  status: string;
  reason: string;
  sinceMs: number | undefined;
}

export interface StateChangeRecord {
  by: string | undefined;
  reason: string | undefined;
  atMs: number | undefined;
}

export type ParsedSnapshot = { ok: true; snapshot: SessionSnapshot } | { ok: false; reason: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/**
 * The longest who/why text kept from the state-change annotations. The reaper writes short ones;
 * anything longer is someone's padding (users may write annotations, up to 256 KiB) and is
 * ignored, since a snapshot is kept per Session for as long as the Session exists.
 */
const MAX_RECORD_TEXT = 253;

function shortText(value: unknown): string | undefined {
  const t = text(value);
  return t !== undefined && t.length <= MAX_RECORD_TEXT ? t : undefined;
}

/** The record of a Session nobody recorded a state change on: most of them, so one object for all. */
const NO_STATE_CHANGE: StateChangeRecord = Object.freeze({ by: undefined, reason: undefined, atMs: undefined });

/**
 * One string for the values many Sessions repeat (their namespace, template, Ready status and
 * reason): JSON.parse makes a copy of each per Session, and a snapshot is kept per Session (at
 * 10,000 Sessions, about 0.5 MiB of copies). Bounded, so odd input cannot grow it without end.
 */
const interned = new Map<string, string>();
const MAX_INTERNED = 4_096;

function intern(value: string): string {
  const known = interned.get(value);
  if (known !== undefined) return known;
  if (interned.size < MAX_INTERNED && value.length <= 253) interned.set(value, value);
  return value;
}

function timeMs(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * Reads a Session. Only what identifies it is required (namespace, name, uid, resourceVersion);
 * a missing or unknown spec or status field falls back to what the API server would default,
 * because a half-written status must still be counted somewhere.
 */
export function parseSessionSnapshot(raw: unknown): ParsedSnapshot {
  if (!isRecord(raw)) return { ok: false, reason: 'not a JSON object' };
  const metadata = raw.metadata;
  if (!isRecord(metadata)) return { ok: false, reason: 'metadata is missing' };
  for (const field of ['namespace', 'name', 'uid', 'resourceVersion'] as const) {
    if (!text(metadata[field])) return { ok: false, reason: `metadata.${field} is missing or empty` };
  }
  const spec = isRecord(raw.spec) ? raw.spec : {};
  const status = isRecord(raw.status) ? raw.status : {};
  const annotations = isRecord(metadata.annotations) ? metadata.annotations : {};

  const state = SESSION_STATES.find((s) => s === spec.state) ?? 'running';
  const phase = SESSION_PHASES.find((p) => p === status.phase) ?? 'Pending';
  const conditions = Array.isArray(status.conditions) ? status.conditions : [];
  const readyRaw = conditions.find((c): c is Record<string, unknown> => isRecord(c) && c.type === 'Ready');
  const ready: ReadyCondition | undefined = readyRaw
    ? {
        status: intern(text(readyRaw.status) ?? 'Unknown'),
        reason: intern(text(readyRaw.reason) ?? ''),
        sinceMs: timeMs(readyRaw.lastTransitionTime),
      }
    : undefined;
  const stateChange: StateChangeRecord = {
    by: shortText(annotations[ANNOTATIONS.stateChangedBy]),
    reason: shortText(annotations[ANNOTATIONS.stateChangeReason]),
    atMs: timeMs(annotations[ANNOTATIONS.stateChangedAt]),
  };
  const generation = metadata.generation;

  return {
    ok: true,
    snapshot: {
      uid: metadata.uid as string,
      namespace: intern(metadata.namespace as string),
      name: metadata.name as string,
      resourceVersion: metadata.resourceVersion as string,
      generation:
        typeof generation === 'number' && Number.isInteger(generation) && generation >= 0 ? generation : 0,
      createdAtMs: timeMs(metadata.creationTimestamp),
      template: intern(text(spec.template) ?? ''),
      user: text(spec.user) ?? '',
      state,
      phase,
      ready,
      stateChange:
        stateChange.by === undefined && stateChange.reason === undefined && stateChange.atMs === undefined
          ? NO_STATE_CHANGE
          : stateChange,
    },
  };
}

/**
 * A Session entry's view key (`<namespace>/<name>`) from its entry key (`session.<namespace>.<name>`,
 * dots written `_`, which Kubernetes names never hold): the view then keeps this one string per
 * Session, not the entry key beside it.
 */
export function sessionViewKey(entryKey: string): string {
  const [, namespace = '', name = ''] = entryKey.split('.');
  return `${fromSubjectToken(namespace)}/${fromSubjectToken(name)}`;
}
