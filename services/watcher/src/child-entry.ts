import { createHash } from 'node:crypto';
import {
  type CacheChange,
  type CachedIdentity,
  type CacheRetention,
  type KubeObject,
  parseKubeObject,
} from '@streamspace/kube';
import { ANNOTATIONS, type StateKind } from '@streamspace/shared';
import {
  compactPart,
  compactVersion,
  namespaceName,
  packedNumber,
  packedUid,
  packNumbersAndUid,
  partText,
  versionText,
} from './compact-fields.js';
import { NO_POD_SUMMARY, owningSession, podSummary } from './work-routing.js';

/** The kinds of a Session's children, whose changes may wake their Session. */
export type ChildKind = Exclude<StateKind, 'session' | 'template'>;

/** Sessions and Templates are held whole (resyncs announce them, routing reads them); children as a ChildEntry. */
export function isChildKind(kind: StateKind): kind is ChildKind {
  return kind !== 'session' && kind !== 'template';
}

/**
 * A Session's Deployment, Service, Ingress and NetworkPolicy all take its child name
 * (`ss-<session>`, sessionChildName): their four entries can share one string for it, where each
 * held a copy of its own (32 bytes for `ss-bench-1234`: ~1 MiB at 10,000 Sessions). Pods add a
 * suffix of their own, home claims are named by user.
 */
export const SHARED_NAME_KINDS: readonly ChildKind[] = ['deployment', 'service', 'ingress', 'networkpolicy'];

/**
 * The string another kind's entry (SHARED_NAME_KINDS) holds for this name in this namespace, if
 * one does: an entry takes it for its own name and the key its cache holds it by. Any equal string
 * would do; this one is already held.
 */
export type SharedNames = (namespace: string, name: string) => string | undefined;

/**
 * What the watcher keeps in memory of a Session's child (a Deployment, Pod, Service, Ingress,
 * NetworkPolicy or home PVC): its identity, the Session it belongs to, and a digest of what of it
 * can wake that Session — not its JSON. The child's trimmed JSON goes to the shared state as it
 * arrives, and that is where readers read it; held here too, it was most of the watcher's heap
 * (5 children per Session, ~3 KB each for Deployments and Pods: ~120 MB of JSON at 10,000 Sessions).
 */
export interface ChildEntry extends CachedIdentity {
  /** The Session it belongs to (owningSession), if any. */
  readonly session: string | undefined;
  /**
   * What of the child its Session's reconcile depends on (childDigest), compared across versions:
   * a 48-bit hash.
   */
  readonly digest: number;
  /** A Deployment's spec.replicas (its echo test compares it with what the Session's state asks for). */
  readonly replicas?: number | undefined;
  /** All the shared state keeps of the child but its resourceVersion, hashed (keptDigest). */
  readonly kept: number;
}

/**
 * A ChildEntry whose fields have no packed form of PackedChild's (a resourceVersion that is not a
 * small decimal, a Session not inside its name): its uid and two digests in one string of 29
 * one-byte characters (48 bytes, where the uid's text took 56 and each digest a 16-byte heap
 * number), its resourceVersion as a small integer where it can be, its Session's name as where it
 * sits in the child's own name (`ss-<session>…`) where it does, and its name the string the cache
 * keys it by. The same fields read back exactly as they came (compact-fields.ts); an entry of ~420
 * bytes became ~220 (BENCHMARKS.md, W5–W7), and every child was held so until PackedChild.
 */
class PackedChildEntry implements ChildEntry {
  readonly namespace: string;
  readonly name: string;
  readonly generation: number | undefined;
  readonly replicas: number | undefined;
  private readonly version: number | string;
  private readonly owner: number | string | undefined;
  /** digest, kept, then the uid (packNumbersAndUid). */
  private readonly packed: string;

  constructor(
    object: KubeObject,
    name: string,
    session: string | undefined,
    digest: number,
    kept: number,
    replicas: number | undefined,
  ) {
    this.namespace = namespaceName(object.namespace);
    this.name = name;
    this.generation = object.generation;
    this.replicas = replicas;
    this.version = compactVersion(object.resourceVersion);
    this.owner = compactPart(this.name, session);
    this.packed = packNumbersAndUid([digest, kept], object.uid);
  }

  get uid(): string {
    return packedUid(this.packed, 2);
  }

