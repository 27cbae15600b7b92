import { describe, expect, it } from 'vitest';
import { WrittenRevisions } from './written-revisions.js';

describe('WrittenRevisions', () => {
  const session = { name: 'alice' };
  const template = { name: 'firefox' };

  it('knows a cached version as intact at the revision it was stored at', () => {
    const revisions = new WrittenRevisions();
    revisions.stored(session, 7);
    revisions.stored(template, 3);
    expect(revisions.intact(session, 7)).toBe(true);
    expect(revisions.intact(template, 3)).toBe(true);
    revisions.stored(session, 9);
    expect(revisions.intact(session, 7)).toBe(false);
    expect(revisions.intact(session, 9)).toBe(true);
  });

  it('does not know an entry someone else wrote, a missing one, or a version it never stored', () => {
    const revisions = new WrittenRevisions();
    revisions.stored(session, 7);
    expect(revisions.intact(session, 8)).toBe(false);
    expect(revisions.intact(session, undefined)).toBe(false);
    // A newer version of the same Session is another cache entry: its own store is what counts.
    expect(revisions.intact({ name: 'alice' }, 7)).toBe(false);
  });

  it('forgets everything when the bucket is recreated', () => {
    const revisions = new WrittenRevisions();
    revisions.stored(session, 8);
    revisions.stored(template, 2);
    revisions.clear();
    expect(revisions.intact(session, 8)).toBe(false);
    expect(revisions.intact(template, 2)).toBe(false);
  });
});
