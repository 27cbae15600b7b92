import { describe, expect, it } from 'vitest';
import {
  activityKeyProblem,
  isSessionActivityToken,
  sessionActivityToken,
} from './session-activity-token.js';

const KEY = 'k'.repeat(64);

describe('session activity tokens', () => {
  it('is stable for one session and accepted for it', () => {
    const token = sessionActivityToken(KEY, 'team-a', 'firefox', 'uid-1');
    expect(sessionActivityToken(KEY, 'team-a', 'firefox', 'uid-1')).toBe(token);
    expect(token).toMatch(/^v1\.[A-Za-z0-9_-]{43}$/);
    expect(isSessionActivityToken(token, KEY, 'team-a', 'firefox', 'uid-1')).toBe(true);
  });

  it('is refused for another session, a recreated one (new uid), another namespace or key', () => {
    const token = sessionActivityToken(KEY, 'team-a', 'firefox', 'uid-1');
    expect(isSessionActivityToken(token, KEY, 'team-a', 'gimp', 'uid-1')).toBe(false);
    expect(isSessionActivityToken(token, KEY, 'team-a', 'firefox', 'uid-2')).toBe(false);
    expect(isSessionActivityToken(token, KEY, 'team-b', 'firefox', 'uid-1')).toBe(false);
    expect(isSessionActivityToken(token, 'x'.repeat(64), 'team-a', 'firefox', 'uid-1')).toBe(false);
    expect(isSessionActivityToken('', KEY, 'team-a', 'firefox', 'uid-1')).toBe(false);
    expect(isSessionActivityToken(`${token}x`, KEY, 'team-a', 'firefox', 'uid-1')).toBe(false);
  });

  it('does not let fields run into each other', () => {
    expect(sessionActivityToken(KEY, 'a', 'bc', 'u')).not.toBe(sessionActivityToken(KEY, 'ab', 'c', 'u'));
  });

  it('refuses short keys without echoing them', () => {
    expect(activityKeyProblem('short-secret')).toMatch(/at least 32 characters/);
    expect(activityKeyProblem('short-secret')).not.toContain('short-secret');
    expect(activityKeyProblem(KEY)).toBeUndefined();
  });
});