  get resourceVersion(): string {
    return versionText(this.version);
  }

  get session(): string | undefined {
    return partText(this.name, this.owner);
  }

  get digest(): number {
    return packedNumber(this.packed, 0);
  }

  get kept(): number {
    return packedNumber(this.packed, 1);
  }

  /** No JSON is held (the shared state has it). */
  get bytes(): number {
    return 0;
  }
}

/** An optional small integer as a packed number: 0 for none, the value + 1 otherwise. */
const NONE = 0;
const optional = (value: number | undefined): number => (value === undefined ? NONE : value + 1);
const optionalBack = (packed: number): number | undefined => (packed === NONE ? undefined : packed - 1);
/** Each packed number's place in PackedChild's string (packNumbersAndUid), then the uid. */
const DIGEST = 0;
const KEPT = 1;
const VERSION = 2;
const GENERATION = 3;
const REPLICAS = 4;
const OWNER = 5;
const NUMBERS = 6;
/** Below this, an optional number packs as itself + 1 (packNumbersAndUid takes integers under 2^48). */
const OPTIONAL_LIMIT = 2 ** 48 - 1;

/**
 * A ChildEntry as the cache holds nearly all of them, ~50,000 at 10,000 Sessions: one one-byte
 * string of its digests, resourceVersion, generation, replicas, where its Session's name sits in
 * its own, and its uid (53 characters, 72 bytes), and no object at all (the cache keeps the string
 * under the child's name, `pack`). Reading one makes this small object around the string and the
 * names the cache keys it by (`unpack`): PackedChildEntry's object of seven fields (80 bytes) and
 * its string of 29 characters (48) took 128 bytes an entry, ~6 MiB of the watcher's heap at
 * 10,000 Sessions (a heap snapshot, BENCHMARKS.md G1). A child whose fields have no such form (a
 * resourceVersion that is not a small decimal, a Session not inside its name) is held as a
 * PackedChildEntry.
 */
class PackedChild implements ChildEntry {
  constructor(
    readonly namespace: string,
    readonly name: string,
    readonly packed: string,
  ) {}

  get uid(): string {
    return packedUid(this.packed, NUMBERS);
  }

  get resourceVersion(): string {
    return String(packedNumber(this.packed, VERSION));
  }

  get generation(): number | undefined {
    return optionalBack(packedNumber(this.packed, GENERATION));
  }

  get replicas(): number | undefined {
    return optionalBack(packedNumber(this.packed, REPLICAS));
  }

  get session(): string | undefined {
    return partText(this.name, optionalBack(packedNumber(this.packed, OWNER)));
  }

  get digest(): number {
    return packedNumber(this.packed, DIGEST);
  }

  get kept(): number {
    return packedNumber(this.packed, KEPT);
  }

  /** No JSON is held (the shared state has it). */
  get bytes(): number {
    return 0;
  }
}

/** Whether an optional field's value has a packed form (absent, or an integer under the limit). */
const packable = (value: number | undefined): boolean =>
  value === undefined || (Number.isInteger(value) && value >= 0 && value < OPTIONAL_LIMIT);

/** The entry of a child: a PackedChild where every field has its packed form, else a PackedChildEntry. */
function childEntry(
  object: KubeObject,
  previous: ChildEntry | undefined,
  session: string | undefined,
  digest: number,
  kept: number,
  replicas: number | undefined,
  sharedNames: SharedNames | undefined,
): ChildEntry {
  // The cache keys the entry by its first version's name: a later version refers to that string,
  // a first version to another kind's entry's of the same name where there is one.
  const name =
    previous?.name === object.name
      ? previous.name
      : (sharedNames?.(object.namespace, object.name) ?? object.name);
  const version = compactVersion(object.resourceVersion);
  const owner = compactPart(name, session);
  if (
    typeof version === 'number' &&
    (owner === undefined || typeof owner === 'number') &&
    packable(object.generation) &&
    packable(replicas)
  )
    return new PackedChild(
      namespaceName(object.namespace),
      name,
      packNumbersAndUid(
        [digest, kept, version, optional(object.generation), optional(replicas), optional(owner)],
        object.uid,
      ),
    );
  return new PackedChildEntry(object, name, session, digest, kept, replicas);
}

