import { describe, expect, it } from 'vitest';
import { at, iso, rawSession } from './session-fixtures.test-support.js';
import { parseSessionSnapshot, sessionViewKey } from './session-snapshot.js';

describe('reading a Session', () => {
  it('takes what the metrics need, with the CRD defaults for what is missing', () => {
    const raw = rawSession({
      rv: 7,
      generation: 3,
      phase: 'Running',
      ready: ['True', 'PodReady', iso('10:00:01.250')],
      changedBy: 'idle-reaper',
      changeReason: 'Idle',
      changedAt: iso('09:00:00'),
    });
    expect(parseSessionSnapshot(raw)).toEqual({
      ok: true,
      snapshot: {
        uid: 'uid-1',
        namespace: 'team',
        name: 'desk',
        resourceVersion: '7',
        generation: 3,
        createdAtMs: at('10:00:00'),
        template: 'firefox',
        user: 'alice@example.com',
        state: 'running',
        phase: 'Running',
        ready: { status: 'True', reason: 'PodReady', sinceMs: at('10:00:01.250') },
        stateChange: { by: 'idle-reaper', reason: 'Idle', atMs: at('09:00:00') },
      },
    });
  });

  it('counts a Session without status, or with an unknown phase or state, as a Pending running one', () => {
    const raw = rawSession({ rv: 1 }) as { spec: Record<string, unknown>; status?: unknown };
    raw.spec.state = 'sleeping';
    raw.status = { phase: 'Exploded', conditions: 'not a list' };
    const parsed = parseSessionSnapshot(raw);
    expect(parsed.ok && parsed.snapshot).toMatchObject({
      phase: 'Pending',
      state: 'running',
      ready: undefined,
    });
  });

  it('keeps no padded state-change annotation: a long one counts as absent', () => {
    const raw = rawSession({
      rv: 2,
      changedBy: 'x'.repeat(200 * 1024),
      changeReason: 'Idle',
      changedAt: iso('09:00:00'),
    });
    const parsed = parseSessionSnapshot(raw);
    expect(parsed.ok && parsed.snapshot.stateChange).toEqual({
      by: undefined,
      reason: 'Idle',
      atMs: at('09:00:00'),
    });
  });

  it('refuses what cannot be identified', () => {
    expect(parseSessionSnapshot(null)).toEqual({ ok: false, reason: 'not a JSON object' });
    expect(parseSessionSnapshot({ spec: {} })).toEqual({ ok: false, reason: 'metadata is missing' });
    expect(parseSessionSnapshot({ metadata: { namespace: 'a', name: 'b', uid: '' } })).toEqual({
      ok: false,
      reason: 'metadata.uid is missing or empty',
    });
  });

  it('makes a Session entry key its view key, dots in names included', () => {
    expect(sessionViewKey('session.team-a.desk-1')).toBe('team-a/desk-1');
    expect(sessionViewKey('session.team-a.my_desk_2')).toBe('team-a/my.desk.2');
  });
});
