import { SharedStateReader, type StateEntries, type StateEntry, stateKey } from '@streamspace/shared';
import { describe, expect, it } from 'vitest';
import { StateReads } from './state-reads.js';

const encode = (object: object) => new TextEncoder().encode(JSON.stringify(object));
const meta = (name: string) => ({ name, namespace: 'ns', uid: `uid-${name}`, resourceVersion: '1' });

/** A shared state in memory that counts the reads (NATS requests) made of it. */
function memoryState(objects: Record<string, object>) {
  const reads: string[][] = [];
  const entries: StateEntries = {
    get: async () => null,
    entries: async (filters) => {
      reads.push(filters);
      const found: StateEntry[] = [];
      for (const filter of filters) {
        const prefix = filter.endsWith('.>') ? filter.slice(0, -1) : undefined;
        for (const [key, value] of Object.entries(objects))
          if (prefix ? key.startsWith(prefix) : key === filter)
            found.push({ key, operation: 'PUT', value: encode(value) });
      }
      return found;
    },
  };
  return { reads, reader: new SharedStateReader(entries) };
}

function session(template: string, persistentHome = false) {
  return {
    kind: 'Session',
    metadata: meta('desk'),
    spec: { user: 'alice', template, state: 'running', persistentHome },
  };
}

describe('a reconcile reads the shared state', () => {
  it('once when the Session names the Template it named last time, twice when not', async () => {
    const objects: Record<string, object> = {
      [stateKey('session', 'ns', 'desk')]: session('firefox'),
      [stateKey('template', 'ns', 'firefox')]: { kind: 'Template', metadata: meta('firefox'), spec: {} },
      [stateKey('template', 'ns', 'gimp')]: { kind: 'Template', metadata: meta('gimp'), spec: {} },
      [stateKey('deployment', 'ns', 'ss-desk')]: { kind: 'Deployment', metadata: meta('ss-desk') },
      'pod.ns.desk.ss-desk-1': { kind: 'Pod', metadata: meta('ss-desk-1') },
    };
    const { reads, reader } = memoryState(objects);
    const state = new StateReads(reader);
    const reconcile = async () => {
      const { session: read, observe } = await state.readSessionWithState('ns', 'desk', 'ss-desk');
      if (!read) throw new Error('no session');
      return observe(read);
    };

    // First time: the Template's name comes from the Session, so it is a second read.
    let observed = await reconcile();
    expect(reads).toHaveLength(2);
    expect(observed.template?.metadata.name).toBe('firefox');
    expect(observed.deployment?.metadata?.name).toBe('ss-desk');
    expect(observed.pods.map((p) => p.metadata?.name)).toEqual(['ss-desk-1']);

    // Then the Template is read with the Session: one read.
    observed = await reconcile();
    expect(reads).toHaveLength(3);
    expect(observed.template?.metadata.name).toBe('firefox');

    // The Session now names another Template: read again, the right one.
    objects[stateKey('session', 'ns', 'desk')] = session('gimp');
    observed = await reconcile();
    expect(reads).toHaveLength(5);
    expect(observed.template?.metadata.name).toBe('gimp');
  });

  it('forgets the names a deleted Session gave', async () => {
    const objects: Record<string, object> = {
      [stateKey('session', 'ns', 'desk')]: session('firefox'),
      [stateKey('template', 'ns', 'firefox')]: { kind: 'Template', metadata: meta('firefox'), spec: {} },
    };
    const { reads, reader } = memoryState(objects);
    const state = new StateReads(reader);
    const reconcile = async () => {
      const { session: read, observe } = await state.readSessionWithState('ns', 'desk', 'ss-desk');
      return read ? observe(read) : undefined;
    };
    await reconcile();
    await reconcile();
    // Remembered: the Template is read with the Session.
    expect(reads).toHaveLength(3);
    expect(reads[2]).toContain(stateKey('template', 'ns', 'firefox'));

    delete objects[stateKey('session', 'ns', 'desk')];
    expect(await reconcile()).toBeUndefined();
    expect(reads).toHaveLength(4);

    // Created again: its names are not guessed from the deleted one's.
    objects[stateKey('session', 'ns', 'desk')] = session('firefox');
    await reconcile();
    expect(reads).toHaveLength(6);
    expect(reads[4]).not.toContain(stateKey('template', 'ns', 'firefox'));
  });

  it('reads a home claim under both its names, with the Session once they are known', async () => {
    const objects: Record<string, object> = {
      [stateKey('session', 'ns', 'desk')]: session('firefox', true),
      [stateKey('pvc', 'ns', 'home-legacy')]: {
        kind: 'PersistentVolumeClaim',
        metadata: meta('home-legacy'),
      },
    };
    const { reads, reader } = memoryState(objects);
    const state = new StateReads(reader);
    const claims = { current: 'home-new', legacy: 'home-legacy' };
    for (const expectedReads of [2, 3]) {
      const { session: read, observe } = await state.readSessionWithState('ns', 'desk', 'ss-desk');
      if (!read) throw new Error('no session');
      const observed = await observe(read, claims);
      expect(reads).toHaveLength(expectedReads);
      expect(observed.homeClaim).toBeUndefined();
      expect(observed.legacyHomeClaim?.metadata?.name).toBe('home-legacy');
      expect(observed.template).toBeUndefined();
    }
  });

  it('says a Session that is not there is absent', async () => {
    const { reads, reader } = memoryState({});
    const { session: read } = await new StateReads(reader).readSessionWithState('ns', 'gone', 'ss-gone');
    expect(read).toBeUndefined();
    expect(reads).toHaveLength(1);
  });
});