/** A 48-bit hash of a text: two different specs of one object share it with odds of 2^-48. */
function hash48(text: string): number {
  return createHash('sha1').update(text).digest().readUIntBE(0, 6);
}

/**
 * A hash of everything the shared state keeps of an object (its trimmed JSON) but its
 * resourceVersion, which every update changes. The first `"resourceVersion":"…"` of the JSON is
 * metadata's (metadata comes before spec and status); were it another, the two versions'
 * metadata.resourceVersion would still differ and the change would count as one (never the
 * reverse).
 */
export function keptDigest(object: KubeObject): number {
  return hash48(object.json.replace(`"resourceVersion":${JSON.stringify(object.resourceVersion)}`, ''));
}

/**
 * An update that left what the shared state keeps of a child as it was (a Deployment's status
 * rewritten by kube-controller-manager: the status is not kept, object-trim.ts): its entry and
 * subscribers would learn nothing from it but a resourceVersion nobody compares, so it is
 * neither stored nor published, and it wakes no Session (nothing its reconcile reads changed).
 */
export function keptUnchanged(change: CacheChange<ChildEntry>): boolean {
  return (
    change.type === 'modified' &&
    change.previous !== undefined &&
    change.current !== undefined &&
    change.previous.kept === change.current.kept
  );
}

/** The digest of a pod that does not count for its Session (NO_POD_SUMMARY), or of a PVC. */
export const NO_DIGEST = 0;

/** A pod's digest: its summary (what its Session's status is made of), hashed. */
export function podDigest(raw: Record<string, unknown> | undefined): number {
  const summary = podSummary(raw);
  return summary === NO_POD_SUMMARY ? NO_DIGEST : hash48(summary);
}

/**
 * A child's digest: a pod's summary (what its Session's status is made of), a PVC's nothing (no
 * change of a claim wakes its Session), another child's spec — a Deployment's without replicas,
 * which are compared by themselves — as a hash.
 */
export function childDigest(kind: ChildKind, raw: Record<string, unknown>): number {
  switch (kind) {
    case 'pod':
      return podDigest(raw);
    case 'pvc':
      return NO_DIGEST;
    case 'deployment': {
      const { replicas: _replicas, ...rest } = (raw.spec ?? {}) as Record<string, unknown>;
      return hash48(JSON.stringify(rest));
    }
    default:
      return hash48(JSON.stringify(raw.spec ?? null));
  }
}

/**
 * The cache retention of a child kind: keep a ChildEntry; stand in for a child that is gone (a
 * deletion a relist found) with its identity and the Session it belonged to, which is what such a
 * deletion is routed and published with. `sharedNames` finds a string for the child's name that
 * another cache already holds (SHARED_NAME_KINDS).
 */
export function childRetention(
  kind: ChildKind,
  type: { apiVersion: string; objectKind: string },
  sharedNames?: SharedNames,
): CacheRetention<ChildEntry> {
  return {
    retain(object, previous) {
      const raw = object.raw;
      const replicas =
        kind === 'deployment' ? (raw.spec as { replicas?: unknown } | undefined)?.replicas : undefined;
      return childEntry(
        object,
        previous,
        owningSession(object),
        childDigest(kind, raw),
        keptDigest(object),
        typeof replicas === 'number' ? replicas : undefined,
        sharedNames,
      );
    },
    // The cache holds a PackedChild as its string alone.
    pack: (entry) => (entry instanceof PackedChild ? entry.packed : entry),
    unpack: (namespace, name, packed) =>
      typeof packed === 'string' ? new PackedChild(namespace, name, packed) : (packed as ChildEntry),
    restore(entry) {
      const parsed = parseKubeObject({
        apiVersion: type.apiVersion,
        kind: type.objectKind,
        metadata: {
          namespace: entry.namespace,
          name: entry.name,
          uid: entry.uid,
          resourceVersion: entry.resourceVersion,
          ...(entry.generation !== undefined ? { generation: entry.generation } : {}),
          ...(entry.session ? { annotations: { [ANNOTATIONS.session]: entry.session } } : {}),
        },
      });
      // Built from fields that were valid when the entry was made: it always parses.
      if (!parsed.ok)
        throw new Error(`cannot restore ${kind} ${entry.namespace}/${entry.name}: ${parsed.reason}`);
      return parsed.object;
    },
  };
}
