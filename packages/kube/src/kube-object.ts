import type { TrimLevel, TrimmedObject } from '@streamspace/shared';

/**
 * The few fields of a Kubernetes object an informer keys and routes on, read defensively from whatever
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
   * The object as the API server sent it, through the informer's transform (the watcher's:
   * trimObject, which drops `metadata.managedFields` — server-side apply bookkeeping that often
   * doubles an object's size —, the annotations no StreamSpace component reads, and cuts further
   * when still over the per-object bound), as JSON. This is what the cache holds, what every
   * change carries and what the watcher stores and publishes as it is, never serialised again.
   */
  json: string;
  /**
   * `json` parsed. Parsed on each read once the informer has handed the change on: held parsed,
   * 1,000 Sessions' objects took twice the heap of their JSON (28.6 MB against 14.1 MB for 5,935
   * objects of a 1,000-Session bench run), and the watcher reads few of them after their change.
   */
  readonly raw: Record<string, unknown>;
  /** JSON size of `raw` in bytes. */
  bytes: number;
  /** Set when the object was over the bound and lost more than what nobody reads. */
  oversize?: { level: Exclude<TrimLevel, 'trimmed'>; bytes: number };
}

/** A KubeObject that keeps its parsed form only until the informer has reported its change. */
class TrimmedKubeObject implements KubeObject {
  private parsed: Record<string, unknown> | undefined;
  readonly oversize?: { level: Exclude<TrimLevel, 'trimmed'>; bytes: number };

  constructor(
    readonly namespace: string,
    readonly name: string,
    readonly uid: string,
    readonly resourceVersion: string,
    readonly generation: number | undefined,
    readonly labels: Readonly<Record<string, string>>,
    readonly json: string,
    readonly bytes: number,
    parsed: Record<string, unknown>,
    oversize: KubeObject['oversize'],
  ) {
    this.parsed = parsed;
    if (oversize) this.oversize = oversize;
  }

  get raw(): Record<string, unknown> {
    return this.parsed ?? (JSON.parse(this.json) as Record<string, unknown>);
  }

  forgetParsed(): void {
    this.parsed = undefined;
  }
}

/**
 * Lets go of the parsed form of an object (its JSON stays): the informer calls it once the change
 * that brought the object has been handed on, so the cache holds strings, not object trees.
 */
export function forgetParsed(object: KubeObject): void {
  if (object instanceof TrimmedKubeObject) object.forgetParsed();
}

/**
 * What an informer keeps of each object: drop what nobody reads before it is cached, so the cache
 * stays small. The watcher passes `(raw) => trimObject(kind, raw, maxBytes)`.
 */
export type ObjectTransform = (raw: Record<string, unknown>) => TrimmedObject;

export type ParsedObject = { ok: true; object: KubeObject } | { ok: false; reason: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

/** Reads and transforms one object. Without a transform only managedFields are dropped. */
export function parseKubeObject(raw: unknown, transform?: ObjectTransform): ParsedObject {
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
  const trimmed: TrimmedObject = transform ? transform(raw) : untrimmed(raw, metadata);
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
    object: new TrimmedKubeObject(
      metadata.namespace as string,
      metadata.name as string,
      metadata.uid as string,
      metadata.resourceVersion as string,
      generation as number | undefined,
      labels,
      trimmed.json,
      trimmed.bytes,
      kept,
      trimmed.level !== 'trimmed' && trimmed.oversizeBytes !== undefined
        ? { level: trimmed.level, bytes: trimmed.oversizeBytes }
        : undefined,
    ),
  };
}

function untrimmed(raw: Record<string, unknown>, metadata: Record<string, unknown>): TrimmedObject {
  const object = withoutManagedFields(raw, metadata);
  const json = JSON.stringify(object);
  return { object, json, level: 'trimmed', bytes: Buffer.byteLength(json, 'utf8') };
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
