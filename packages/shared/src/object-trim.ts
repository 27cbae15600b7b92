import { ANNOTATIONS, LABELS } from './labels.js';
import type { StateKind } from './shared-state.js';

/**
 * What of a watched object the platform keeps in memory and shares (change events, and later the
 * shared informer's cache): the object less what nobody in StreamSpace reads, within a size bound
 * per object. A user controls a Session's annotations and labels (up to 256 KiB of annotations,
 * more of labels), so without this one tenant's objects could fill the watcher's heap and the
 * events stream. Pure: object in, trimmed object out, so any cache or informer can use it as its
 * transform hook.
 */

/**
 * The annotations StreamSpace components read, by kind of object. Every other annotation is
 * dropped (`kubectl.kubernetes.io/last-applied-configuration` above all: a second copy of the
 * whole object, user annotations included). Add a key here when a component starts reading it
 * from shared state.
 */
export const KEPT_ANNOTATIONS: Readonly<Record<StateKind, readonly string[]>> = {
  // The metrics service counts hibernations by who and why (transition-tracker.ts).
  session: [
    ANNOTATIONS.stateChangedBy,
    ANNOTATIONS.stateChangeReason,
    ANNOTATIONS.stateChangedAt,
    ANNOTATIONS.reaperDisabled,
  ],
  template: [],
  // The reconciler's pod template snapshot and bookkeeping on the Deployments it creates; on
  // every child what it applies, so it can tell from the shared state that nothing changed.
  deployment: [ANNOTATIONS.user, ANNOTATIONS.session, ANNOTATIONS.templateGeneration, ANNOTATIONS.podTemplate],
  pod: [ANNOTATIONS.user, ANNOTATIONS.session],
  service: [ANNOTATIONS.user, ANNOTATIONS.session],
  ingress: [ANNOTATIONS.user, ANNOTATIONS.session],
  networkpolicy: [ANNOTATIONS.user, ANNOTATIONS.session],
  // Whose home a claim is (child-ownership.ts).
  pvc: [ANNOTATIONS.user],
};

/**
 * Annotation prefixes kept as well: the ingress controller's settings the reconciler writes on
 * its Ingresses (external auth, desktop-access.ts), compared with what it would apply.
 */
export const KEPT_ANNOTATION_PREFIXES: Readonly<Partial<Record<StateKind, readonly string[]>>> = {
  ingress: ['nginx.ingress.kubernetes.io/', 'cert-manager.io/'],
};

/**
 * Top-level fields no component reads, by kind. A Deployment's status: a Session's phase follows
 * its pods, never its Deployment's replica counts, and kube-controller-manager rewrites that status
 * two or three times after every create, hibernate and wake. Kept, each rewrite was stored and
 * published whole (measured in the 1,000-Session bench, BENCHMARKS.md R22–R23); without it such a
 * rewrite leaves the kept object as it was, and the watcher stores and publishes nothing for it.
 */
export const UNREAD_FIELDS: Readonly<Partial<Record<StateKind, readonly string[]>>> = {
  deployment: ['status'],
};

/** Labels the platform sets and routes on; the only ones kept by an object that is over its bound. */
const PLATFORM_LABELS: readonly string[] = Object.values(LABELS);

/** Metadata that identifies an object and its lifecycle: kept whatever the size. */
const IDENTITY_METADATA = [
  'name',
  'namespace',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
] as const;

/** The default bound on one trimmed object, as JSON bytes. */
export const DEFAULT_MAX_OBJECT_BYTES = 64 * 1024;

/**
 * How far an object had to be cut:
 * - `trimmed`: only what nobody reads was dropped (managedFields, unread annotations);
 * - `reduced`: still over the bound, so all labels but the platform's, all annotations,
 *   finalizers and ownerReferences went too; spec and status are whole;
 * - `identity`: even spec and status were over the bound; only the identity metadata is left.
 */
export type TrimLevel = 'trimmed' | 'reduced' | 'identity';

