import { type StateKind, type TrimLevel, type TrimmedObject, trimObject } from '@streamspace/shared';

/**
 * The few fields of a Kubernetes object the watcher routes on, read defensively from whatever
 * JSON the API server (or a misbehaving proxy) sent. Anything without them cannot be keyed,
 * deduplicated or routed, so it is reported as malformed instead of half-processed.
 */
export interface KubeObject {
  namespace: string;
  name: string;
  uid: string;
  resourceVersion: string;
  generation: number | undefined;
  labels: Readonly<Record<string, string>>;
  /**
   * The object as the API server sent it, trimmed (trimObject): less `metadata.managedFields`
   * (server-side apply bookkeeping that often doubles an object's size), less the annotations no
   * StreamSpace component reads, and cut further when still over the per-object bound. This is
   * what the cache holds and every change event carries.
   */
  raw: Record<string, unknown>;
  /** JSON size of `raw` in bytes. */
  bytes: number;
  /** Set when the object was over the bound and lost more than what nobody reads. */
  oversize?: { level: Exclude<TrimLevel, 'trimmed'>; bytes: number };
}

/** How objects are trimmed before they are kept (see trimObject). */
export interface TrimOptions {
  kind: StateKind;
  maxBytes: number;
}

export type ParsedObject = { ok: true; object: KubeObject } | { ok: false; reason: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

/**
 * Reads and trims one object. Without `trim` only managedFields are dropped (what the kind-less
 * callers and tests need); the watcher always passes its kind and bound.
 */
export function parseKubeObject(raw: unknown, trim?: TrimOptions): ParsedObject {
  if (!isRecord(raw)) return { ok: false, reason: 'not a JSON object' };
  const metadata = raw.metadata;
  if (!isRecord(metadata)) return { ok: false, reason: 'metadata is missing' };
  for (const field of ['namespace', 'name', 'uid', 'resourceVersion'] as const) {
    if (!nonEmptyString(metadata[field]))
      return { ok: false, reason: `metadata.${field} is missing or empty` };
  }
  const generation = metadata.generation;
  if (generation !== undefined && !(Number.isInteger(generation) && (generation as number) >= 0)) {
    return { ok: false, reason: 'metadata.generation is not a non-negative integer' };
  }
  const trimmed: TrimmedObject = trim ? trimObject(trim.kind, raw, trim.maxBytes) : untrimmed(raw, metadata);
  const kept = trimmed.object;
  // Labels as kept: an oversized object keeps only the platform's, so the cache stays bounded.
  const keptMetadata = kept.metadata as Record<string, unknown>;
  const labels: Record<string, string> = {};
  if (isRecord(keptMetadata.labels)) {
    for (const [key, value] of Object.entries(keptMetadata.labels))
      if (typeof value === 'string') labels[key] = value;
  }
  return {
    ok: true,
    object: {
      namespace: metadata.namespace as string,
      name: metadata.name as string,
      uid: metadata.uid as string,
      resourceVersion: metadata.resourceVersion as string,
      generation: generation as number | undefined,
      labels,
      raw: kept,
      bytes: trimmed.bytes,
      ...(trimmed.level !== 'trimmed' && trimmed.oversizeBytes !== undefined
        ? { oversize: { level: trimmed.level, bytes: trimmed.oversizeBytes } }
        : {}),
    },
  };
}

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value), 'utf8');
}

function untrimmed(raw: Record<string, unknown>, metadata: Record<string, unknown>): TrimmedObject {
  const object = withoutManagedFields(raw, metadata);
  return { object, level: 'trimmed', bytes: jsonBytes(object) };
}

function withoutManagedFields(
  raw: Record<string, unknown>,
  metadata: Record<string, unknown>,
): Record<string, unknown> {
  if (!('managedFields' in metadata)) return raw;
  const { managedFields: _dropped, ...rest } = metadata;
  return { ...raw, metadata: rest };
}

/** `namespace/name`: the cache key of a namespaced object. */
export function objectKeyOf(object: { namespace: string; name: string }): string {
  return `${object.namespace}/${object.name}`;
}

/** `spec.template` of a Session, if it names one. */
export function sessionTemplateName(object: KubeObject): string | undefined {
  const spec = object.raw.spec;
  if (!isRecord(spec)) return undefined;
  return nonEmptyString(spec.template) ? spec.template : undefined;
}
