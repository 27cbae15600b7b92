import { ANNOTATIONS, changeEventSchema, LABELS, subjects, workItemSchema } from '@streamspace/shared';
import { describe, expect, it } from 'vitest';
import type { CacheChange, KubeObject } from '@streamspace/kube';
import { type ChildEntry, type ChildKind, childRetention } from './child-entry.js';
import {
  childChangeMatters,
  DEFAULT_EVENT_KINDS,
  OBSERVED_KINDS,
  type Publication,
  publicationData,
  routeChange,
  routeResync,
  workReasons,
} from './work-routing.js';

function obj(
  name: string,
  options: {
    rv?: string;
    uid?: string;
    generation?: number;
    labels?: Record<string, string>;
    namespace?: string;
  } = {},
): KubeObject {
  const { rv = '10', uid = `uid-${name}`, generation = 1, labels = {}, namespace = 'team-a' } = options;
  const raw = { metadata: { namespace, name, uid, resourceVersion: rv, generation, labels }, spec: {} };
  return {
    namespace,
    name,
    uid,
    resourceVersion: rv,
    generation,
    labels,
    raw,
    json: JSON.stringify(raw),
    bytes: 200,
  };
}

/** The object with another body (its JSON with it, as the informer's objects carry both). */
function withRaw(object: KubeObject, raw: Record<string, unknown>): KubeObject {
  return { ...object, raw, json: JSON.stringify(raw) };
}

const observedAt = new Date('2025-01-02T03:04:05.000Z');
// One partition keeps the subjects below readable (partition 0); partitionOf has its own tests.
const everyKind = new Set(OBSERVED_KINDS);
const noSessions = { sessionsUsing: () => [], observedAt, partitions: 1, eventKinds: everyKind };
const withSessions = (names: string[]) => ({
  sessionsUsing: (namespace: string, template: string) =>
    namespace === 'team-a' && template === 'firefox' ? names : [],
  observedAt,
  partitions: 1,
  eventKinds: everyKind,
});

/** A child's change as the watcher's cache reports it: what it held is a ChildEntry, not the object. */
type WholeChange = { type: 'added' | 'modified' | 'deleted'; object: KubeObject; previous?: KubeObject };
function childChange(kind: ChildKind, { type, object, previous }: WholeChange): CacheChange<ChildEntry> {
  const retention = childRetention(kind, { apiVersion: 'v1', objectKind: 'Child' });
  return {
    type,
    object,
    ...(type !== 'deleted' ? { current: retention.retain(object) } : {}),
    ...(previous ? { previous: retention.retain(previous) } : {}),
  };
}

const brief = (publications: Publication[]) => publications.map((p) => `${p.stream} ${p.subject} ${p.msgID}`);

