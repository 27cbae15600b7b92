import { createHash } from 'node:crypto';

/**
 * How StreamSpace names the Kubernetes objects it creates.
 *
 * A user name (`spec.user` of a Session) is free text chosen by an identity provider:
 * `alice@example.com`, `Bob_Smith`, `josé`. Kubernetes object names and label values cannot hold
 * most of that, so each user maps to a *user slug*:
 *
 *   slug(user) = <readable part> "-" <first 16 hex digits (64 bits) of sha256(user as UTF-8)>
 *
 * where the readable part is the user name lower-cased, accents stripped, every run of characters
 * other than [a-z0-9] replaced by one "-", trimmed of "-" and cut to 30 characters (or `user` when
 * nothing is left). `alice@example.com` → `alice-example-com-ff8d9819fc0e12bf`. The hash is taken
 * over the raw, unmodified user name, so users whose readable parts coincide (`Alice@example.com`
 * and `alice@example.com`, `a.b` and `a_b`, `jose` and `josé`) still get different slugs. The
 * readable part is for people only: anyone can pick a user name with the same readable part as
 * someone else's, so the hash keeps homes apart: 64 bits put a chosen collision at ~2^64 hashes
 * (32 bits, the length before, fall in a second on a GPU), and the reconciler mounts a claim only
 * when its owner annotation names the user. The slug is a DNS-1123 label of
 * at most 47 characters, so it is a valid object name and label value, and it leaves room for a
 * prefix (`home-<slug>` ≤ 52).
 */

export const DNS1123_LABEL_MAX_LENGTH = 63;
export const DNS1123_SUBDOMAIN_MAX_LENGTH = 253;

/** Longest readable part kept from a user name. */
export const USER_SLUG_READABLE_MAX = 30;
/** Hex digits of sha256 appended to every slug (64 bits). */
export const USER_SLUG_HASH_LENGTH = 16;
/**
 * Hex digits of the user slugs of releases before 64-bit user hashes (homes named then are still
 * found: see legacyHomeClaimName).
 */
export const SHORT_HASH_LENGTH = 8;
/** Upper bound of userSlug(...).length. */
export const USER_SLUG_MAX_LENGTH = USER_SLUG_READABLE_MAX + 1 + USER_SLUG_HASH_LENGTH;

/** A Session's name is a DNS-1123 subdomain, as Kubernetes requires of every custom resource's name. */
export const SESSION_NAME_MAX_LENGTH = DNS1123_SUBDOMAIN_MAX_LENGTH;
/**
 * Longest Session name used as it is in its children's names (`ss-<name>` ≤ 53 characters leaves
 * room for the suffixes Kubernetes appends to ReplicaSets and Pods). Longer names are shortened.
 */
export const SESSION_NAME_DIRECT_MAX_LENGTH = 50;
/** Hex digits of sha256 that make a shortened name unique: 64 bits. */
export const SHORTENED_NAME_HASH_LENGTH = 16;
/**
 * Every shortened name ends with "-" and SHORTENED_NAME_HASH_LENGTH hex digits, and no Session
 * name may (CRD CEL rule), so a shortened name never equals a name used as it is.
 */
export const SHORTENED_NAME_SUFFIX_PATTERN = `-[0-9a-f]{${SHORTENED_NAME_HASH_LENGTH}}$`;
/** A Template's name must be a DNS-1123 subdomain of at most this many characters, so it fits a label value. */
export const TEMPLATE_NAME_MAX_LENGTH = 63;

/** Prefix of every object a Session owns (Deployment, Service, Ingress, ...). */
export const SESSION_CHILD_PREFIX = 'ss-';
/** Prefix of the per-user home PersistentVolumeClaim. */
export const HOME_CLAIM_PREFIX = 'home-';


/** RFC 1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric (length checked separately). */
export const DNS1123_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** RFC 1123 subdomain: dot-separated labels (length checked separately). */
export const DNS1123_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

const labelRegex = new RegExp(DNS1123_LABEL_PATTERN);
const subdomainRegex = new RegExp(DNS1123_SUBDOMAIN_PATTERN);

export function isDns1123Label(value: string): boolean {
  return value.length <= DNS1123_LABEL_MAX_LENGTH && labelRegex.test(value);
}

export function isDns1123Subdomain(value: string): boolean {
  return value.length <= DNS1123_SUBDOMAIN_MAX_LENGTH && subdomainRegex.test(value);
}

/** The first `digits` hex digits of sha256(text as UTF-8). */
function hexHash(text: string, digits: number): string {
  return createHash('sha256').update(text, 'utf8').digest('hex').slice(0, digits);
}

