import { StorageType } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { DEFAULT_MAX_OBJECT_BYTES } from './object-trim.js';
import { BUCKETS, subjectToken } from './subjects.js';

/**
 * The shared state: every object the platform reads, as the watcher last saw it, in one JetStream
 * KV bucket. The watcher is the only service that lists and watches the API server and the only
 * writer of this bucket; reconcilers, the idle reaper and metrics read it instead of the API server.
 *
 * Consistency rule: the watcher stores a change here BEFORE it publishes the work item or event
 * the change triggers, so whoever a trigger wakes reads state at least as new as its trigger. A
 * reader may still see newer state than its trigger, or (after a bucket loss, before the watcher
 * refilled it) no state at all: both only delay convergence, since every reconcile plans from what
 * it reads and applies idempotently, and the watcher's writes and resyncs bring the next trigger.
 *
 * Keys (KV keys follow subject rules; names are made subject-safe by subjectToken):
 * - `<kind>.<namespace>.<name>` for Sessions, Templates and the children named after a Session;
 * - `pod.<namespace>.<session>.<pod>` for Pods, under the full name of the Session they belong to,
 *   so a Session's pods are the keys under `pod.<namespace>.<session>.>`: one filtered listing, no
 *   per-Session index to keep in step (a pod belongs to one Session for its whole life: its labels
 *   come from its Deployment's pod template, whose selector cannot change).
 *
 * Values are the trimmed object (trimObject) as JSON.
 */

/** What the shared state holds, by the kind token used in its keys. */
export const STATE_KINDS = [
  'session',
  'template',
  'deployment',
  'pod',
  'service',
  'ingress',
  'networkpolicy',
  'pvc',
] as const;
export type StateKind = (typeof STATE_KINDS)[number];

/** The object kind (as in `kind:`) of each state kind. */
export const STATE_OBJECT_KINDS: Readonly<Record<StateKind, string>> = {
  session: 'Session',
  template: 'Template',
  deployment: 'Deployment',
  pod: 'Pod',
  service: 'Service',
  ingress: 'Ingress',
  networkpolicy: 'NetworkPolicy',
  pvc: 'PersistentVolumeClaim',
};

const KiB = 1024;
const MiB = 1024 * KiB;

/** Room around the object in an entry (none today; kept so the value bound never equals the object bound exactly). */
export const STATE_ENTRY_ENVELOPE_BYTES = 4 * KiB;

/**
 * The bucket's bounds. At 10,000 Sessions the state is about six objects of a few KiB each per
 * Session (~250 MiB); 1 GiB leaves room for bigger objects and for the delete markers of what
 * came and went (a deleted key keeps one small marker).
 */
export const DEFAULT_STATE_LIMITS = {
  maxBytes: 1024 * MiB,
} as const;

export function stateMaxValueSize(maxObjectBytes: number = DEFAULT_MAX_OBJECT_BYTES): number {
  return maxObjectBytes + STATE_ENTRY_ENVELOPE_BYTES;
}

/** The key of a Session, Template or Session child (not a Pod: see podStateKey). */
export function stateKey(kind: Exclude<StateKind, 'pod'>, namespace: string, name: string): string {
  return `${kind}.${subjectToken(namespace)}.${subjectToken(name)}`;
}

/** The key of a Pod that belongs to `session` (its full name, not the possibly shortened label). */
export function podStateKey(namespace: string, session: string, pod: string): string {
  return `pod.${subjectToken(namespace)}.${subjectToken(session)}.${subjectToken(pod)}`;
}

/** The keys of every Pod of one Session. */
export function sessionPodsFilter(namespace: string, session: string): string {
  return `pod.${subjectToken(namespace)}.${subjectToken(session)}.>`;
}

/** Every key of one kind, or of one kind in one namespace (a KV watch or listing filter). */
export function stateKindFilter(kind: StateKind, namespace?: string): string {
  return namespace === undefined ? `${kind}.>` : `${kind}.${subjectToken(namespace)}.>`;
}

/**
 * Creates the bucket or brings its bounds up to date. Only the watcher calls this (its NATS user
 * is the only one allowed to); the others bind to it (bindBucket).
 */
export async function openStateBucket(nc: NatsConnection, maxObjectBytes?: number): Promise<KV> {
  return new Kvm(nc).create(BUCKETS.state, {
    history: 1,
    storage: StorageType.File,
    max_bytes: DEFAULT_STATE_LIMITS.maxBytes,
    maxValueSize: stateMaxValueSize(maxObjectBytes),
  });
}

/** A Kubernetes object as stored: metadata with the fields every reader relies on. */
export interface StoredObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

export type DecodedEntry = { ok: true; object: StoredObject } | { ok: false; reason: string };