describe('routeChange', () => {
  it('publishes a Session change as an event and a work item for that Session', () => {
    const change: CacheChange = { type: 'modified', object: obj('s1', { rv: '42' }) };
    const routed = routeChange('session', change, noSessions);
    expect(routed.invalid).toEqual([]);
    expect(brief(routed.publications)).toEqual([
      'events streamspace.events.session.team-a.s1 uid-s1:42:modified',
      'work streamspace.work.0.session.team-a.s1 uid-s1:42:present>session/team-a/s1',
    ]);
    const [event, work] = routed.publications;
    // What subscribers get: the message as sent, the cached JSON of the object spliced in.
    const sent = changeEventSchema.parse(JSON.parse(publicationData(event as Publication)));
    expect(sent).toMatchObject({
      type: 'modified',
      kind: 'session',
      namespace: 'team-a',
      name: 's1',
      uid: 'uid-s1',
      resourceVersion: '42',
      generation: 1,
      observedAt: '2025-01-02T03:04:05.000Z',
    });
    expect(sent.object).toEqual({
      metadata: expect.objectContaining({ name: 's1' }),
      spec: {},
    });
    expect(workItemSchema.parse(work?.body)).toEqual({
      kind: 'session',
      namespace: 'team-a',
      name: 's1',
      reason: 'session-modified',
    });
  });

  it('gives the same state seen by a list (added) and by a watch (modified) one work item id, but a deletion another', () => {
    const object = obj('s1', { rv: '42' });
    const work = (type: CacheChange['type']) =>
      routeChange('session', { type, object }, noSessions).publications.find((p) => p.stream === 'work')
        ?.msgID;
    expect(work('added')).toBe(work('modified'));
    expect(work('deleted')).not.toBe(work('modified'));
  });

  it.each(['deployment', 'pod'] as const)('routes a %s labelled with its Session to that Session', (kind) => {
    const labelled = obj('ss-s1-abc', { rv: '7', labels: { [LABELS.session]: 's1' } });
    // A ready pod that vanishes matters to its Session (so does any deleted Deployment).
    const child = withRaw(labelled, {
      ...labelled.raw,
      status: { conditions: [{ type: 'Ready', status: 'True' }] },
    });
    const routed = routeChange(kind, { type: 'deleted', object: child }, noSessions);
    expect(brief(routed.publications)).toEqual([
      `events streamspace.events.${kind}.team-a.ss-s1-abc uid-ss-s1-abc:7:deleted`,
      `work streamspace.work.0.session.team-a.s1 uid-ss-s1-abc:7:deleted>session/team-a/s1`,
    ]);
    expect(routed.publications[1]?.body).toMatchObject({ reason: `${kind}-deleted` });
  });

  it('publishes only the event for a managed child without a Session label', () => {
    const routed = routeChange('pod', { type: 'modified', object: obj('stray') }, noSessions);
    expect(routed.publications.map((p) => p.stream)).toEqual(['events']);
  });

  it('publishes change events of the kinds asked for only; the others are still routed', () => {
    const defaults = { ...noSessions, eventKinds: new Set(DEFAULT_EVENT_KINDS) };
    const labelled = obj('ss-s1-abc', { rv: '7', labels: { [LABELS.session]: 's1' } });
    const pod = withRaw(labelled, { ...labelled.raw, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
    // A ready Pod's deletion wakes its Session, with or without its event.
    expect(brief(routeChange('pod', { type: 'deleted', object: pod }, defaults).publications)).toEqual([
      'work streamspace.work.0.session.team-a.s1 uid-ss-s1-abc:7:deleted>session/team-a/s1',
    ]);
    expect(routeChange('deployment', { type: 'deleted', object: pod }, defaults).publications.map((p) => p.stream)).toEqual(['work']);
    expect(routeChange('session', { type: 'added', object: obj('s1') }, defaults).publications.map((p) => p.stream)).toEqual([
      'events',
      'work',
    ]);
    expect(DEFAULT_EVENT_KINDS).toEqual(['session', 'template']);
  });

  it('fans a Template change out to the Template and every Session that uses it', () => {
    const previous = obj('firefox', { rv: '5', generation: 1 });
    const change: CacheChange = {
      type: 'modified',
      object: obj('firefox', { rv: '9', generation: 2 }),
      previous,
    };
    const routed = routeChange('template', change, withSessions(['s1', 's2']));
    expect(brief(routed.publications)).toEqual([
      'events streamspace.events.template.team-a.firefox uid-firefox:9:modified',
      'work streamspace.work.0.template.team-a.firefox uid-firefox:9:present>template/team-a/firefox',
      'work streamspace.work.0.session.team-a.s1 uid-firefox:9:present>session/team-a/s1',
      'work streamspace.work.0.session.team-a.s2 uid-firefox:9:present>session/team-a/s2',
    ]);
    expect(routed.publications.slice(1).map((p) => (p.body as { reason: string }).reason)).toEqual([
      'template-modified',
      'template-modified',
      'template-modified',
    ]);
  });

  it('enqueues a Session for a new generation, not for a status-only write', () => {
    const works = (change: CacheChange) =>
      routeChange('session', change, noSessions).publications.filter((p) => p.stream === 'work').length;
    const before = obj('s1', { rv: '8', generation: 2 });
    expect(works({ type: 'modified', object: obj('s1', { rv: '9', generation: 2 }), previous: before })).toBe(
      0,
    );
    expect(works({ type: 'modified', object: obj('s1', { rv: '9', generation: 3 }), previous: before })).toBe(
      1,
    );
    expect(works({ type: 'added', object: before })).toBe(1);
    expect(works({ type: 'deleted', object: before })).toBe(1);
    // The event for any subscriber is published either way.
    expect(
      routeChange(
        'session',
        { type: 'modified', object: obj('s1', { rv: '9', generation: 2 }), previous: before },
        noSessions,
      ).publications,
    ).toHaveLength(1);
  });

  it('enqueues a Session for its Deployment’s spec changes and its Pod’s readiness, not for their other updates', () => {
    const labels = { [LABELS.session]: 's1' };
    const works = (kind: 'deployment' | 'pod', change: WholeChange) =>
      routeChange(kind, childChange(kind, change), noSessions).publications.filter((p) => p.stream === 'work')
        .length;
    const deployment = (rv: string, generation: number, status: Record<string, unknown>) => {
      const o = obj('ss-s1', { rv, generation, labels });
      return withRaw(o, { ...o.raw, status });
    };
    expect(
      works('deployment', {
        type: 'modified',
        object: deployment('2', 1, { readyReplicas: 1 }),
        previous: deployment('1', 1, {}),
      }),
    ).toBe(0);
    expect(
      works('deployment', {
        type: 'modified',
        object: deployment('2', 2, {}),
        previous: deployment('1', 1, {}),
      }),
    ).toBe(1);
    const pod = (rv: string, status: Record<string, unknown>, deleting = false) => {
      const o = obj('ss-s1-x', { rv, labels });
      return withRaw(o, {
        metadata: { ...(o.raw.metadata as object), ...(deleting ? { deletionTimestamp: 'now' } : {}) },
        status,
      });
    };
    const ready = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] };
    expect(
      works('pod', {
        type: 'modified',
        object: pod('3', { ...ready, podIP: '10.0.0.2' }),
        previous: pod('2', ready),
      }),
    ).toBe(0);
    expect(
      works('pod', { type: 'modified', object: pod('3', ready), previous: pod('2', { phase: 'Pending' }) }),
    ).toBe(1);
    expect(works('pod', { type: 'modified', object: pod('3', ready, true), previous: pod('2', ready) })).toBe(
      1,
    );
    const waiting = {
      phase: 'Pending',
      containerStatuses: [{ state: { waiting: { reason: 'ErrImagePull' } } }],
    };
    expect(
      works('pod', { type: 'modified', object: pod('3', waiting), previous: pod('2', { phase: 'Pending' }) }),
    ).toBe(1);
    expect(works('pod', { type: 'deleted', object: pod('3', ready) })).toBe(1);
    // What its Session's status is made of did not change: a starting pod appearing or getting
    // scheduled, a terminating pod's last updates and its final deletion.
    expect(works('pod', { type: 'added', object: pod('1', { phase: 'Pending' }) })).toBe(0);
    expect(works('pod', { type: 'added', object: pod('1', ready) })).toBe(1);
    expect(
      works('pod', {
        type: 'modified',
        object: pod('2', { phase: 'Running' }),
        previous: pod('1', { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }] }),
      }),
    ).toBe(0);
    expect(
      works('pod', {
        type: 'modified',
        object: pod('4', { phase: 'Running' }, true),
        previous: pod('3', ready, true),
      }),
    ).toBe(0);
    expect(
      works('pod', {
        type: 'deleted',
        object: pod('5', { phase: 'Running' }, true),
        previous: pod('4', ready, true),
      }),
    ).toBe(0);
  });

  it('finds the Session of a child whose label holds a shortened name through its annotation', () => {
    const longName = `${'a'.repeat(70)}.desktop`;
    const o = obj('ss-shortened', { labels: { [LABELS.session]: 'aaaa-0123456789abcdef' } });
    const child = withRaw(o, {
      metadata: { ...(o.raw.metadata as object), annotations: { [ANNOTATIONS.session]: longName } },
      status: { conditions: [{ type: 'Ready', status: 'True' }] },
    });
    const [work] = routeChange('pod', { type: 'deleted', object: child }, noSessions).publications.filter(
      (p) => p.stream === 'work',
    );
    expect(work?.subject).toBe(subjects.work('session', 'team-a', longName, 1));
  });

  it('fans out additions and deletions of a Template, but not status-only updates', () => {
    const sessions = withSessions(['s1']);
    const count = (change: CacheChange) => routeChange('template', change, sessions).publications.length;
    expect(count({ type: 'added', object: obj('firefox') })).toBe(3);
    expect(count({ type: 'deleted', object: obj('firefox') })).toBe(3);
    const statusOnly: CacheChange = {
      type: 'modified',
      object: obj('firefox', { rv: '9', generation: 3 }),
      previous: obj('firefox', { rv: '8', generation: 3 }),
    };
    expect(count(statusOnly)).toBe(2);
  });

  it('reports an object that breaks the message schema instead of publishing it', () => {
    const bad = obj('Bad_Name', { labels: { [LABELS.session]: 'Also Bad' } });
    const routed = routeChange('deployment', { type: 'deleted', object: bad }, noSessions);
    expect(routed.publications).toEqual([]);
    expect(routed.invalid).toHaveLength(2);
    expect(routed.invalid[0]).toMatch(
      /^events message for streamspace\.events\.deployment\.team-a\.Bad_Name: name:/,
    );
  });

  it('escapes dots of Template names in subjects', () => {
    const routed = routeChange('template', { type: 'added', object: obj('desk.top') }, noSessions);
    expect(routed.publications.map((p) => p.subject)).toEqual([
      'streamspace.events.template.team-a.desk_top',
      'streamspace.work.0.template.team-a.desk_top',
    ]);
  });
});

