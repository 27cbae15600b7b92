/**
 * Compact forms of the identity fields the watcher's caches hold for every object (~60,000 at
 * 10,000 Sessions), each read back exactly as it came. In this process's V8 (no pointer
 * compression) a string costs 16 bytes of header plus its characters, rounded to 8; a number
 * beyond 31 bits is a 16-byte heap number of its own; an integer under 2^31 costs nothing beside
 * the field that holds it. BENCHMARKS.md, W5–W7, has the measurements.
 */

/** The namespaces' names, one string each: bounded by the namespaces watched. */
const namespaceNames = new Map<string, string>();

/** The one string of this namespace's name that every entry of it refers to (not 32 bytes of its own). */
export function namespaceName(namespace: string): string {
  const known = namespaceNames.get(namespace);
  if (known !== undefined) return known;
  namespaceNames.set(namespace, namespace);
  return namespace;
}

/** A decimal without a leading zero below 10^9 (so under 2^31): what etcd's revisions are for years. */
const SMALL_DECIMAL = /^[1-9][0-9]{0,8}$/;

/** A resourceVersion as an integer when it reads back as the same text, else as it came. */
export function compactVersion(resourceVersion: string): number | string {
  return SMALL_DECIMAL.test(resourceVersion) ? Number(resourceVersion) : resourceVersion;
}

export function versionText(version: number | string): string {
  return typeof version === 'number' ? String(version) : version;
}

/**
 * Where `part` (a Session's name) sits in `name` (its child's, `ss-<session>…`), as one small
 * integer (offset × 2^15 + length), when it does; else the text itself.
 */
export function compactPart(name: string, part: string | undefined): number | string | undefined {
  if (part === undefined) return undefined;
  const at = name.indexOf(part);
  return at >= 0 && at < 2 ** 15 && part.length < 2 ** 15 && part.length > 0
    ? at * 2 ** 15 + part.length
    : part;
}

export function partText(name: string, part: number | string | undefined): string | undefined {
  if (typeof part !== 'number') return part;
  const at = Math.floor(part / 2 ** 15);
  return name.slice(at, at + (part % 2 ** 15));
}

/** A UUID as Kubernetes writes them (lower-case hex): 16 bytes packed, 36 characters read back. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** The packed form's first character: what follows it. */
const PACKED_UUID = 1;
const TEXT = 0;
/** Each byte's two hex digits. */
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/**
 * A one-byte string of `numbers` (each an integer below 2^48, 6 characters) followed by `uid`
 * (16 characters when a UUID, else its text), made in one piece: a string joined with `+` would be
 * a concatenation (a 32-byte node) over its parts, not one string.
 */
export function packNumbersAndUid(numbers: readonly number[], uid: string): string {
  const codes: number[] = [];
  for (const value of numbers) {
    if (!Number.isInteger(value) || value < 0 || value >= 2 ** 48)
      throw new RangeError(`not a 48-bit integer: ${value}`);
    const high = Math.floor(value / 2 ** 24);
    const low = value % 2 ** 24;
    codes.push(high >>> 16, (high >>> 8) & 0xff, high & 0xff, low >>> 16, (low >>> 8) & 0xff, low & 0xff);
  }
  if (UUID.test(uid)) {
    codes.push(PACKED_UUID);
    const hex = uid.replaceAll('-', '');
    for (let i = 0; i < 32; i += 2) codes.push(Number.parseInt(hex.slice(i, i + 2), 16));
  } else {
    codes.push(TEXT);
    for (let i = 0; i < uid.length; i++) codes.push(uid.charCodeAt(i));
  }
  return String.fromCharCode(...codes);
}

/** The `index`th number packed by packNumbersAndUid. */
export function packedNumber(packed: string, index: number): number {
  const at = index * 6;
  const high = (packed.charCodeAt(at) << 16) | (packed.charCodeAt(at + 1) << 8) | packed.charCodeAt(at + 2);
  const low =
    (packed.charCodeAt(at + 3) << 16) | (packed.charCodeAt(at + 4) << 8) | packed.charCodeAt(at + 5);
  return high * 2 ** 24 + low;
}

/** The uid packed by packNumbersAndUid after `count` numbers, as it came. */
export function packedUid(packed: string, count: number): string {
  const at = count * 6;
  if (packed.charCodeAt(at) === TEXT) return packed.slice(at + 1);
  let uid = '';
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) uid += '-';
    uid += HEX[packed.charCodeAt(at + 1 + i)] as string;
  }
  return uid;
}
