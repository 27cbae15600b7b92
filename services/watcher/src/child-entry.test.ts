import { ObjectCache, parseKubeObject } from '@streamspace/kube';
import { ANNOTATIONS, LABELS, podStateKey, subjects, trimObject } from '@streamspace/shared';
import { describe, expect, it } from 'vitest';
import {
  type ChildEntry,
  childDigest,
  childRetention,
  keptDigest,
  keptUnchanged,
  NO_DIGEST,
  podDigest,
} from './child-entry.js';
import { childStateKey, routeChange, stateEntryKey } from './work-routing.js';

const podType = { apiVersion: 'v1', objectKind: 'Pod' };

function pod(rv: string, options: { ready?: boolean; annotations?: Record<string, string> } = {}) {
  const parsed = parseKubeObject(
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        namespace: 'team-a',
        name: 'ss-s1-abc',
        uid: 'uid-p',
        resourceVersion: rv,
        labels: { [LABELS.session]: 's1-short' },
        ...(options.annotations ? { annotations: options.annotations } : {}),
        managedFields: [{ manager: 'kubelet' }],
      },
      spec: { containers: [{ name: 'desktop', image: 'x' }] },
      status: options.ready ? { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } : {},
    },
    (raw) => trimObject('pod', raw),
  );
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.object;
}

const deploymentType = { apiVersion: 'apps/v1', objectKind: 'Deployment' };

function deployment(rv: string, replicas: number, status: Record<string, unknown>) {
  const parsed = parseKubeObject(
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        namespace: 'team-a',
        name: 'ss-s1',
        uid: 'uid-d',
        resourceVersion: rv,
        generation: replicas === 1 ? 1 : 2,
        labels: { [LABELS.session]: 's1' },
      },
      spec: { replicas, template: { spec: { containers: [{ name: 'desktop', image: 'x' }] } } },
      status,
    },
    (raw) => trimObject('deployment', raw),
  );
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.object;
}

describe('keptUnchanged', () => {
  const retention = childRetention('deployment', deploymentType);
  const modified = (before: ReturnType<typeof deployment>, after: ReturnType<typeof deployment>) => ({
    type: 'modified' as const,
    object: after,
    previous: retention.retain(before),
    current: retention.retain(after),
  });

  it('tells a status rewrite (not kept) from a change of what the shared state keeps', () => {
    const created = deployment('10', 1, {});
    const progressing = deployment('11', 1, { observedGeneration: 1, replicas: 1 });
    const available = deployment('12', 1, { observedGeneration: 1, replicas: 1, readyReplicas: 1 });
    expect(keptUnchanged(modified(created, progressing))).toBe(true);
    expect(keptUnchanged(modified(progressing, available))).toBe(true);
    // Scaled to zero: the spec (and generation) changed.
    expect(keptUnchanged(modified(available, deployment('13', 0, {})))).toBe(false);
  });

  it('always counts an addition or a deletion, and a change of a child it held nothing of', () => {
    const object = deployment('10', 1, {});
    const entry = retention.retain(object);
    expect(keptUnchanged({ type: 'added', object, current: entry })).toBe(false);
    expect(keptUnchanged({ type: 'deleted', object, previous: entry })).toBe(false);
    expect(keptUnchanged({ type: 'modified', object, current: entry })).toBe(false);
  });

  it('does not mistake an object for another with the same content but another uid', () => {
    const a = deployment('10', 1, {});
    const other = parseKubeObject(JSON.parse(a.json.replace('uid-d', 'uid-e')));
    if (!other.ok) throw new Error(other.reason);
    expect(keptDigest(other.object)).not.toBe(keptDigest(a));
    // The resourceVersion alone does not count.
    expect(keptDigest(deployment('99', 1, { replicas: 1 }))).toBe(keptDigest(a));
  });
});

/** What a ChildEntry says, field by field (its packed form's getters read). */
function fields(entry: ChildEntry) {
  const { namespace, name, uid, resourceVersion, generation, bytes, session, digest, kept, replicas } = entry;
  return { namespace, name, uid, resourceVersion, generation, bytes, session, digest, kept, replicas };
}

