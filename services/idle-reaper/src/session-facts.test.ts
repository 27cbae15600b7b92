import { describe, expect, it } from 'vitest';
import { stateKey } from '@streamspace/shared';
import { readTrackedSession, sessionKey, sessionKeyOfStateEntry } from './session-facts.js';

const session = {
  apiVersion: 'stream.streamspace.io/v1alpha1',
  kind: 'Session',
  metadata: {
    name: 'alice-firefox',
    namespace: 'team-a',
    uid: 'u-1',
    resourceVersion: '42',
    creationTimestamp: '2025-01-31T10:00:00Z',
    annotations: {
      'stream.streamspace.io/state-changed-by': 'idle-reaper',
      'stream.streamspace.io/state-changed-at': '2025-01-31T11:00:00.250Z',
      'stream.streamspace.io/reaper-disabled': 'false',
    },
  },
  spec: {
    user: 'alice',
    template: 'firefox',
    state: 'running',
    idleTimeout: '15m',
    maxSessionDuration: '4h',
  },
  status: {
    phase: 'Running',
    lastActivity: '2025-01-31T10:30:00.500Z',
    stateChange: { by: 'idle-reaper', reason: 'Idle', at: '2025-01-31T11:00:00.250Z' },
    conditions: [
      {
        type: 'TemplateResolved',
        status: 'True',
        reason: 'Found',
        message: '',
        lastTransitionTime: '2025-01-31T10:00:01Z',
      },
      {
        type: 'Ready',
        status: 'True',
        reason: 'PodReady',
        message: '',
        lastTransitionTime: '2025-01-31T10:00:05.123Z',
      },
    ],
  },
};

describe('readTrackedSession', () => {
  it('keeps what the deadlines need', () => {
    expect(readTrackedSession(session)).toEqual({
      key: 'team-a.alice-firefox',
      namespace: 'team-a',
      name: 'alice-firefox',
      resourceVersion: '42',
      uid: 'u-1',
      state: 'running',
      phase: 'Running',
      readyStatus: 'True',
      readySince: Date.parse('2025-01-31T10:00:05.123Z'),
      idleTimeout: '15m',
      maxSessionDuration: '4h',
      reaperDisabled: false,
      deleting: false,
      createdAt: Date.parse('2025-01-31T10:00:00Z'),
      statusLastActivity: Date.parse('2025-01-31T10:30:00.500Z'),
      reaperStateChangeAt: Date.parse('2025-01-31T11:00:00.250Z'),
    });
  });

  it('reads the opt-out annotation and a deletion in progress', () => {
    const opted = readTrackedSession({
      ...session,
      metadata: {
        ...session.metadata,
        deletionTimestamp: '2025-01-31T12:00:00Z',
        annotations: { 'stream.streamspace.io/reaper-disabled': 'true' },
      },
      status: { ...session.status, stateChange: undefined },
    });
    expect(opted?.reaperDisabled).toBe(true);
    expect(opted?.deleting).toBe(true);
    expect(opted?.reaperStateChangeAt).toBeUndefined();
  });

  it('ignores a state change recorded by someone else', () => {
    const other = readTrackedSession({
      ...session,
      status: { ...session.status, stateChange: { by: 'alice', at: '2025-01-31T11:00:00Z' } },
    });
    expect(other?.reaperStateChangeAt).toBeUndefined();
  });

  it('never takes the reaper’s record from annotations, which users can write', () => {
    const forged = readTrackedSession({
      ...session,
      metadata: {
        ...session.metadata,
        annotations: {
          'stream.streamspace.io/state-changed-by': 'idle-reaper',
          'stream.streamspace.io/state-changed-at': '2999-01-01T00:00:00Z',
        },
      },
      status: { ...session.status, stateChange: undefined },
    });
    expect(forged?.reaperStateChangeAt).toBeUndefined();
  });

  it('tolerates a bare object and garbage in optional places', () => {
    const bare = readTrackedSession({
      metadata: { name: 'x', namespace: 'n', uid: 'u' },
      spec: { idleTimeout: 5 },
      status: { conditions: 'nope', lastActivity: 'yesterday' },
    });
    expect(bare).toEqual({
      key: 'n.x',
      namespace: 'n',
      name: 'x',
      resourceVersion: '',
      uid: 'u',
      state: 'running',
      reaperDisabled: false,
      deleting: false,
    });
    expect(readTrackedSession({ metadata: { name: 'x' } })).toBeUndefined();
    expect(readTrackedSession(null)).toBeUndefined();
    expect(readTrackedSession('session')).toBeUndefined();
  });

  it('keys sessions as <namespace>.<name>', () => {
    expect(sessionKey('team-a', 'desk-1')).toBe('team-a.desk-1');
  });
});

describe('sessionKeyOfStateEntry', () => {
  it("is the Session key of the Session's shared-state entry key", () => {
    const namespace = 'team.a';
    const name = 'alice.firefox';
    expect(sessionKeyOfStateEntry(stateKey('session', namespace, name))).toBe(sessionKey(namespace, name));
  });
});
