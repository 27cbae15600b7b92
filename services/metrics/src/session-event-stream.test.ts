import { describe, expect, it } from 'vitest';
import { decodeSessionEvent, sessionEventFilter, startSequence } from './session-event-stream.js';
import { at, iso, rawSession } from './session-fixtures.test-support.js';

const encode = (value: unknown) =>
  new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));

function event(overrides: Record<string, unknown> = {}) {
  const object = rawSession({ rv: 12, phase: 'Running', ready: ['True', 'PodReady', iso('10:00:01.800')] });
  return {
    type: 'modified',
    kind: 'session',
    namespace: 'team',
    name: 'desk',
    uid: 'uid-1',
    resourceVersion: '12',
    generation: 1,
    observedAt: iso('10:00:01.810'),
    object,
    ...overrides,
  };
}

describe('reading change events', () => {
  it('turns a Session change event into an observed change', () => {
    const decoded = decodeSessionEvent(encode(event()));
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    expect(decoded.change.type).toBe('modified');
    expect(decoded.change.observedAtMs).toBe(at('10:00:01.810'));
    expect(decoded.change.snapshot).toMatchObject({ uid: 'uid-1', phase: 'Running', template: 'firefox' });
  });

  it('says why a message cannot be read, and never throws', () => {
    expect(decodeSessionEvent(encode('{"half'))).toMatchObject({ ok: false, reason: 'not_json' });
    expect(decodeSessionEvent(encode({ hello: 'world' }))).toMatchObject({
      ok: false,
      reason: 'bad_envelope',
    });
    expect(decodeSessionEvent(encode(event({ type: 'exploded' })))).toMatchObject({
      ok: false,
      reason: 'bad_envelope',
    });
    expect(decodeSessionEvent(encode(event({ kind: 'pod' })))).toMatchObject({
      ok: false,
      reason: 'bad_envelope',
      detail: 'kind is pod, not session',
    });
    expect(decodeSessionEvent(encode(event({ object: { metadata: {} } })))).toMatchObject({
      ok: false,
      reason: 'bad_object',
    });
    expect(decodeSessionEvent(encode(event({ uid: 'someone-else' })))).toMatchObject({
      ok: false,
      reason: 'bad_object',
    });
    expect(decodeSessionEvent(new Uint8Array([0xff, 0xfe, 0x00]))).toMatchObject({
      ok: false,
      reason: 'not_json',
    });
  });

  it('subscribes to Session events of some namespaces or of all', () => {
    expect(sessionEventFilter()).toEqual(['streamspace.events.session.>']);
    expect(sessionEventFilter(['team-a'])).toEqual(['streamspace.events.session.team-a.>']);
    expect(sessionEventFilter(['team-a', 'team-b'])).toEqual([
      'streamspace.events.session.team-a.>',
      'streamspace.events.session.team-b.>',
    ]);
  });

  it('starts after the newest message, or after the last one read when the stream still has what follows it', () => {
    expect(startSequence(0, { first_seq: 1, last_seq: 500 })).toBe(501);
    expect(startSequence(420, { first_seq: 1, last_seq: 500 })).toBe(421);
    // The stream was recreated (sequences started over) or aged past what we read.
    expect(startSequence(420, { first_seq: 1, last_seq: 30 })).toBe(31);
    expect(startSequence(420, { first_seq: 450, last_seq: 900 })).toBe(901);
  });
});