/** Lower-cases, strips accents, collapses non-[a-z0-9] runs to '-', trims and truncates. */
function readablePart(text: string, max: number): string {
  const folded = text
    .toLowerCase()
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .replace(/[^a-z0-9]+/g, '-');
  return folded.replace(/^-+/, '').slice(0, max).replace(/-+$/, '');
}

/**
 * Slugs already computed: a reconcile names a user's objects and labels about seven times, and the
 * Unicode folding plus sha256 of each was a sixth of planning a Session (--cpu-prof). Bounded; a
 * clear only costs recomputing.
 */
const slugs = new Map<string, string>();
const MAX_SLUGS = 4096;

/**
 * The DNS-1123-label slug of a user name: readable part + '-' + 16 hex digits of sha256(user).
 * Deterministic, at most USER_SLUG_MAX_LENGTH (47) characters, distinct for distinct users
 * (up to a 64-bit hash collision between users with the same readable part).
 *
 * userSlug('alice@example.com') === 'alice-example-com-ff8d9819fc0e12bf'
 */
export function userSlug(user: string): string {
  const known = slugs.get(user);
  if (known !== undefined) return known;
  const readable = readablePart(user, USER_SLUG_READABLE_MAX) || 'user';
  const slug = `${readable}-${hexHash(user, USER_SLUG_HASH_LENGTH)}`;
  if (slugs.size >= MAX_SLUGS) slugs.clear();
  slugs.set(user, slug);
  return slug;
}

/** Name of the user's home PersistentVolumeClaim (not owned by any Session; it outlives them): `home-<slug>`. */
export function homeClaimName(user: string): string {
  return `${HOME_CLAIM_PREFIX}${userSlug(user)}`;
}

const shortenedSuffix = new RegExp(SHORTENED_NAME_SUFFIX_PATTERN);
/** Characters a label value may hold besides those of a DNS-1123 subdomain: none that we need. */
const labelValueRegex = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** Does Kubernetes accept this Session name, and may StreamSpace use it (no reserved suffix)? */
export function isValidSessionName(name: string): boolean {
  return isDns1123Subdomain(name) && !shortenedSuffix.test(name);
}

/**
 * `name` where it fits (at most `max` characters and matching `fits`), otherwise its readable part
 * cut to fit, "-", and 16 hex digits of sha256(name). Stable across versions (it depends on the
 * name alone), and two different names never share a result: a name that fits is kept as it is,
 * a shortened one ends with the reserved suffix no Session name may have, and two shortened ones
 * differ in their 64-bit hashes.
 */
function fitted(name: string, max: number, fits: RegExp): string {
  if (name.length <= max && fits.test(name) && !shortenedSuffix.test(name)) return name;
  const readable = readablePart(name, max - SHORTENED_NAME_HASH_LENGTH - 1) || 'session';
  return `${readable}-${hexHash(name, SHORTENED_NAME_HASH_LENGTH)}`;
}

/**
 * The name the user's home claim had before slugs carried 64 bits (`home-<readable>-<8 hex>`).
 * The reconciler mounts a claim of this name only when no claim of the current name exists and
 * the old claim's owner annotation names this very user, so homes made by earlier releases are
 * not orphaned by an upgrade, and a 32-bit collision cannot hand one user's home to another.
 */
export function legacyHomeClaimName(user: string): string {
  const readable = readablePart(user, USER_SLUG_READABLE_MAX) || 'user';
  return `${HOME_CLAIM_PREFIX}${readable}-${hexHash(user, SHORT_HASH_LENGTH)}`;
}

/**
 * Name shared by the objects a Session owns (its Deployment, Service, Ingress, ...; kinds differ so
 * one name serves all): `ss-<session name>`, at most 53 characters, which leaves room for the
 * ReplicaSet and Pod suffixes Kubernetes appends. The `ss-` prefix makes it a valid DNS-1035 label
 * too (Service names must start with a letter). A name longer than 50 characters, or with dots,
 * becomes `ss-<readable part>-<16 hex digits>` (see `fitted`); names that fit keep the form they
 * have always had, so upgrading recreates nothing.
 */
export function sessionChildName(sessionName: string): string {
  return `${SESSION_CHILD_PREFIX}${fitted(sessionName, SESSION_NAME_DIRECT_MAX_LENGTH, labelRegex)}`;
}

/**
 * The value of LABELS.session on a Session's children: the name itself when it fits a label value
 * (63 characters), else shortened like `sessionChildName`. Where it is shortened, the children also
 * carry the full name in ANNOTATIONS.session.
 */
export function sessionLabelValue(sessionName: string): string {
  return fitted(sessionName, DNS1123_LABEL_MAX_LENGTH, labelValueRegex);
}

/** The Session's name as one DNS label, for its host name: shortened when it is longer or has dots. */
export function sessionHostLabel(sessionName: string): string {
  return fitted(sessionName, DNS1123_LABEL_MAX_LENGTH, labelRegex);
}
