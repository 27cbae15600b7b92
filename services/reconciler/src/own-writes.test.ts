import { describe, expect, it } from 'vitest';
import { OwnWrites } from './own-writes.js';

const obj = (rv: string, uid = 'u1', extra: Record<string, unknown> = {}) => ({
  metadata: { uid, resourceVersion: rv, managedFields: [{ manager: 'x' }] },
  ...extra,
});

describe('OwnWrites', () => {
  it('answers our write while the shared state is older, and forgets it once the state catches up', () => {
    const own = new OwnWrites();
    own.remember('session', 'ns', 'a', obj('120', 'u1', { status: { phase: 'Terminated' } }));
    const stale = obj('110', 'u1', { status: { phase: 'Running' } });
    expect(own.newest('session', 'ns', 'a', stale)).toMatchObject({ status: { phase: 'Terminated' } });
    expect(own.newest('session', 'ns', 'a', stale)?.metadata).not.toHaveProperty('managedFields');
    const current = obj('130', 'u1', { status: { phase: 'Terminated' } });
    expect(own.newest('session', 'ns', 'a', current)).toBe(current);
    expect(own.size).toBe(0);
    // Forgotten: an older state is taken as it is from now on.
    expect(own.newest('session', 'ns', 'a', stale)).toBe(stale);
  });

  it('never brings back a deleted object, nor answers for another incarnation of the name', () => {
    const own = new OwnWrites();
    own.remember('session', 'ns', 'a', obj('120'));
    expect(own.newest('session', 'ns', 'a', undefined)).toBeUndefined();
    own.remember('session', 'ns', 'a', obj('120', 'u1'));
    const other = obj('100', 'u2');
    expect(own.newest('session', 'ns', 'a', other)).toBe(other);
  });

  it('does not compare versions that are not integers, and keeps kinds and names apart', () => {
    const own = new OwnWrites();
    own.remember('session', 'ns', 'a', obj('abc'));
    const state = obj('def');
    expect(own.newest('session', 'ns', 'a', state)).toBe(state);
    own.remember('deployment', 'ns', 'a', obj('200'));
    const session = obj('100');
    expect(own.newest('session', 'ns', 'a', session)).toBe(session);
    expect(own.newest('deployment', 'ns', 'b', obj('100'))?.metadata?.resourceVersion).toBe('100');
  });

  it('holds at most maxEntries, dropping the oldest first', () => {
    const own = new OwnWrites(2);
    own.remember('session', 'ns', 'a', obj('10'));
    own.remember('session', 'ns', 'b', obj('10'));
    own.remember('session', 'ns', 'c', obj('10'));
    expect(own.size).toBe(2);
    const old = obj('5');
    expect(own.newest('session', 'ns', 'a', old)).toBe(old);
    expect(own.newest('session', 'ns', 'c', old)?.metadata?.resourceVersion).toBe('10');
  });

  it('forgets a write ttlMs after it, read or not', () => {
    let now = 0;
    const own = new OwnWrites(100, 1_000, () => now);
    own.remember('session', 'ns', 'a', obj('10'));
    now = 600;
    own.remember('session', 'ns', 'b', obj('10'));
    const old = obj('5');
    now = 999;
    expect(own.newest('session', 'ns', 'a', old)?.metadata?.resourceVersion).toBe('10');
    now = 1_000;
    expect(own.size).toBe(2);
    expect(own.newest('session', 'ns', 'a', old)).toBe(old);
    expect(own.size).toBe(1);
    // Expired entries leave on a write too, without being read.
    now = 1_700;
    own.remember('session', 'ns', 'c', obj('10'));
    expect(own.size).toBe(1);
    expect(own.newest('session', 'ns', 'c', old)?.metadata?.resourceVersion).toBe('10');
  });
});
