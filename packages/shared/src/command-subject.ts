import { subjectToken, subjects } from './subjects.js';

/** Where a command came from and which Session it is about, as its subject says. */
export interface CommandSubject {
  /** The issuer token: the NATS identity whose permissions allowed the publish. */
  issuer: string;
  /** The namespace and name tokens (dots in names are escaped, see subjectToken). */
  namespaceToken: string;
  nameToken: string;
}

const PREFIX = subjects.commandsAll.slice(0, -1); // 'streamspace.commands.'

/**
 * Reads `streamspace.commands.<issuer>.<namespace>.<name>`. The issuer comes from the subject
 * only: NATS permissions decide who may publish under which issuer token, while anyone who may
 * publish at all may write anything into a payload.
 */
export function parseCommandSubject(
  subject: string,
): { ok: true; value: CommandSubject } | { ok: false; error: string } {
  if (!subject.startsWith(PREFIX))
    return { ok: false, error: `not a command subject (expected ${subjects.commandsAll})` };
  const tokens = subject.slice(PREFIX.length).split('.');
  if (tokens.length !== 3 || tokens.some((t) => t.length === 0))
    return {
      ok: false,
      error: `a command subject is streamspace.commands.<issuer>.<namespace>.<name>; got ${tokens.length} tokens after the prefix`,
    };
  const [issuer, namespaceToken, nameToken] = tokens as [string, string, string];
  return { ok: true, value: { issuer, namespaceToken, nameToken } };
}

/** Whether a payload's namespace/name is the Session its subject names (so one cannot act on another). */
export function commandSubjectMatches(parsed: CommandSubject, namespace: string, name: string): boolean {
  return parsed.namespaceToken === subjectToken(namespace) && parsed.nameToken === subjectToken(name);
}