const utf8 = new TextDecoder();

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Reads one entry. Anything that is not the object the key names (not JSON, not an object,
 * another kind, name or namespace, missing identity, over the bound) is refused with a reason,
 * never thrown: the caller treats it as absent, logs and counts it, and the watcher's next write
 * or resync replaces it.
 */
export function decodeStateEntry(
  kind: StateKind,
  expected: { namespace: string; name: string },
  data: Uint8Array,
  maxBytes: number = stateMaxValueSize(),
): DecodedEntry {
  if (data.length > maxBytes)
    return { ok: false, reason: `${data.length} bytes, over the bound of ${maxBytes}` };
  let raw: unknown;
  try {
    raw = JSON.parse(utf8.decode(data));
  } catch (error) {
    return { ok: false, reason: `not JSON: ${(error as Error).message}` };
  }
  if (!isRecord(raw)) return { ok: false, reason: 'not a JSON object' };
  const metadata = raw.metadata;
  if (!isRecord(metadata)) return { ok: false, reason: 'metadata is missing' };
  for (const field of ['name', 'namespace', 'uid', 'resourceVersion'] as const)
    if (typeof metadata[field] !== 'string' || metadata[field] === '')
      return { ok: false, reason: `metadata.${field} is missing or empty` };
  if (metadata.namespace !== expected.namespace || metadata.name !== expected.name)
    return {
      ok: false,
      reason: `holds ${metadata.namespace}/${metadata.name}, not ${expected.namespace}/${expected.name}`,
    };
  if (raw.kind !== undefined && raw.kind !== STATE_OBJECT_KINDS[kind])
    return { ok: false, reason: `holds a ${String(raw.kind)}, not a ${STATE_OBJECT_KINDS[kind]}` };
  // A Session over the watcher's MAX_OBJECT_BYTES is kept as its identity only (trimObject): the
  // reconciler still says so in its status, so it is read; a Template without spec is unusable.
  if (kind === 'template' && !isRecord(raw.spec)) return { ok: false, reason: 'spec is missing' };
  if (raw.spec !== undefined && !isRecord(raw.spec)) return { ok: false, reason: 'spec is not an object' };
  return { ok: true, object: raw as StoredObject };
}

export interface StateReaderHooks {
  /** An entry could not be used (see decodeStateEntry); it was treated as absent. */
  corrupt?(key: string, reason: string): void;
}

/**
 * Typed reads of the shared state. Every value is validated; a bad one is reported and read as
 * absent (a reconcile then waits for the watcher to repair it, or plans as if it were gone —
 * server-side apply and the ownership checks make either safe).
 */
export class SharedStateReader {
  constructor(
    private readonly kv: KV,
    private readonly hooks: StateReaderHooks = {},
    private readonly maxValueBytes: number = stateMaxValueSize(),
  ) {}

  private decode<T>(
    kind: StateKind,
    key: string,
    expected: { namespace: string; name: string },
    data: Uint8Array,
  ): T | undefined {
    const decoded = decodeStateEntry(kind, expected, data, this.maxValueBytes);
    if (decoded.ok) return decoded.object as T;
    this.hooks.corrupt?.(key, decoded.reason);
    return undefined;
  }

  async get<T>(kind: Exclude<StateKind, 'pod'>, namespace: string, name: string): Promise<T | undefined> {
    const key = stateKey(kind, namespace, name);
    const entry = await this.kv.get(key);
    if (entry?.operation !== 'PUT') return undefined;
    return this.decode<T>(kind, key, { namespace, name }, entry.value);
  }

  /** The Pods of one Session, by their keys under sessionPodsFilter. */
  async sessionPods<T>(namespace: string, session: string): Promise<T[]> {
    const keys: string[] = [];
    const listing = await this.kv.keys(sessionPodsFilter(namespace, session));
    // A listing that never ends (its consumer lost on a NATS hiccup) fails the reconcile, which
    // is retried, instead of holding its key forever.
    const timer = setTimeout(() => listing.stop(new Error('listing the pods took over 10 s')), 10_000);
    try {
      for await (const key of listing) keys.push(key);
    } finally {
      clearTimeout(timer);
    }
    const pods: T[] = [];
    for (const key of keys) {
      const entry = await this.kv.get(key);
      if (entry?.operation !== 'PUT') continue;
      const name = fromPodKey(key);
      if (name === undefined) continue;
      const pod = this.decode<T>('pod', key, { namespace, name }, entry.value);
      if (pod) pods.push(pod);
    }
    return pods;
  }
}

/** The pod name of a pod key (the last token), back from its subject-safe form. */
function fromPodKey(key: string): string | undefined {
  const token = key.split('.')[3];
  return token ? token.replaceAll('_', '.') : undefined;
}
