import { describe, expect, it } from 'vitest';
import {
  type ListPage,
  ListWatch,
  ListWatchSet,
  type ListWatchTransport,
  type Parsed,
  type RestartReason,
} from './list-watch.js';

interface Item {
  name: string;
  v: number;
}

function item(name: string, v = 1, rv = '1') {
  return { metadata: { name, resourceVersion: rv }, v };
}

function parse(raw: unknown): Parsed<Item> {
  const r = raw as { metadata?: { name?: unknown }; v?: unknown } | null;
  if (typeof r?.metadata?.name !== 'string') return { ok: false, reason: 'no name' };
  return { ok: true, key: r.metadata.name, value: { name: r.metadata.name, v: Number(r.v) } };
}

/** A scripted API server: lists answer from a queue, watches are handed to the test to drive. */
class FakeServer implements ListWatchTransport {
  lists: (ListPage | Error)[] = [];
  listCalls = 0;
  watches: {
    rv: string;
    onEvent: (type: string, o: unknown) => void;
    onDone: (e: unknown) => void;
    aborted: boolean;
  }[] = [];

  async list(): Promise<ListPage> {
    this.listCalls++;
    const next = this.lists.shift();
    if (!next) throw new Error('no list scripted');
    if (next instanceof Error) throw next;
    return next;
  }

  async watch(
    rv: string,
    _timeout: number,
    onEvent: (type: string, o: unknown) => void,
    onDone: (e: unknown) => void,
  ) {
    const w = { rv, onEvent, onDone, aborted: false };
    this.watches.push(w);
    return { abort: () => (w.aborted = true) };
  }

  get current() {
    const w = this.watches.at(-1);
    if (!w) throw new Error('no watch yet');
    return w;
  }
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function setup(lists: (ListPage | Error)[], silenceTimeoutMs = 60_000) {
  const server = new FakeServer();
  server.lists = lists;
  const states: [boolean, string][] = [];
  const restarts: RestartReason[] = [];
  const malformed: string[] = [];
  const watch = new ListWatch<Item>({
    resource: 'things',
    transport: server,
    parse,
    watchTimeoutSeconds: 300,
    silenceTimeoutMs,
    backoff: { initialMs: 2, maxMs: 5 },
    onState: (up, reason) => states.push([up, reason]),
    onRestart: (reason) => restarts.push(reason),
    onMalformed: (_raw, reason) => malformed.push(reason),
  });
  const controller = new AbortController();
  const running = watch.run(controller.signal);
  return {
    server,
    watch,
    states,
    restarts,
    malformed,
    stop: () => {
      controller.abort();
      return running;
    },
  };
}

describe('list + watch', () => {
  it('is not synced until the whole list (every page) is read, then watches from its version', async () => {
    const t = setup([
      { items: [item('a'), { bad: true }], resourceVersion: '10', continueToken: 'p2' },
      { items: [item('b')], resourceVersion: '11' },
    ]);
    expect(t.watch.synced).toBe(false);
    await t.watch.whenSynced();
    await until(() => t.watch.current, 'watch up');
    expect(t.watch.values().map((i) => i.name)).toEqual(['a', 'b']);
    expect(t.server.current.rv).toBe('10');
    expect(t.malformed).toEqual(['no name']);
    expect(t.states).toEqual([[true, 'ok']]);
    await t.stop();
  });

  it('follows added, modified and deleted objects and bookmarks', async () => {
    const t = setup([{ items: [item('a')], resourceVersion: '10' }]);
    await until(() => t.watch.current, 'watch up');
    t.server.current.onEvent('ADDED', item('b', 1, '11'));
    t.server.current.onEvent('MODIFIED', item('a', 2, '12'));
    t.server.current.onEvent('DELETED', item('b', 1, '13'));
    t.server.current.onEvent('BOOKMARK', { metadata: { resourceVersion: '20' } });
    expect(t.watch.values()).toEqual([{ name: 'a', v: 2 }]);
    // The watch ends normally: the next one starts where the last bookmark was, without a list.
    t.server.current.onDone(null);
    await until(() => t.server.watches.length === 2, 'second watch');
    expect(t.server.current.rv).toBe('20');
    expect(t.server.listCalls).toBe(1);
    expect(t.restarts).toEqual(['closed']);
    await t.stop();
  });

  it('relists on 410 Gone, replacing what it knew', async () => {
    const t = setup([
      { items: [item('a'), item('b')], resourceVersion: '10' },
      { items: [item('c')], resourceVersion: '50' },
    ]);
    await until(() => t.watch.current, 'watch up');
    t.server.current.onEvent('ERROR', {
      kind: 'Status',
      code: 410,
      reason: 'Expired',
      message: 'too old resource version',
    });
    await until(() => t.server.watches.length === 2, 'watch after relist');
    expect(t.watch.values().map((i) => i.name)).toEqual(['c']);
    expect(t.server.current.rv).toBe('50');
    expect(t.restarts).toEqual(['gone']);
    expect(t.states.map(([up]) => up)).toEqual([true, false, true]);
    await t.stop();
  });

  it('retries a failing list with backoff, not ready meanwhile', async () => {
    const t = setup([
      new Error('connection refused'),
      new Error('connection refused'),
      { items: [], resourceVersion: '5' },
    ]);
    await until(() => t.watch.current, 'watch up');
    expect(t.server.listCalls).toBe(3);
    expect(t.states).toEqual([
      [false, 'cannot list things: connection refused'],
      [false, 'cannot list things: connection refused'],
      [true, 'ok'],
    ]);
    expect(t.restarts).toEqual(['error', 'error']);
    await t.stop();
  });

  it('restarts a failed or silent watch from where it was', async () => {
    const t = setup([{ items: [item('a')], resourceVersion: '10' }], 40);
    await until(() => t.server.watches.length === 1, 'first watch');
    t.server.current.onDone(new Error('socket hang up'));
    await until(() => t.server.watches.length === 2, 'watch after error');
    expect(t.server.current.rv).toBe('10');
    // Nothing arrives: the watchdog gives up on it and starts another.
    await until(() => t.server.watches.length === 3, 'watch after silence');
    expect(t.server.watches[1]?.aborted).toBe(true);
    expect(t.restarts.slice(0, 2)).toEqual(['error', 'watchdog']);
    expect(t.watch.values().map((i) => i.name)).toEqual(['a']);
    await t.stop();
  });
});

describe('ListWatchSet (one ListWatch per namespace)', () => {
  it('is the union of its members, synced and current only when every member is', async () => {
    // setup() runs each member; the second cannot list until the test scripts its answer.
    const a = setup([{ items: [item('a1'), item('a2')], resourceVersion: '10' }]);
    const b = setup([]);
    const set = new ListWatchSet([a.watch, b.watch]);
    let synced = false;
    void set.whenSynced().then(() => {
      synced = true;
    });
    await until(() => a.watch.current, 'the first member to list and watch');
    await until(() => b.server.listCalls > 1, 'the second member to retry its list');
    expect(set.synced).toBe(false);
    expect(set.current).toBe(false);
    expect(synced).toBe(false);
    b.server.lists.push({ items: [item('b1')], resourceVersion: '20' });
    await until(() => synced, 'whenSynced');
    await until(() => set.current, 'every member watching');
    expect(set.synced).toBe(true);
    expect(
      set
        .values()
        .map((v) => v.name)
        .sort(),
    ).toEqual(['a1', 'a2', 'b1']);
    await Promise.all([a.stop(), b.stop()]);
  });
});
