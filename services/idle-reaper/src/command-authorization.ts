import { commandSubjectMatches, parseCommandSubject, type SessionCommand } from '@streamspace/shared';
import { REAPER_IDENTITY } from './session-facts.js';

type Reason = SessionCommand['reason'];

/** Which reasons the executor accepts from each issuer (the issuer token of the subject). */
export type CommandPolicy = ReadonlyMap<string, ReadonlySet<Reason>>;

/**
 * The reaper issues its own deadline decisions (Idle, MaxDurationExceeded), which the executor
 * checks again against the deadlines anyway. `User` commands skip that check, so they are
 * accepted only from the identities the operator names (USER_COMMAND_ISSUERS: a portal, an
 * admin tool), each of which NATS permits to publish under its own issuer token only.
 */
export function commandPolicy(userCommandIssuers: readonly string[] = []): CommandPolicy {
  const policy = new Map<string, Set<Reason>>([
    [REAPER_IDENTITY, new Set<Reason>(['Idle', 'MaxDurationExceeded'])],
  ]);
  for (const issuer of userCommandIssuers) {
    const reasons = policy.get(issuer) ?? new Set<Reason>();
    reasons.add('User');
    policy.set(issuer, reasons);
  }
  return policy;
}

export type Refusal = 'bad_subject' | 'subject_mismatch' | 'issuer_not_allowed';

/**
 * Decides whether a decoded command may be carried out, from its subject (who issued it, which
 * Session) and the policy. The payload's `issuedBy` is never trusted for this: anyone allowed to
 * publish can write anything there.
 */
export function authorizeCommand(
  subject: string,
  command: Pick<SessionCommand, 'namespace' | 'name' | 'reason'>,
  policy: CommandPolicy,
): { ok: true; issuer: string } | { ok: false; refusal: Refusal; message: string } {
  const parsed = parseCommandSubject(subject);
  if (!parsed.ok) return { ok: false, refusal: 'bad_subject', message: parsed.error };
  const { issuer } = parsed.value;
  if (!commandSubjectMatches(parsed.value, command.namespace, command.name))
    return {
      ok: false,
      refusal: 'subject_mismatch',
      message: `the command names ${command.namespace}/${command.name} but was published on the subject of another Session`,
    };
  const allowed = policy.get(issuer);
  if (!allowed?.has(command.reason)) {
    const may = allowed ? [...allowed].join(', ') : 'nothing';
    return {
      ok: false,
      refusal: 'issuer_not_allowed',
      message: `issuer '${issuer}' may not issue '${command.reason}' commands (it may issue: ${may}; USER_COMMAND_ISSUERS names who may issue User commands)`,
    };
  }
  return { ok: true, issuer };
}