describe('childRetention', () => {
  it('reads back what it packed: a UUID, a resourceVersion, its Session inside its name, both digests', () => {
    const retention = childRetention('deployment', deploymentType);
    const uid = 'ccd17429-3f9c-41d0-b128-f4e6f2fae5e5';
    for (const resourceVersion of ['26299', '007', '18446744073709551615']) {
      const parsed = parseKubeObject(
        {
          metadata: {
            namespace: 'team-a',
            name: 'ss-bench-1007',
            uid,
            resourceVersion,
            generation: 3,
            labels: { [LABELS.session]: 'bench-1007' },
          },
          spec: { replicas: 1, template: { spec: { containers: [{ image: 'x' }] } } },
        },
        (raw) => trimObject('deployment', raw),
      );
      if (!parsed.ok) throw new Error(parsed.reason);
      expect(fields(retention.retain(parsed.object))).toEqual({
        namespace: 'team-a',
        name: 'ss-bench-1007',
        uid,
        resourceVersion,
        generation: 3,
        bytes: 0,
        session: 'bench-1007',
        digest: childDigest('deployment', parsed.object.raw),
        kept: keptDigest(parsed.object),
        replicas: 1,
      });
    }
  });

  it('is held by the cache as the same child while its uid stays, and as a deletion and an addition when it changes', () => {
    const cache = new ObjectCache(childRetention('deployment', deploymentType));
    expect(cache.upsert(deployment('10', 1, {})).map((c) => c.type)).toEqual(['added']);
    expect(cache.holds(deployment('10', 1, {}))).toBe(true);
    const modified = cache.upsert(deployment('11', 0, {}));
    expect(modified.map((c) => c.type)).toEqual(['modified']);
    expect([modified[0]?.previous?.replicas, modified[0]?.current?.replicas]).toEqual([1, 0]);
    const recreated = parseKubeObject(JSON.parse(deployment('12', 1, {}).json.replace('uid-d', 'uid-d2')));
    if (!recreated.ok) throw new Error(recreated.reason);
    const changes = cache.upsert(recreated.object);
    expect(changes.map((c) => `${c.type} ${c.object.uid}@${c.object.resourceVersion}`)).toEqual([
      'deleted uid-d@11',
      'added uid-d2@12',
    ]);
    expect(changes[0]?.previous?.session).toBe('s1');
    expect(cache.get('team-a', 'ss-s1')?.uid).toBe('uid-d2');
    expect(cache.size).toBe(1);
  });

  it('keeps a child’s identity, its Session and a digest, not its JSON', () => {
    const retention = childRetention('pod', podType);
    const object = pod('7', { ready: true, annotations: { [ANNOTATIONS.session]: 's1.full.name' } });
    const entry = retention.retain(object);
    expect(fields(entry)).toEqual({
      namespace: 'team-a',
      name: 'ss-s1-abc',
      uid: 'uid-p',
      resourceVersion: '7',
      generation: undefined,
      bytes: 0,
      session: 's1.full.name',
      digest: podDigest(object.raw),
      kept: keptDigest(object),
      replicas: undefined,
    });
    expect(entry.digest).not.toBe(NO_DIGEST);
    expect(JSON.stringify(entry).length).toBeLessThan(object.json.length);
    expect(retention.retain(pod('8')).digest).toBe(NO_DIGEST);
    // Its key in the shared state is the one the change was stored under.
    expect(childStateKey('pod', entry)).toBe(stateEntryKey('pod', object));
    expect(childStateKey('pod', entry)).toBe(podStateKey('team-a', 's1.full.name', 'ss-s1-abc'));
  });

  it('stands in for a child a relist found gone with what routes its deletion to its Session', () => {
    const retention = childRetention('pod', podType);
    const entry = retention.retain(
      pod('7', { ready: true, annotations: { [ANNOTATIONS.session]: 's1.full.name' } }),
    );
    const restored = retention.restore(entry);
    expect([restored.namespace, restored.name, restored.uid, restored.resourceVersion]).toEqual([
      'team-a',
      'ss-s1-abc',
      'uid-p',
      '7',
    ]);
    expect(stateEntryKey('pod', restored)).toBe(childStateKey('pod', entry));
    // A ready pod gone: its Session's status changes, so its Session is woken.
    const routed = routeChange(
      'pod',
      { type: 'deleted', object: restored, previous: entry },
      {
        sessionsUsing: () => [],
        observedAt: new Date(0),
        partitions: 1,
        eventKinds: new Set(['pod'] as const),
      },
    );
    expect(routed.invalid).toEqual([]);
    expect(routed.publications.map((p) => `${p.stream} ${p.subject}`)).toEqual([
      `events ${subjects.event('pod', 'team-a', 'ss-s1-abc')}`,
      `work ${subjects.work('session', 'team-a', 's1.full.name', 1)}`,
    ]);
  });

  it('tells a Deployment’s replicas from the rest of its spec', () => {
    const retention = childRetention('deployment', { apiVersion: 'apps/v1', objectKind: 'Deployment' });
    const deployment = (replicas: number, image: string) => {
      const parsed = parseKubeObject({
        metadata: { namespace: 'a', name: 'ss-d', uid: 'u', resourceVersion: '1', generation: 1 },
        spec: { replicas, template: { spec: { containers: [{ image }] } } },
      });
      if (!parsed.ok) throw new Error(parsed.reason);
      return retention.retain(parsed.object);
    };
    expect(deployment(1, 'a').replicas).toBe(1);
    expect(deployment(0, 'a').digest).toBe(deployment(1, 'a').digest);
    expect(deployment(1, 'b').digest).not.toBe(deployment(1, 'a').digest);
  });

  it('takes a name string another kind’s entry holds, asked only for a first version, and reads back the same', () => {
    const service = (name: string, session: string, rv: string) => {
      const parsed = parseKubeObject(
        {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: {
            namespace: 'team-a',
            name,
            uid: `uid-${name}`,
            resourceVersion: rv,
            labels: { [LABELS.session]: session },
          },
          spec: { ports: [{ port: 3000 }] },
        },
        (raw) => trimObject('service', raw),
      );
      if (!parsed.ok) throw new Error(parsed.reason);
      return parsed.object;
    };
    const deployments = new ObjectCache(childRetention('deployment', deploymentType));
    const asked: string[] = [];
    const services = new ObjectCache(
      childRetention('service', { apiVersion: 'v1', objectKind: 'Service' }, (namespace, name) => {
        asked.push(`${namespace}/${name}`);
        return deployments.get(namespace, name)?.name;
      }),
    );
    deployments.upsert(deployment('10', 1, {}));
    // Named as its Session's Deployment; then one of a name no Deployment has; then a new version.
    const [shared] = services.upsert(service('ss-s1', 's1', '20'));
    const [own] = services.upsert(service('ss-other', 'other', '21'));
    services.upsert(service('ss-s1', 's1', '22'));
    expect(asked).toEqual(['team-a/ss-s1', 'team-a/ss-other']);
    expect([shared?.current?.name, shared?.current?.session]).toEqual(['ss-s1', 's1']);
    expect([own?.current?.name, own?.current?.session]).toEqual(['ss-other', 'other']);
    expect(services.get('team-a', 'ss-s1')?.resourceVersion).toBe('22');
    expect(services.size).toBe(2);
  });

  it('is held by the cache as one string where every field has a packed form, read back field for field', () => {
    const retention = childRetention('deployment', deploymentType);
    const cache = new ObjectCache(retention);
    const [added] = cache.upsert(deployment('10', 1, {}));
    const held = cache.get('team-a', 'ss-s1');
    if (!added?.current || !held) throw new Error('not cached');
    expect(typeof retention.pack?.(added.current)).toBe('string');
    expect(fields(held)).toEqual(fields(added.current));
    expect([held.resourceVersion, held.generation, held.replicas, held.session]).toEqual(['10', 1, 1, 's1']);
    // Each read is a new object around the same string, equal in every field (no identity to rely on).
    expect(cache.get('team-a', 'ss-s1')).not.toBe(held);
    expect([...cache.values()].map(fields)).toEqual([fields(held)]);
    // A resourceVersion with no packed form: the entry object itself is held, and reads back the same.
    const odd = parseKubeObject(JSON.parse(deployment('11', 0, {}).json.replace('"11"', '"011"')));
    if (!odd.ok) throw new Error(odd.reason);
    const [modified] = cache.upsert(odd.object);
    if (!modified?.current) throw new Error('not cached');
    expect(retention.pack?.(modified.current)).toBe(modified.current);
    expect(cache.get('team-a', 'ss-s1')).toBe(modified.current);
    expect([modified.previous?.resourceVersion, modified.current.resourceVersion]).toEqual(['10', '011']);
    expect(modified.current.replicas).toBe(0);
  });
});
