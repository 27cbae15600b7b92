import { describe, expect, it } from 'vitest';
import {
  decodeStateEntry,
  podStateKey,
  SharedStateReader,
  type StateEntries,
  type StateEntry,
  sessionPodsFilter,
  stateKey,
} from './shared-state.js';

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

describe('SharedStateReader.read', () => {
  const pod = (name: string) => ({
    kind: 'Pod',
    metadata: { name, namespace: 'team-a', uid: name, resourceVersion: '1' },
  });
  const stored: StateEntry[] = [
    { key: stateKey('session', 'team-a', 'a.b'), operation: 'PUT', value: encode(session) },
    { key: stateKey('deployment', 'team-a', 'ss-a-b'), operation: 'DEL', value: new Uint8Array() },
    { key: stateKey('service', 'team-a', 'ss-a-b'), operation: 'PUT', value: encode('{') },
    { key: podStateKey('team-a', 'a.b', 'ss-a-b-1'), operation: 'PUT', value: encode(pod('ss-a-b-1')) },
    { key: podStateKey('team-a', 'a.b', 'ss-a-b-0'), operation: 'DEL', value: new Uint8Array() },
  ];
  /** A bucket answering each read with the stored entries its filters name, counting reads. */
  const bucket = () => {
    const reads: string[][] = [];
    const entries: StateEntries = {
      get: async () => null,
      async entries(filters) {
        reads.push(filters);
        return stored.filter(({ key }) =>
          filters.some((f) => (f.endsWith('.>') ? key.startsWith(f.slice(0, -1)) : key === f)),
        );
      },
    };
    return { entries, reads };
  };

  it('answers every ref in order and the pods of the Session, in one read', async () => {
    const { entries, reads } = bucket();
    const corrupt: string[] = [];
    const reader = new SharedStateReader(entries, { corrupt: (key) => corrupt.push(key) });
    const { objects, pods } = await reader.read<{ metadata: { name: string } }>(
      [
        { kind: 'deployment', namespace: 'team-a', name: 'ss-a-b' },
        { kind: 'session', namespace: 'team-a', name: 'a.b' },
        { kind: 'service', namespace: 'team-a', name: 'ss-a-b' },
        { kind: 'ingress', namespace: 'team-a', name: 'ss-a-b' },
      ],
      { namespace: 'team-a', session: 'a.b' },
    );
    expect(reads).toHaveLength(1);
    // Deleted and absent keys read as absent; a corrupt one too, and is reported.
    expect(objects.map((o) => o?.metadata.name)).toEqual([undefined, 'a.b', undefined, undefined]);
    expect(corrupt).toEqual([stateKey('service', 'team-a', 'ss-a-b')]);
    // Only live pods.
    expect(pods.map((p) => p.metadata.name)).toEqual(['ss-a-b-1']);
  });

  it('reads no pods unless asked for them', async () => {
    const { entries, reads } = bucket();
    const { pods } = await new SharedStateReader(entries).read([
      { kind: 'session', namespace: 'team-a', name: 'a.b' },
    ]);
    expect(pods).toEqual([]);
    expect(reads).toEqual([[stateKey('session', 'team-a', 'a.b')]]);
  });
});
