import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventRecorder, type InvolvedObject } from './event-recorder.js';
import { FakeApiServer, type FakeHandler, send } from './fake-api-server.test-support.js';
import { KubeClient } from './kube-client.js';

const session: InvolvedObject = {
  apiVersion: 'stream.streamspace.io/v1alpha1',
  kind: 'Session',
  namespace: 'a',
  name: 's1',
  uid: 'u1',
};

/** Plays the events API: creates, reads and merge-patches Events held in a map. */
function eventsApi(store: Map<string, Record<string, unknown>>): FakeHandler {
  return (q, r) => {
    const name = q.path.split('/events/')[1];
    if (q.method === 'POST') {
      const body = q.body as { metadata: { name: string } };
      if (store.has(body.metadata.name)) return send(r, 409, { reason: 'AlreadyExists', message: 'exists' });
      store.set(body.metadata.name, body as Record<string, unknown>);
      return send(r, 201, body);
    }
    const existing = name ? store.get(name) : undefined;
    if (!existing) return send(r, 404, { reason: 'NotFound', message: 'not found' });
    if (q.method === 'GET') return send(r, 200, existing);
    Object.assign(existing, q.body);
    return send(r, 200, existing);
  };
}

let api: FakeApiServer;
let store: Map<string, Record<string, unknown>>;
beforeEach(async () => {
  store = new Map();
  api = await FakeApiServer.start();
  api.handler = eventsApi(store);
});
afterEach(() => api.close());

const recorder = (now = () => new Date('2026-11-29T10:00:00Z')) =>
  new EventRecorder(new KubeClient({ server: api.url }), { component: 'test', instance: 'i1', now });

describe('EventRecorder', () => {
  it('aggregates repeats into one Event with a count and the last time, as client-go does', async () => {
    let t = Date.parse('2026-11-29T10:00:00Z');
    const events = recorder(() => new Date(t));
    await events.record(session, 'Warning', 'ReconcileFailed', 'boom');
    t += 60_000;
    await events.record(session, 'Warning', 'ReconcileFailed', 'boom');
    await Promise.all([
      events.record(session, 'Warning', 'ReconcileFailed', 'boom'),
      events.record(session, 'Warning', 'ReconcileFailed', 'boom'),
    ]);
    expect(store.size).toBe(1);
    const [event] = [...store.values()];
    expect(event).toMatchObject({
      count: 4,
      firstTimestamp: '2026-11-29T10:00:00.000Z',
      lastTimestamp: '2026-11-29T10:01:00.000Z',
      reason: 'ReconcileFailed',
      involvedObject: { kind: 'Session', name: 's1', uid: 'u1' },
      source: { component: 'test' },
    });
    expect(api.requests.map((q) => q.method)).toEqual(['POST', 'PATCH', 'PATCH', 'PATCH']);
  });

  it('keeps another message, reason or object apart', async () => {
    const events = recorder();
    await events.record(session, 'Warning', 'ReconcileFailed', 'boom');
    await events.record(session, 'Warning', 'ReconcileFailed', 'bang');
    await events.record(session, 'Normal', 'Hibernated', 'boom');
    await events.record({ ...session, uid: 'u2' }, 'Warning', 'ReconcileFailed', 'boom');
    expect(store.size).toBe(4);
  });

  it('continues the count of an Event another replica or an earlier run wrote', async () => {
    await recorder().record(session, 'Warning', 'LimitApplied', 'capped');
    await recorder().record(session, 'Warning', 'LimitApplied', 'capped');
    expect(store.size).toBe(1);
    expect([...store.values()][0]?.count).toBe(2);
  });

  it('starts a new Event when the old one expired', async () => {
    const events = recorder();
    await events.record(session, 'Warning', 'ReconcileFailed', 'boom');
    store.clear();
    await events.record(session, 'Warning', 'ReconcileFailed', 'boom');
    expect([...store.values()][0]?.count).toBe(1);
  });

  it('names the Event of an object with a 253-character name within the 253 an Event may have', async () => {
    const long = `${'l'.repeat(62)}.${'o'.repeat(63)}.${'n'.repeat(63)}.${'g'.repeat(62)}`;
    await recorder().record({ ...session, name: long }, 'Warning', 'ReconcileFailed', 'boom');
    const [name] = [...store.keys()];
    expect(name?.length).toBeLessThanOrEqual(253);
    expect(name).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    expect(name).not.toMatch(/\.\./);
  });
});
