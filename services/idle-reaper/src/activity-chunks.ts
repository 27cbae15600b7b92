/**
 * The format of the activity bucket: each reaper replica stores the latest activity of the
 * Sessions it received reports for in a few entries of its own, each holding many Sessions'
 * times, instead of one entry per Session.
 *
 * Why: one entry per Session cost one compare-and-set write per reporting Session per flush
 * (≈330/s at 10,000 Sessions) and, through the bucket watch, as many entries delivered back to
 * every replica, most of the reaper's CPU. Packed, the same flush is a few hundred writes of at
 * most the bucket's value size (≈40 Sessions each), and no compare-and-set is needed: each
 * replica writes only its own keys, `<namespace>._chunk.<writer>.<n>`. Readers take, per
 * Session, the latest time over every entry (their own, other replicas', a dead replica's until
 * it expires), so a time can never move back whichever entry is read last.
 *
 * `_` cannot occur in a Kubernetes name, so no Session's key (`<namespace>.<name>`) looks like a
 * chunk's. Entries of the former format (one per Session, `{"at":"<ISO time>"}` under the
 * Session's key) are still read, so an upgrade loses nothing; they expire with the bucket's TTL.
 */

/** The second token of a chunk's key. */
export const CHUNK_TOKEN = '_chunk';

export function chunkKey(namespace: string, writer: string, index: number): string {
  return `${namespace}.${CHUNK_TOKEN}.${writer}.${index}`;
}

/** The writer of a chunk key; undefined for any other key. */
export function chunkWriter(key: string): string | undefined {
  const parts = key.split('.');
  return parts.length === 4 && parts[1] === CHUNK_TOKEN ? parts[2] : undefined;
}

/** The namespace and name of a Session key (`<namespace>.<name>`: a namespace holds no dot). */
export function splitSessionKey(key: string): [namespace: string, name: string] {
  const dot = key.indexOf('.');
  return [key.slice(0, dot), key.slice(dot + 1)];
}

const CHUNK_OPEN = '{"t":{';
const CHUNK_CLOSE = '}}';

/** The stored form of one Session's time in a chunk. */
function chunkItem(name: string, at: number): string {
  return `${JSON.stringify(name)}:${Math.floor(at)}`;
}

/**
 * The bytes one Session takes in a chunk, separator included: its name and a 13-digit time
 * (milliseconds since 1970 have 13 digits until the year 2286).
 */
export function chunkItemBytes(name: string): number {
  return JSON.stringify(name).length + 1 + 13 + 1;
}

/** The bytes a chunk takes beyond its Sessions' items. */
export const CHUNK_OVERHEAD = CHUNK_OPEN.length + CHUNK_CLOSE.length;

/**
 * Whether a Session's time fits in a chunk of `maxBytes` at all (a name of Kubernetes' maximum
 * length, 253, does not fit in a 256-byte value): one that does not is kept in memory only.
 */
export function fitsInChunk(name: string, maxBytes: number): boolean {
  return CHUNK_OVERHEAD + chunkItemBytes(name) <= maxBytes;
}

/**
 * The value of one chunk: the times of the Sessions (of one namespace) it holds. Within
 * `CHUNK_OVERHEAD` + the sum of their `chunkItemBytes`.
 */
export function encodeChunk(times: Iterable<[name: string, at: number]>): string {
  const items: string[] = [];
  for (const [name, at] of times) items.push(chunkItem(name, at));
  return CHUNK_OPEN + items.join(',') + CHUNK_CLOSE;
}

const utf8 = new TextDecoder();

/**
 * The Session times an entry holds, as `[sessionKey, at]`: many for a chunk, one for an entry of
 * the former format; none for a value that is neither (nothing to learn from it).
 */
export function decodeEntry(key: string, value: Uint8Array): [key: string, at: number][] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(value));
  } catch {
    return [];
  }
  if (typeof parsed !== 'object' || parsed === null) return [];
  const writer = chunkWriter(key);
  if (writer === undefined) {
    const at = (parsed as { at?: unknown }).at;
    const ms = typeof at === 'string' ? Date.parse(at) : Number.NaN;
    return Number.isFinite(ms) ? [[key, ms]] : [];
  }
  const times = (parsed as { t?: unknown }).t;
  if (typeof times !== 'object' || times === null) return [];
  const namespace = key.slice(0, key.indexOf('.'));
  const out: [string, number][] = [];
  for (const [name, at] of Object.entries(times as Record<string, unknown>))
    if (typeof at === 'number' && Number.isFinite(at)) out.push([`${namespace}.${name}`, at]);
  return out;
}
