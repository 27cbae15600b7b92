import { type JetStreamManager, StorageType } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { explainReplicasError, jetstreamManagerFor } from './jetstream-replicas.js';
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
 *
 * A deleted object's key keeps a marker (a purge) for STATE_DELETE_MARKER_TTL, then the server
 * removes it (removeStateEntry).
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
 * How long a deleted key's marker stays in the bucket. A KV delete leaves a marker under the key
 * for good (history 1 keeps each key's last message, and the marker is that message), so without
 * one every Pod a Session ever had stayed in the bucket: a hibernate and a wake leave one, every
 * reconcile of the Session read them all (its pods are the keys under one filter), and nats-server
 * kept each as a subject of its own. With a per-message TTL on the marker (nats-server >= 2.11,
 * the stream's allow_msg_ttl; ADR-43 names KV tombstones as its motivating case) the server drops
 * it after this long. Readers take a marker and a missing key alike (not a PUT: absent); a KV
 * watch sees the marker as it is written. An hour is far beyond how far a watch of the bucket
 * lags behind it; one that ends (a lost connection, a deleted bucket) starts again from what
 * exists and reports what it no longer finds as deleted (shared-state-view.ts).
 */
export const STATE_DELETE_MARKER_TTL = '1h';

/**
 * Creates the bucket or brings its bounds up to date. Only the watcher calls this (its NATS user
 * is the only one allowed to); the others bind to it (bindBucket).
 */
export async function openStateBucket(
  nc: NatsConnection,
  maxObjectBytes?: number,
  replicas = 1,
): Promise<KV> {
  const kv = await new Kvm(nc)
    .create(BUCKETS.state, {
      history: 1,
      storage: StorageType.File,
      replicas,
      max_bytes: DEFAULT_STATE_LIMITS.maxBytes,
      maxValueSize: stateMaxValueSize(maxObjectBytes),
    })
    .catch((error: unknown) => {
      throw explainReplicasError(error, `the KV bucket ${BUCKETS.state}`, replicas);
    });
  const stream = `KV_${BUCKETS.state}`;
  await allowMessageTtl(await jetstreamManagerFor(nc, `the stream ${stream}`), stream);
  return kv;
}

/**
 * Turns on per-message TTLs (the delete markers' STATE_DELETE_MARKER_TTL) on a stream, created
 * with them or not: Kvm.create sets them only with subject delete markers, which this bucket has
 * no use for (nothing in it expires by age), and leaves an existing bucket as it finds it. The
 * server never turns the setting off again, so this is done once per bucket.
 */
export async function allowMessageTtl(jsm: JetStreamManager, stream: string): Promise<void> {
  const info = await jsm.streams.info(stream);
  if (info.config.allow_msg_ttl) return;
  await jsm.streams.update(stream, { ...info.config, allow_msg_ttl: true }).catch((error: unknown) => {
    throw new Error(
      `cannot allow per-message TTLs on the stream ${stream}, which the shared state's delete markers need (nats-server 2.11 or newer): ${(error as Error).message}`,
    );
  });
}

/**
 * Deletes a key of the shared state: a purge whose marker the server removes after `ttl` (see
 * STATE_DELETE_MARKER_TTL). Readers and watches see it as they see a delete.
 */
export function removeStateEntry(kv: KV, key: string, ttl = STATE_DELETE_MARKER_TTL): Promise<void> {
  return kv.purge(key, { ttl });
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

/** One entry as read: `operation` is PUT, or DEL/PURGE for a deleted key's marker. */
export interface StateEntry {
  key: string;
  operation: string;
  value: Uint8Array;
}

/** What SharedStateReader reads entries through: directReads of a single copy, or leaderReads of a replicated bucket. */
export interface StateEntries {
  get(key: string): Promise<{ operation: string; value: Uint8Array } | null>;
  /**
   * The entries (delete markers included) of the keys `filters` name: each a key, or a filter with
   * wildcards for every key under it. Keys that do not exist are left out.
   */
  entries(filters: string[]): Promise<StateEntry[]>;
}

/** A listing that never ends (its consumer lost on a NATS hiccup) fails the reconcile, which is retried, instead of holding its key forever. */
const LISTING_TIMEOUT_MS = 10_000;

/**
 * Reads of a bucket kept as one copy (replicas 1): its one server answers direct gets, so they are
 * as new as the watcher's acknowledged writes. Several keys and filters are read in one batched
 * direct get of the last entry of every matching key (nats-server >= 2.11), instead of a request
 * per key plus an ordered consumer created and deleted per listing: a reconcile's eight reads and
 * its pod listing were a dozen NATS round trips, most of its socket writes.
 */
export function directReads(kv: KV, jsm: JetStreamManager, bucket: string): StateEntries {
  const stream = `KV_${bucket}`;
  const prefix = `$KV.${bucket}.`;
  return {
    get: (key) => kv.get(key),
    entries(filters) {
      if (filters.length === 0) return Promise.resolve([]);
      return new Promise((resolve, reject) => {
        const found: StateEntry[] = [];
        // The callback form: the library unsubscribes its reply inbox when the batch ends (the
        // iterator form leaves it subscribed), and fails it after 5 s without an answer.
        jsm.direct
          .getLastMessagesFor(stream, {
            multi_last: filters.map((filter) => `${prefix}${filter}`),
            callback: (done, message) => {
              if (done) {
                if (done.err) reject(done.err);
                else resolve(found);
                return;
              }
              found.push({
                key: message.subject.slice(prefix.length),
                operation: message.header.get('KV-Operation') || 'PUT',
                value: message.data,
              });
            },
          })
          .catch(reject);
      });
    },
  };
}

/**
 * Reads of a bucket answered by its stream leader. A KV get is a direct get, which on a NATS
 * cluster any replica may answer, one that has not yet applied the newest write among them
 * (nats-server documents direct gets as eventually consistent). A reconcile must read state at
 * least as new as the work item that woke it: the watcher's write of it was acknowledged by the
 * leader before the item was published, so reading through the leader (the stream's message-get
 * API) keeps that rule on a cluster. A listing takes its keys from an ordered consumer of the
 * bucket and then reads each through the leader.
 */
export function leaderReads(kv: KV, jsm: JetStreamManager, bucket: string): StateEntries {
  const stream = `KV_${bucket}`;
  const get: StateEntries['get'] = async (key) => {
    const message = await jsm.streams
      .getMessage(stream, { last_by_subj: `$KV.${bucket}.${key}` })
      .catch((error: Error) => {
        if (/no message found/i.test(error.message)) return null;
        throw error;
      });
    if (!message) return null;
    return { operation: message.header?.get('KV-Operation') || 'PUT', value: message.data };
  };
  return {
    get,
    async entries(filters) {
      const listed = await Promise.all(
        filters.map(async (filter): Promise<StateEntry[]> => {
          if (!/[*>]/.test(filter)) {
            const entry = await get(filter);
            return entry ? [{ key: filter, ...entry }] : [];
          }
          const keys: string[] = [];
          const listing = await kv.keys(filter);
          const timer = setTimeout(
            () => listing.stop(new Error(`listing ${filter} took over ${LISTING_TIMEOUT_MS / 1000} s`)),
            LISTING_TIMEOUT_MS,
          );
          try {
            for await (const key of listing) keys.push(key);
          } finally {
            clearTimeout(timer);
          }
          const found: StateEntry[] = [];
          for (const key of keys) {
            const entry = await get(key);
            if (entry) found.push({ key, ...entry });
          }
          return found;
        }),
      );
      return listed.flat();
    },
  };
}

/** One object of the shared state (not a Pod: those are read by their Session). */
export interface StateRef {
  kind: Exclude<StateKind, 'pod'>;
  namespace: string;
  name: string;
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
    private readonly kv: StateEntries,
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

  /**
   * Several objects, and the Pods of one Session (by their keys under sessionPodsFilter), in one
   * read: one NATS request on a single copy (directReads). `objects` answers `refs` in order.
   */
  async read<T>(
    refs: readonly StateRef[],
    podsOf?: { namespace: string; session: string },
  ): Promise<{ objects: (T | undefined)[]; pods: T[] }> {
    const keys = refs.map((ref) => stateKey(ref.kind, ref.namespace, ref.name));
    const podsFilter = podsOf ? sessionPodsFilter(podsOf.namespace, podsOf.session) : undefined;
    const entries = await this.kv.entries(podsFilter ? [...new Set(keys), podsFilter] : [...new Set(keys)]);
    const byKey = new Map<string, StateEntry>();
    const pods: T[] = [];
    for (const entry of entries) {
      if (!entry.key.startsWith('pod.')) {
        byKey.set(entry.key, entry);
        continue;
      }
      if (!podsOf || entry.operation !== 'PUT') continue;
      const name = fromPodKey(entry.key);
      if (name === undefined) continue;
      const pod = this.decode<T>('pod', entry.key, { namespace: podsOf.namespace, name }, entry.value);
      if (pod) pods.push(pod);
    }
    const objects = refs.map((ref, i) => {
      const key = keys[i] as string;
      const entry = byKey.get(key);
      return entry?.operation === 'PUT' ? this.decode<T>(ref.kind, key, ref, entry.value) : undefined;
    });
    return { objects, pods };
  }

  /** The Pods of one Session, by their keys under sessionPodsFilter. */
  async sessionPods<T>(namespace: string, session: string): Promise<T[]> {
    return (await this.read<T>([], { namespace, session })).pods;
  }
}

/** The pod name of a pod key (the last token), back from its subject-safe form. */
function fromPodKey(key: string): string | undefined {
  const token = key.split('.')[3];
  return token ? token.replaceAll('_', '.') : undefined;
}
