import { describe, expect, it } from 'vitest';
import { KEEP_ENTRY, StateStore } from './state-store.js';

function harness(fail: () => boolean = () => false) {
  const log: string[] = [];
  const released: string[] = [];
  /** Each source told it was stored, with its revision (the put's place in the log). */
  const stored: string[] = [];
  const store = new StateStore<string>({
    put: async (key, value) => {
      if (fail()) throw new Error('no responders');
      log.push(`put ${key}=${value}`);
      return log.length;
    },
    stored: (source, revision) => stored.push(`${(source as { name: string }).name}@${revision}`),
    delete: async (key) => {
      if (fail()) throw new Error('no responders');
      log.push(`delete ${key}`);
    },
    // A message names the key whose write it waits for: record whether that write had landed.
    release: (messages) => {
      for (const m of messages)
        released.push(`${m}: ${log.filter((l) => l.includes(` ${m.split(' ')[0]}`)).at(-1)}`);
    },
    concurrency: 4,
    backoff: { initialMs: 1, maxMs: 2 },
  });
  return { store, log, released, stored };
}

describe('StateStore', () => {
  it('reads a value given as a function only when its write is sent, at most `concurrency` at a time', async () => {
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const put: string[] = [];
    let made = 0;
    const store = new StateStore<string>({
      put: async (key, value) => {
        await gate;
        put.push(`${key}=${value}`);
        return put.length;
      },
      delete: async () => undefined,
      release: () => undefined,
      concurrency: 2,
    });
    for (let i = 0; i < 10; i++)
      store.write({
        key: `session.a.s${i}`,
        value: () => {
          made++;
          return `json ${i}`;
        },
        after: [],
      });
    // Ten writes queued, two in flight: only theirs have been made.
    expect(made).toBe(2);
    open();
    await store.idle();
    expect(made).toBe(10);
    expect(put).toHaveLength(10);
    expect(put).toContain('session.a.s9=json 9');
  });

  it('releases what a change triggers only after the change is stored', async () => {
    const { store, log, released } = harness();
    store.write({ key: 'session.a.x', value: '1', after: ['session.a.x work'] });
    store.write({ key: 'pod.a.x.p', value: undefined, after: ['pod.a.x.p work'] });
    await store.idle();
    expect(log).toEqual(['put session.a.x=1', 'delete pod.a.x.p']);
    expect(released).toEqual(['session.a.x work: put session.a.x=1', 'pod.a.x.p work: delete pod.a.x.p']);
  });

  it('keeps only the newest value of a key waiting, and all the messages it carries', async () => {
    const { store, log, released } = harness();
    store.write({ key: 'k', value: '1', after: ['k 1'] });
    store.write({ key: 'k', value: '2', after: ['k 2'] });
    store.write({ key: 'k', value: '3', after: ['k 3'] });
    await store.idle();
    // The first is already in flight; the second is replaced by the third.
    expect(log).toEqual(['put k=1', 'put k=3']);
    expect(released).toEqual(['k 1: put k=1', 'k 2: put k=3', 'k 3: put k=3']);
  });

  it('retries a failed write and holds its messages until it lands', async () => {
    let failures = 3;
    const { store, log, released } = harness(() => failures-- > 0);
    store.write({ key: 'k', value: '1', after: ['k 1'] });
    await store.idle();
    expect(log).toEqual(['put k=1']);
    expect(released).toEqual(['k 1: put k=1']);
  });

  it("leaves an entry as it is for KEEP_ENTRY, releasing its messages after the key's earlier writes", async () => {
    let failures = 1;
    const { store, log, released } = harness(() => failures-- > 0);
    // Nothing of the key pending: released at once, nothing written.
    store.write({ key: 'k', value: KEEP_ENTRY, after: ['k keep-0'] });
    expect(released).toEqual(['k keep-0: undefined']);
    // Behind a write in flight that fails once: the write is retried with its value, then both released.
    store.write({ key: 'k', value: '1', after: ['k 1'] });
    store.write({ key: 'k', value: KEEP_ENTRY, after: ['k keep-1'] });
    await store.idle();
    // Behind a waiting write: that value is stored, not dropped.
    store.write({ key: 'j', value: '1', after: [] });
    store.write({ key: 'j', value: '2', after: ['j 2'] });
    store.write({ key: 'j', value: KEEP_ENTRY, after: ['j keep'] });
    await store.idle();
    expect(log).toEqual(['put k=1', 'put j=1', 'put j=2']);
    expect(released).toEqual([
      'k keep-0: undefined',
      'k 1: put k=1',
      'k keep-1: put k=1',
      'j 2: put j=2',
      'j keep: put j=2',
    ]);
  });

  it("tells each stored value's source its revision; a source goes with its value when writes merge", async () => {
    let failures = 0;
    const { store, stored } = harness(() => failures-- > 0);
    const v = (name: string) => ({ name });
    // The first in flight, the second replaced by the third: only the first and third are stored.
    store.write({ key: 'k', value: '1', after: [], source: v('k1') });
    store.write({ key: 'k', value: '2', after: [], source: v('k2') });
    store.write({ key: 'k', value: '3', after: [], source: v('k3') });
    await store.idle();
    expect(stored).toEqual(['k1@1', 'k3@2']);
    // A KEEP_ENTRY behind a waiting write keeps that write's source; a deletion has none.
    store.write({ key: 'j', value: '1', after: [], source: v('j1') });
    store.write({ key: 'j', value: '2', after: [], source: v('j2') });
    store.write({ key: 'j', value: KEEP_ENTRY, after: [] });
    store.write({ key: 'd', value: undefined, after: [], source: v('d') });
    await store.idle();
    // (The log's 4th line is the deletion of d, sent while j2 waited for j1.)
    expect(stored).toEqual(['k1@1', 'k3@2', 'j1@3', 'j2@5']);
    // A write that fails while a KEEP_ENTRY waits is retried with its own value and source.
    failures = 1;
    store.write({ key: 'r', value: '1', after: [], source: v('r1') });
    store.write({ key: 'r', value: KEEP_ENTRY, after: [] });
    await store.idle();
    expect(stored).toEqual(['k1@1', 'k3@2', 'j1@3', 'j2@5', 'r1@6']);
  });
});