export interface TrimmedObject {
  object: Record<string, unknown>;
  /**
   * `object` as JSON: measuring the size serialises it anyway, and a cache that keeps this
   * string instead of the parsed object holds about half the heap (see kube-object.ts).
   */
  json: string;
  /** JSON size of `object` in bytes (UTF-8), what a cache or a message carries. */
  bytes: number;
  level: TrimLevel;
  /** JSON size of the object after the first trim, when that was over the bound (for the log line). */
  oversizeBytes?: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The JSON of an object and its size in bytes (UTF-8). */
function serialised(value: Record<string, unknown>): { json: string; bytes: number } {
  const json = JSON.stringify(value) ?? '';
  return { json, bytes: Buffer.byteLength(json, 'utf8') };
}

function pick(
  source: unknown,
  keys: readonly string[],
  prefixes: readonly string[] = [],
): Record<string, string> | undefined {
  if (!isRecord(source)) return undefined;
  const kept: Record<string, string> = {};
  let any = false;
  for (const key of keys) {
    const value = source[key];
    if (typeof value === 'string') {
      kept[key] = value;
      any = true;
    }
  }
  if (prefixes.length > 0)
    for (const [key, value] of Object.entries(source))
      if (typeof value === 'string' && prefixes.some((prefix) => key.startsWith(prefix))) {
        kept[key] = value;
        any = true;
      }
  return any ? kept : undefined;
}

/** The object without its kind's UNREAD_FIELDS (the object itself when it has none). */
function readFields(kind: StateKind, raw: Record<string, unknown>): Record<string, unknown> {
  const unread = UNREAD_FIELDS[kind];
  if (!unread) return raw;
  const kept: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(raw)) if (!unread.includes(field)) kept[field] = value;
  return kept;
}

function identityMetadata(metadata: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of IDENTITY_METADATA) if (metadata[key] !== undefined) out[key] = metadata[key];
  return out;
}

/**
 * The object without what nobody reads, cut further when it is still over `maxBytes` (see
 * TrimLevel). Never throws; the input is not modified. A non-object comes back as it is at level
 * `trimmed` (the caller rejects it as malformed).
 */
export function trimObject(
  kind: StateKind,
  raw: Record<string, unknown>,
  maxBytes: number = DEFAULT_MAX_OBJECT_BYTES,
): TrimmedObject {
  const metadata = isRecord(raw.metadata) ? raw.metadata : {};
  const { managedFields: _managed, annotations, ...restMetadata } = metadata;
  const keptAnnotations = pick(annotations, KEPT_ANNOTATIONS[kind], KEPT_ANNOTATION_PREFIXES[kind]);
  const read = readFields(kind, raw);
  const trimmed: Record<string, unknown> = {
    ...read,
    metadata: { ...restMetadata, ...(keptAnnotations ? { annotations: keptAnnotations } : {}) },
  };
  const first = serialised(trimmed);
  const trimmedBytes = first.bytes;
  if (trimmedBytes <= maxBytes) return { object: trimmed, ...first, level: 'trimmed' };

  const { metadata: _metadata, ...body } = read;
  const labels = pick(metadata.labels, PLATFORM_LABELS);
  const reduced: Record<string, unknown> = {
    ...body,
    metadata: { ...identityMetadata(metadata), ...(labels ? { labels } : {}) },
  };
  const second = serialised(reduced);
  if (second.bytes <= maxBytes)
    return { object: reduced, ...second, level: 'reduced', oversizeBytes: trimmedBytes };

  const identity: Record<string, unknown> = {
    ...(typeof raw.apiVersion === 'string' ? { apiVersion: raw.apiVersion } : {}),
    ...(typeof raw.kind === 'string' ? { kind: raw.kind } : {}),
    metadata: { ...identityMetadata(metadata), ...(labels ? { labels } : {}) },
  };
  return { object: identity, ...serialised(identity), level: 'identity', oversizeBytes: trimmedBytes };
}
