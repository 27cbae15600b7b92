import { describe, expect, it } from 'vitest';
import { decodeStateEntry, podStateKey, sessionPodsFilter, stateKey } from './shared-state.js';

const encode = (value: unknown) =>
  new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
const session = {
  apiVersion: 'stream.streamspace.io/v1alpha1',
  kind: 'Session',
  metadata: { name: 'a.b', namespace: 'team-a', uid: 'u1', resourceVersion: '7' },
  spec: { user: 'alice', template: 'firefox', state: 'running' },
};

describe('shared-state keys', () => {
  it('makes names subject-safe and puts pods under their Session', () => {
    expect(stateKey('session', 'team-a', 'a.b')).toBe('session.team-a.a_b');
    expect(podStateKey('team-a', 'a.b', 'ss-a-b-xyz')).toBe('pod.team-a.a_b.ss-a-b-xyz');
    expect(sessionPodsFilter('team-a', 'a.b')).toBe('pod.team-a.a_b.>');
  });
});

describe('decodeStateEntry', () => {
  const expected = { namespace: 'team-a', name: 'a.b' };
  it('reads the object its key names', () => {
    const decoded = decodeStateEntry('session', expected, encode(session));
    expect(decoded.ok && decoded.object.metadata.uid).toBe('u1');
  });

  it.each([
    ['not JSON', encode('{"metadata":'), /not JSON/],
    ['not an object', encode([1]), /not a JSON object/],
    ['no identity', encode({ ...session, metadata: { name: 'a.b', namespace: 'team-a' } }), /metadata.uid/],
    [
      'another object',
      encode({ ...session, metadata: { ...session.metadata, name: 'other' } }),
      /team-a\/other/,
    ],
    ['another kind', encode({ ...session, kind: 'Template' }), /a Template, not a Session/],
    ['a spec that is no object', encode({ ...session, spec: 'x' }), /spec is not an object/],
  ])('refuses an entry that is %s, with a reason', (_what, data, reason) => {
    const decoded = decodeStateEntry('session', expected, data);
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.reason).toMatch(reason);
  });

  it('reads a Session kept as its identity only (over MAX_OBJECT_BYTES), not a Template', () => {
    const identity = encode({ ...session, spec: undefined });
    expect(decodeStateEntry('session', expected, identity).ok).toBe(true);
    const template = { ...session, kind: 'Template', spec: undefined };
    expect(decodeStateEntry('template', expected, encode(template))).toEqual({
      ok: false,
      reason: 'spec is missing',
    });
  });

  it('refuses an entry over the bound before parsing it', () => {
    const decoded = decodeStateEntry('session', expected, encode(session), 10);
    expect(decoded).toEqual({ ok: false, reason: expect.stringMatching(/over the bound of 10/) });
  });
});
