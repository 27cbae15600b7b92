import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { CacheRetention, KubeObject } from '@streamspace/kube';
import { SESSION_STATES, type SessionState } from '@streamspace/shared';
import {
  compactVersion,
  namespaceName,
  packedUid,
  packNumbersAndUid,
  versionText,
} from './compact-fields.js';

/**
 * What a trimmed Session says in every cluster: its field names and the values most share. Deflate
 * refers back to it instead of spelling each Session's out, so a Session of ~930 bytes of JSON
 * keeps about a tenth of that (measured on a bench run's Session). Used in this process only,
 * never stored or sent: any text would do, this one only makes the entries small.
 */
const SESSION_DICTIONARY = Buffer.from(
  JSON.stringify({
    apiVersion: 'stream.streamspace.io/v1alpha1',
    kind: 'Session',
    metadata: {
      creationTimestamp: '2026-01-01T00:00:00Z',
      generation: 1,
      name: '',
      namespace: '',
      resourceVersion: '',
      uid: '',
    },
    spec: {
      idleTimeout: '30m',
      maxSessionDuration: '8h',
      persistentHome: false,
      state: 'running',
      template: '',
      user: '@example.com',
    },
    status: {
      conditions: [
        {
          lastTransitionTime: '2026-01-01T00:00:00.000Z',
          message: 'Pod ss- is ready',
          observedGeneration: 1,
          reason: 'PodReady',
          status: 'True',
          type: 'Ready',
        },
        {
          lastTransitionTime: '2026-01-01T00:00:00.000Z',
          message: 'Using template ""',
          observedGeneration: 1,
          reason: 'TemplateFound',
          status: 'True',
          type: 'TemplateResolved',
        },
      ],
      lastActivity: '2026-01-01T00:00:00.000Z',
      observedGeneration: 1,
      phase: 'Running',
      podName: 'ss-',
      url: 'http://.streamspace.localhost/',
    },
  }),
);

/**
 * zlib's state sized for entries of about a kilobyte: a 2 KiB window (the dictionary, ~1.1 KB, fits
 * it) and memLevel 2, so each deflate sets up ~10 KB of state instead of the defaults' ~270 KB (a
 * 32 KiB window, memLevel 8), and an inflate a 2 KiB window instead of 32 KiB. Packing a Session
 * is once per version of it, three per user change: the deflate was 4.7% of the watcher's samples
 * in the 1,000-Session bench (BENCHMARKS.md, C1), and its output is as small (202 bytes for a
 * bench Session either way). Larger Sessions still pack, only with less gain.
 *
 * Each call also allocates its output buffer, natively, of `chunkSize` bytes (16 KiB by default),
 * freed only when V8 collects the Buffer: 1 KiB takes a deflated Session (~130–200 bytes) and
 * 2 KiB its JSON (~1 KB); a larger one is read in several chunks and joined. The 16 KiB blocks of
 * the 10,000 Sessions a watcher deflates at its start, and inflates at each resync, left glibc's
 * heap larger (`node --max-semi-space-size=1 --optimize-for-size bench/zlib-chunk-memory.mjs
 * <deflate|inflate> <chunkSize>`: 10,000 deflates peaked at 63.8–64.2 MiB resident with 16 KiB,
 * 56.3–56.4 with 1 KiB; 30,000 inflates at 72.7–73.3 with 16 KiB, 60.0–60.6 with 2 KiB).
 */
const DEFLATE_OPTIONS = { dictionary: SESSION_DICTIONARY, windowBits: 11, memLevel: 2, chunkSize: 1024 } as const;
const INFLATE_OPTIONS = { dictionary: SESSION_DICTIONARY, windowBits: 11, chunkSize: 2048 } as const;

const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * PackedSession's one string: a flags character (STRIPPED), the length of the packed uid in three
 * characters (any uid an object can carry), the packed uid (packNumbersAndUid), then the deflated
 * JSON. One string, where the packed uid was a string of its own (40 bytes) and it and the flag
 * each took a field (8 bytes): the Sessions' cache at 10,000 takes 3.56–3.67 MiB of heap against
 * 3.76–3.98 before (six runs each of `node --expose-gc bench/watcher-cache-memory.mjs 10000 packed
 * session`, with the `declare`d fields below).
 */
const STRIPPED = 1;
const UID_AT = 4;
/** A character latin1 cannot write as it is: a packed uid with one would not read back. */
const BEYOND_ONE_BYTE = /[\u0100-\uffff]/;

/**
 * The identity fields a Session's JSON repeats from the entry's own fields, as `"key":` and the
 * value's JSON text: left out of what is deflated (`"key":""` stands in the JSON instead) and put
 * back on inflating. Their values differ in every Session (a uid's 36 random characters), so the
 * dictionary cannot shorten them: a bench Session deflated to 166 bytes with them, 126 without
 * (BENCHMARKS.md, W8–W13).
 */
function identityFields(entry: {
  name: string;
  namespace: string;
  uid: string;
  resourceVersion: string;
}): [string, string][] {
  return [
    ['"name":', JSON.stringify(entry.name)],
    ['"namespace":', JSON.stringify(entry.namespace)],
    ['"resourceVersion":', JSON.stringify(entry.resourceVersion)],
    ['"uid":', JSON.stringify(entry.uid)],
  ];
}

/** `json` with each field's first `"key":value` emptied to `"key":""`. */
function withoutIdentity(json: string, fields: [string, string][]): string {
  let text = json;
  for (const [key, value] of fields) text = text.replace(key + value, `${key}""`);
  return text;
}

