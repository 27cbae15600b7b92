import { describe, expect, it } from 'vitest';
import type { KubeObject } from './kube-object.js';
import { type CachedIdentity, type CacheRetention, ObjectCache } from './object-cache.js';

function obj(
  name: string,
  resourceVersion: string,
  uid = `uid-${name}`,
  namespace = 'ns',
  bytes = 100,
): KubeObject {
  const raw = { metadata: { namespace, name, uid, resourceVersion } };
  return {
    namespace,
    name,
    uid,
    resourceVersion,
    generation: 1,
    labels: {},
    raw,
    json: JSON.stringify(raw),
    bytes,
  };
}

const summary = (changes: { type: string; object: KubeObject }[]) =>
  changes.map((c) => `${c.type} ${c.object.name}@${c.object.resourceVersion}/${c.object.uid}`);

describe('ObjectCache', () => {
  it('reports an unknown object as added, a new version as modified, the same version as nothing', () => {
    const cache = new ObjectCache();
    expect(summary(cache.upsert(obj('a', '1')))).toEqual(['added a@1/uid-a']);
    const modified = cache.upsert(obj('a', '2'));
    expect(summary(modified)).toEqual(['modified a@2/uid-a']);
    expect(modified[0]?.previous?.resourceVersion).toBe('1');
    expect(cache.upsert(obj('a', '2'))).toEqual([]);
    expect(cache.get('ns', 'a')?.resourceVersion).toBe('2');
    expect(cache.size).toBe(1);
  });

  it('treats the same name with another uid as a deletion and a creation', () => {
    const cache = new ObjectCache();
    cache.upsert(obj('a', '1', 'old'));
    expect(summary(cache.upsert(obj('a', '5', 'new')))).toEqual(['deleted a@1/old', 'added a@5/new']);
  });

  it('removes on deletion and reports the final state, even for an object it never saw', () => {
    const cache = new ObjectCache();
    cache.upsert(obj('a', '1'));
    const removed = cache.remove(obj('a', '3'));
    expect(summary(removed)).toEqual(['deleted a@3/uid-a']);
    expect(removed[0]?.previous?.resourceVersion).toBe('1');
    expect(cache.size).toBe(0);
    expect(summary(cache.remove(obj('b', '4')))).toEqual(['deleted b@4/uid-b']);
  });

  it('does not evict the current object when an older incarnation is deleted', () => {
    const cache = new ObjectCache();
    cache.upsert(obj('a', '5', 'new'));
    expect(summary(cache.remove(obj('a', '4', 'old')))).toEqual(['deleted a@4/old']);
    expect(cache.get('ns', 'a')?.uid).toBe('new');
  });

  it('keeps namespaces apart', () => {
    const cache = new ObjectCache();
    cache.upsert(obj('a', '1', 'u1', 'x'));
    cache.upsert(obj('a', '1', 'u2', 'y'));
    expect(cache.size).toBe(2);
    expect(cache.get('y', 'a')?.uid).toBe('u2');
  });

  it('keys entries by namespace and name: entries(), a relist over namespaces, a namespace emptied', () => {
    const cache = new ObjectCache();
    cache.upsert(obj('a', '1', 'u1', 'x'));
    cache.upsert(obj('b', '1', 'u2', 'x'));
    cache.upsert(obj('a', '1', 'u3', 'y'));
    expect([...cache.entries()].map(([key, o]) => `${key} ${o.uid}`)).toEqual(['x/a u1', 'x/b u2', 'y/a u3']);
    // The list found only x/b: x/a and y/a were deleted meanwhile, whatever their namespace.
    expect(summary(cache.removeUnlisted(new Set(['x/b'])))).toEqual(['deleted a@1/u1', 'deleted a@1/u3']);
    expect([cache.size, cache.get('y', 'a'), cache.get('x', 'b')?.uid]).toEqual([1, undefined, 'u2']);
    cache.remove(obj('b', '2', 'u2', 'x'));
    expect([cache.size, [...cache.values()]]).toEqual([0, []]);
    // A namespace emptied and filled again holds its new objects.
    cache.upsert(obj('c', '1', 'u4', 'x'));
    expect([...cache.entries()].map(([key]) => key)).toEqual(['x/c']);
  });

  it('hands its retention what it held under the name, so an entry may take its strings', () => {
    const seen: (string | undefined)[] = [];
    const cache = new ObjectCache<KubeObject>({
      retain: (o, previous) => {
        seen.push(previous?.resourceVersion);
        return o;
      },
      restore: (e) => e,
    });
    cache.upsert(obj('a', '1'));
    cache.upsert(obj('a', '2'));
    cache.upsert(obj('a', '3', 'other-uid'));
    expect(seen).toEqual([undefined, '1', '2']);
  });

  it('turns a relist into the changes that happened while the watch was down', () => {
    const cache = new ObjectCache();
    cache.replace([obj('kept', '1'), obj('changed', '1'), obj('gone', '1'), obj('recreated', '1', 'r1')]);
    const changes = cache.replace([
      obj('kept', '1'),
      obj('changed', '2'),
      obj('new', '3'),
      obj('recreated', '4', 'r2'),
    ]);
    expect(summary(changes).sort()).toEqual(
      [
        'added new@3/uid-new',
        'added recreated@4/r2',
        'deleted gone@1/uid-gone',
        'deleted recreated@1/r1',
        'modified changed@2/uid-changed',
      ].sort(),
    );
    expect([...cache.values()].map((o) => o.name).sort()).toEqual(['changed', 'kept', 'new', 'recreated']);
  });

  it('reports everything as added on the first list', () => {
    const cache = new ObjectCache();
    expect(summary(cache.replace([obj('a', '1'), obj('b', '2')]))).toEqual([
      'added a@1/uid-a',
      'added b@2/uid-b',
    ]);
  });

  it('counts the bytes of what it holds through upserts, replacements, deletions and relists', () => {
    const cache = new ObjectCache();
    cache.upsert(obj('a', '1', 'uid-a', 'ns', 100));
    cache.upsert(obj('b', '1', 'uid-b', 'ns', 50));
    expect(cache.bytes).toBe(150);
    cache.upsert(obj('a', '2', 'uid-a', 'ns', 300));
    expect(cache.bytes).toBe(350);
    cache.upsert(obj('a', '3', 'uid-a2', 'ns', 10));
    expect(cache.bytes).toBe(60);
    cache.remove(obj('b', '2', 'uid-other', 'ns', 50));
    expect(cache.bytes).toBe(60);
    cache.remove(obj('b', '2', 'uid-b', 'ns', 50));
    expect(cache.bytes).toBe(10);
    cache.replace([obj('c', '1', 'uid-c', 'ns', 7)]);
    expect(cache.bytes).toBe(7);
  });

  it('keeps what its retention keeps, and stands in with it for an object found gone', () => {
    interface Entry extends CachedIdentity {
      note: string;
    }
    const retention: CacheRetention<Entry> = {
      retain: (o) => ({
        namespace: o.namespace,
        name: o.name,
        uid: o.uid,
        resourceVersion: o.resourceVersion,
        generation: o.generation,
        bytes: 0,
        note: `kept ${o.resourceVersion}`,
      }),
      restore: (e) => obj(e.name, e.resourceVersion, e.uid, e.namespace, 0),
    };
    const cache = new ObjectCache<Entry>(retention);
    const [added] = cache.upsert(obj('a', '1'));
    expect(added?.current?.note).toBe('kept 1');
    expect(cache.bytes).toBe(0);
    const [modified] = cache.upsert(obj('a', '2'));
    expect([modified?.previous?.note, modified?.current?.note]).toEqual(['kept 1', 'kept 2']);
    expect(cache.holds(obj('a', '2'))).toBe(true);
    expect(cache.holds(obj('a', '1'))).toBe(false);
    // A new uid: the old incarnation's deletion is reported with what the cache held of it.
    const replaced = cache.upsert(obj('a', '3', 'uid-new'));
    expect(summary(replaced)).toEqual(['deleted a@2/uid-a', 'added a@3/uid-new']);
    expect(replaced[0]?.previous?.note).toBe('kept 2');
    // A relist: listed unchanged (named only), listed changed, and gone.
    cache.upsert(obj('b', '1'));
    cache.upsert(obj('c', '1'));
    const relisted = cache.replace([obj('b', '2')], new Set(['ns/a']));
    expect(summary(relisted)).toEqual(['modified b@2/uid-b', 'deleted c@1/uid-c']);
    expect(relisted[1]?.previous?.note).toBe('kept 1');
    expect([...cache.values()].map((e) => e.note)).toEqual(['kept 3', 'kept 2']);
  });

  it('holds what its retention packs, and gives every read (get, iteration, a relist) the entry unpacked', () => {
    const held: unknown[] = [];
    const retention: CacheRetention<CachedIdentity> = {
      retain: (o) => ({ ...o, bytes: 0 }),
      restore: (e) => obj(e.name, e.resourceVersion, e.uid, e.namespace, 0),
      // Packs to `uid|resourceVersion`; the names come back from the cache's keys.
      pack: (e) => {
        const packed = `${e.uid}|${e.resourceVersion}`;
        held.push(packed);
        return packed;
      },
      unpack: (namespace, name, packed) => {
        const [uid, resourceVersion] = String(packed).split('|') as [string, string];
        return { namespace, name, uid, resourceVersion, generation: undefined, bytes: 0 };
      },
    };
    const cache = new ObjectCache(retention);
    cache.upsert(obj('a', '1'));
    cache.upsert(obj('b', '1', 'uid-b', 'other'));
    expect(held).toEqual(['uid-a|1', 'uid-b|1']);
    expect(cache.get('ns', 'a')).toEqual({
      namespace: 'ns',
      name: 'a',
      uid: 'uid-a',
      resourceVersion: '1',
      generation: undefined,
      bytes: 0,
    });
    expect(cache.holds(obj('a', '1'))).toBe(true);
    const [modified] = cache.upsert(obj('a', '2'));
    expect([modified?.previous?.resourceVersion, modified?.current?.resourceVersion]).toEqual(['1', '2']);
    expect([...cache.entries()].map(([key, e]) => `${key} ${e.uid}@${e.resourceVersion}`)).toEqual([
      'ns/a uid-a@2',
      'other/b uid-b@1',
    ]);
    // A relist that misses b: its deletion carries what the cache held of it, unpacked.
    const relisted = cache.replace([obj('a', '2')]);
    expect(summary(relisted)).toEqual(['deleted b@1/uid-b']);
    expect(relisted[0]?.previous?.namespace).toBe('other');
    expect([...cache.values()].map((e) => e.name)).toEqual(['a']);
    expect(cache.size).toBe(1);
  });
});
