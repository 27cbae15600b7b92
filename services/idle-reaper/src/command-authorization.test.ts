import { parseCommandSubject, subjects } from '@streamspace/shared';
import { describe, expect, it } from 'vitest';
import { authorizeCommand, commandPolicy } from './command-authorization.js';

const command = (reason: 'Idle' | 'MaxDurationExceeded' | 'User', name = 'desk') => ({
  namespace: 'team-a',
  name,
  reason,
});

describe('parseCommandSubject', () => {
  it('reads the issuer and the Session from the subject', () => {
    expect(parseCommandSubject(subjects.command('idle-reaper', 'team-a', 'my.desk'))).toEqual({
      ok: true,
      value: { issuer: 'idle-reaper', namespaceToken: 'team-a', nameToken: 'my_desk' },
    });
  });

  it.each([
    ['streamspace.work.session.a.b', /not a command subject/],
    ['streamspace.commands.a.b', /got 2 tokens/],
    ['streamspace.commands.session.a.b.c', /got 4 tokens/],
    ['streamspace.commands..a.b', /streamspace.commands.<issuer>/],
  ])('refuses %s', (subject, error) => {
    const parsed = parseCommandSubject(subject);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(error);
  });
});

describe('authorizeCommand', () => {
  const reaperSubject = subjects.command('idle-reaper', 'team-a', 'desk');

  it("accepts the reaper's deadline commands on its own subject", () => {
    const policy = commandPolicy();
    expect(authorizeCommand(reaperSubject, command('Idle'), policy)).toEqual({
      ok: true,
      issuer: 'idle-reaper',
    });
    expect(authorizeCommand(reaperSubject, command('MaxDurationExceeded'), policy).ok).toBe(true);
  });

  it('refuses a User command from the reaper: User commands skip the deadline check', () => {
    const result = authorizeCommand(reaperSubject, command('User'), commandPolicy(['portal']));
    expect(result).toMatchObject({ ok: false, refusal: 'issuer_not_allowed' });
    if (!result.ok) expect(result.message).toMatch(/issuer 'idle-reaper' may not issue 'User' commands/);
  });

  it('accepts User commands only from the issuers the operator names, and nothing else from them', () => {
    const portal = subjects.command('portal', 'team-a', 'desk');
    expect(authorizeCommand(portal, command('User'), commandPolicy())).toMatchObject({
      ok: false,
      refusal: 'issuer_not_allowed',
    });
    expect(authorizeCommand(portal, command('User'), commandPolicy(['portal']))).toEqual({
      ok: true,
      issuer: 'portal',
    });
    expect(authorizeCommand(portal, command('Idle'), commandPolicy(['portal'])).ok).toBe(false);
  });

  it('refuses a command whose payload names another Session than its subject', () => {
    expect(authorizeCommand(reaperSubject, command('Idle', 'someone-else'), commandPolicy())).toMatchObject({
      ok: false,
      refusal: 'subject_mismatch',
    });
  });

  it('refuses a command on a subject without an issuer (the old layout)', () => {
    expect(
      authorizeCommand('streamspace.commands.team-a.desk', command('Idle'), commandPolicy()),
    ).toMatchObject({ ok: false, refusal: 'bad_subject' });
  });
});