describe('routeResync', () => {
  it('announces every object as a resync event and a work item named after the round', () => {
    const routed = routeResync(
      'session',
      [obj('s1', { rv: '3' }), obj('s2', { rv: '4' })],
      'p17',
      observedAt,
      1,
    );
    expect(brief(routed.publications)).toEqual([
      'events streamspace.events.session.team-a.s1 uid-s1:3:resync:p17',
      'work streamspace.work.0.session.team-a.s1 uid-s1:3:resync:p17>session/team-a/s1',
      'events streamspace.events.session.team-a.s2 uid-s2:4:resync:p17',
      'work streamspace.work.0.session.team-a.s2 uid-s2:4:resync:p17>session/team-a/s2',
    ]);
    expect(routed.publications[0]?.body).toMatchObject({ type: 'resync' });
    expect(routed.publications[1]?.body).toMatchObject({ reason: 'resync' });
  });

  it('uses other ids in another round', () => {
    const ids = (round: string) =>
      routeResync('template', [obj('t')], round, observedAt, 1).publications.map((p) => p.msgID);
    expect(ids('p1')).not.toEqual(ids('p2'));
  });
});

describe('workReasons', () => {
  it('lists every reason a work item can carry', () => {
    expect(workReasons('template')).toEqual([
      'template-added',
      'template-modified',
      'template-deleted',
      'resync',
    ]);
    // Sessions, Templates, Deployments, Pods, Services, Ingresses, NetworkPolicies × 3, and resync.
    expect(workReasons('session')).toHaveLength(22);
    expect(workReasons('session')).toContain('pod-modified');
    expect(workReasons('session')).toContain('ingress-deleted');
  });
});

