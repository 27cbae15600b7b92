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
   * The object as the API server sent it, less `metadata.managedFields`: server-side apply
   * bookkeeping that no subscriber needs and that often doubles an object's size (in memory and
   * in every change event).
   */
  raw: Record<string, unknown>;
}

export type ParsedObject = { ok: true; object: KubeObject } | { ok: false; reason: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

export function parseKubeObject(raw: unknown): ParsedObject {
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
  const labels: Record<string, string> = {};
  if (isRecord(metadata.labels)) {
    for (const [key, value] of Object.entries(metadata.labels))
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
      raw: withoutManagedFields(raw, metadata),
    },
  };
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