/**
 * The reverse of withoutIdentity, which it is only where each field's first `"key":""` is the one
 * withoutIdentity emptied: a Session whose JSON already held `"name":""` before its name (an empty
 * annotation called `name`) is packed whole (PackedSession checks).
 */
function withIdentity(stripped: string, fields: [string, string][]): string {
  let text = stripped;
  // A function, not a replacement string: a `$` in a value would be read as a pattern.
  for (const [key, value] of fields) text = text.replace(`${key}""`, () => key + value);
  return text;
}

/** spec.state as one of the shared literals (not a string of its own per Session), if valid. */
function stateOf(raw: Record<string, unknown>): SessionState | undefined {
  const state = (raw.spec as { state?: unknown } | undefined)?.state;
  return SESSION_STATES.find((s) => s === state);
}

/**
 * A Session as the watcher's cache keeps it: what it keys and routes on as fields, its trimmed JSON
 * deflated against SESSION_DICTIONARY and held as a one-byte string (no Buffer object per entry).
 * `json` and `raw` give back the object exactly; they are read when a Session is written again
 * (a rebuild of the shared state, a resync's announcement) and on a Deployment's change (the
 * Session's spec.state), a few times per Session, where its JSON was held for its whole life: at
 * 10,000 Sessions that JSON was 13.3 MiB of the watcher's heap (bench/watcher-cache-memory.mjs).
 */
class PackedSession implements KubeObject {
  readonly namespace: string;
  readonly name: string;
  readonly generation: number | undefined;
  readonly labels: Readonly<Record<string, string>>;
  // `declare`: set on the few entries that have them, not a field (8 bytes) on every one.
  declare readonly oversize?: KubeObject['oversize'];
  /** The uid's text where its packed form is not all one-byte characters (no uid Kubernetes makes). */
  private declare readonly textUid?: string;
  /** The resourceVersion as a small integer where it can be (compact-fields.ts). */
  private readonly version: number | string;
  /**
   * spec.state, kept beside the packed JSON: every change of a Session's Deployment asks for it
   * (its echo test), and inflating and parsing the whole Session for it took about 3% of the
   * watcher's CPU in the 1,000-Session bench (R22–R23 in BENCHMARKS.md).
   */
  readonly state: SessionState | undefined;
  /** Flags, the uid and the deflated JSON (UID_AT): the JSON lacks the identity fields when STRIPPED. */
  private readonly packed: string;

  constructor(object: KubeObject, previous: KubeObject | undefined) {
    this.namespace = namespaceName(object.namespace);
    // The cache keys the entry by its first version's name: a later version refers to that string.
    this.name = previous?.name === object.name ? previous.name : object.name;
    this.version = compactVersion(object.resourceVersion);
    this.generation = object.generation;
    // Most Sessions have none: one shared empty object, not 56 bytes each.
    this.labels = Object.keys(object.labels).length > 0 ? object.labels : NO_LABELS;
    if (object.oversize) this.oversize = object.oversize;
    this.state = stateOf(object.raw);
    const fields = identityFields(object);
    // Nearly every Session's JSON: withoutIdentity is undone exactly only where no field was empty before.
    const emptied = withoutIdentity(object.json, fields);
    const stripped = withIdentity(emptied, fields) === object.json;
    const deflated = deflateRawSync(stripped ? emptied : object.json, DEFLATE_OPTIONS);
    let uid = packNumbersAndUid([], object.uid);
    if (BEYOND_ONE_BYTE.test(uid)) {
      this.textUid = object.uid;
      uid = '';
    }
    // Made as bytes and read as one string: joined with `+` it would be a concatenation over its parts.
    const bytes = Buffer.allocUnsafe(UID_AT + uid.length + deflated.length);
    bytes[0] = stripped ? STRIPPED : 0;
    bytes.writeUIntBE(uid.length, 1, UID_AT - 1);
    bytes.write(uid, UID_AT, 'latin1');
    deflated.copy(bytes, UID_AT + uid.length);
    // latin1 maps each byte to one character and back, whatever the byte.
    this.packed = bytes.toString('latin1');
  }

  /** Where the deflated JSON begins in `packed`: after the flags, the uid's length and the uid. */
  private get deflatedAt(): number {
    const p = this.packed;
    return UID_AT + ((p.charCodeAt(1) << 16) | (p.charCodeAt(2) << 8) | p.charCodeAt(3));
  }

  get uid(): string {
    return this.textUid ?? packedUid(this.packed.slice(UID_AT, this.deflatedAt), 0);
  }

  get resourceVersion(): string {
    return versionText(this.version);
  }

  /** The packed string's length: what the entry holds in memory of the object beside its fields. */
  get bytes(): number {
    return this.packed.length;
  }

  get json(): string {
    const deflated = Buffer.from(this.packed, 'latin1').subarray(this.deflatedAt);
    const json = inflateRawSync(deflated, INFLATE_OPTIONS).toString('utf8');
    return this.packed.charCodeAt(0) & STRIPPED ? withIdentity(json, identityFields(this)) : json;
  }

  get raw(): Record<string, unknown> {
    return JSON.parse(this.json) as Record<string, unknown>;
  }
}

/** A cached Session's spec.state (read from its JSON when it is not packed). */
export function sessionState(session: KubeObject): SessionState | undefined {
  return session instanceof PackedSession ? session.state : stateOf(session.raw);
}

/** The watcher's cache retention of Sessions: each kept packed (PackedSession), whole on demand. */
export const PACKED_SESSIONS: CacheRetention<KubeObject> = {
  retain: (object, previous) => new PackedSession(object, previous),
  restore: (entry) => entry,
};
