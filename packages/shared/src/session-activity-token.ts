import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The activity token of one Session: an HMAC-SHA256, under a key only the reconciler and the idle
 * reaper hold, over the Session's namespace, name and uid. The reconciler puts it in a Secret the
 * Session owns, for the activity agent in the desktop's pod; the reaper recomputes it for the
 * Session a report names. So a token reports for its own Session only, and not for a later Session
 * of the same name (another uid), and no key reaches a user's pod.
 */

/** The shortest key accepted: 32 bytes of entropy written as text (e.g. `openssl rand -hex 32`). */
export const MIN_ACTIVITY_KEY_LENGTH = 32;

const VERSION = 'v1';
/** How a session's token starts (the platform's shared token is told apart by it). */
export const SESSION_TOKEN_PREFIX = `${VERSION}.`;

export function sessionActivityToken(key: string, namespace: string, name: string, uid: string): string {
  // NUL cannot occur in a namespace, name or uid, so no two sessions share the signed text.
  const mac = createHmac('sha256', key).update(`${VERSION}\0${namespace}\0${name}\0${uid}`, 'utf8');
  return `${VERSION}.${mac.digest('base64url')}`;
}

/** Whether `presented` is the token of this Session, compared in constant time. */
export function isSessionActivityToken(
  presented: string,
  key: string,
  namespace: string,
  name: string,
  uid: string,
): boolean {
  const expected = Buffer.from(sessionActivityToken(key, namespace, name, uid), 'utf8');
  const given = Buffer.from(presented, 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Why a key is unusable, or undefined when it is fine. Never includes the key. */
export function activityKeyProblem(key: string): string | undefined {
  return key.length < MIN_ACTIVITY_KEY_LENGTH
    ? `the activity key must be at least ${MIN_ACTIVITY_KEY_LENGTH} characters (it has ${key.length}); generate one with: openssl rand -hex 32`
    : undefined;
}
