import { stateKey } from '@streamspace/shared';
import { describe, expect, it } from 'vitest';
import { WrittenRevisions } from './written-revisions.js';

describe('WrittenRevisions', () => {
  const session = stateKey('session', 'ns', 'alice');
  const template = stateKey('template', 'ns', 'firefox');
  const service = stateKey('service', 'ns', 'ss-alice');

  it('knows an entry of a Session or Template as intact at the revision it last wrote', () => {
    const revisions = new WrittenRevisions();
    revisions.put(session, 7);
    revisions.put(template, 3);
    expect(revisions.intact(session, 7)).toBe(true);
    expect(revisions.intact(template, 3)).toBe(true);
    revisions.put(session, 9);
    expect(revisions.intact(session, 7)).toBe(false);
    expect(revisions.intact(session, 9)).toBe(true);
  });

  it('does not know an entry someone else wrote, a missing one, or one it never wrote', () => {
    const revisions = new WrittenRevisions();
    revisions.put(session, 7);
    expect(revisions.intact(session, 8)).toBe(false);
    expect(revisions.intact(session, undefined)).toBe(false);
    expect(revisions.intact(stateKey('session', 'ns', 'bob'), 7)).toBe(false);
  });

  it('keeps no child keys, forgets a deleted key, and everything when the bucket is recreated', () => {
    const revisions = new WrittenRevisions();
    revisions.put(service, 4);
    expect(revisions.size).toBe(0);
    expect(revisions.intact(service, 4)).toBe(false);
    revisions.put(session, 7);
    revisions.deleted(session);
    expect(revisions.intact(session, 7)).toBe(false);
    revisions.put(session, 8);
    revisions.put(template, 2);
    revisions.clear();
    expect(revisions.size).toBe(0);
    expect(revisions.intact(template, 2)).toBe(false);
  });
});