describe('childChangeMatters', () => {
  const child = (rv: string, spec: Record<string, unknown>, generation?: number): KubeObject => {
    const raw = { metadata: { name: 'ss-x', namespace: 'a' }, spec };
    return {
      namespace: 'a',
      name: 'ss-x',
      uid: 'u',
      resourceVersion: rv,
      generation,
      labels: {},
      raw,
      json: JSON.stringify(raw),
      bytes: 0,
    };
  };
  const matters = (kind: ChildKind, change: WholeChange, desiredReplicas?: number) =>
    childChangeMatters(kind, childChange(kind, change), desiredReplicas);
  const modified = (previous: KubeObject, object: KubeObject) => ({
    type: 'modified' as const,
    object,
    previous,
  });

  it('ignores the echo of our own writes: a child created, a Deployment scaled', () => {
    expect(matters('service', { type: 'added', object: child('1', {}) })).toBe(false);
    expect(matters('deployment', { type: 'added', object: child('1', {}, 1) })).toBe(false);
    // Scaled to what its Session asks for: the reconciler's own hibernation.
    const scaled = (to: number, image = 'a') =>
      modified(child('1', { replicas: 1, image: 'a' }, 1), child('2', { replicas: to, image }, 2));
    expect(matters('deployment', scaled(0), 0)).toBe(false);
    // Scaled to anything else (by hand), with the Session unknown, or with more than replicas changed: drift.
    expect(matters('deployment', scaled(2), 1)).toBe(true);
    expect(matters('deployment', scaled(0))).toBe(true);
    expect(matters('deployment', scaled(0, 'b'), 0)).toBe(true);
  });

  it('routes drift and deletions', () => {
    expect(
      matters(
        'deployment',
        modified(child('1', { replicas: 1, image: 'a' }, 1), child('2', { replicas: 1, image: 'b' }, 2)),
      ),
    ).toBe(true);
    expect(matters('service', modified(child('1', { ports: [1] }), child('2', { ports: [2] })))).toBe(true);
    expect(matters('service', modified(child('1', { ports: [1] }), child('2', { ports: [1] })))).toBe(false);
    expect(matters('ingress', { type: 'deleted', object: child('1', {}, 1) })).toBe(true);
    expect(matters('service', { type: 'deleted', object: child('1', {}) })).toBe(true);
  });
});
