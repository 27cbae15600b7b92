import { getEventListeners } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  Informer,
  type InformerOptions,
  type ListPage,
  type RestartReason,
  runInformers,
  type WatchTransport,
  watchTimeoutFor,
} from './informer.js';
import { KubeApiError } from './kube-error.js';
import type { CacheChange } from './object-cache.js';
import { Slots } from './slots.js';

/** A page as the fake API server sends it: its items and what the list says beyond them. */
type FakePage = ListPage & { items: unknown[] };

function raw(name: string, resourceVersion: string) {
  return { metadata: { namespace: 'ns', name, uid: `uid-${name}`, resourceVersion } };
}

interface FakeWatch {
  resourceVersion: string;
  timeoutSeconds: number;
  aborted: boolean;
  /** The API server's answer to the request (its response headers). */
  answer(): void;
  emit(type: string, object: unknown): void;
  end(error?: unknown): void;
}

/**
 * Plays the API server: lists come from `pages` (or throw), watches are driven by the test and
 * answered at once unless `answering` is false (then the test answers them, or not).
 */
class FakeTransport implements WatchTransport {
  pages: (FakePage | Error)[][] = [];
  answering = true;
  readonly listCalls: (string | undefined)[] = [];
  readonly watches: FakeWatch[] = [];
  private listRound = 0;
  private pageInRound = 0;

  async list(
    { continueToken }: { limit: number; continueToken?: string },
    onItem: (item: unknown) => void,
  ): Promise<ListPage> {
    this.listCalls.push(continueToken);
    const round = this.pages[Math.min(this.listRound, this.pages.length - 1)] ?? [];
    const page: FakePage | Error = round[this.pageInRound] ?? { items: [], resourceVersion: '1' };
    if (page instanceof Error || !page.continueToken) {
      this.listRound++;
      this.pageInRound = 0;
    } else {
      this.pageInRound++;
    }
    if (page instanceof Error) throw page;
    return FakeTransport.send(page, onItem);
  }

  /** Hands a page's items on one by one, as the real transport does, and returns the rest. */
  static send({ items, ...rest }: FakePage, onItem: (item: unknown) => void): ListPage {
    for (const item of items) onItem(item);
    return rest;
  }

  async watch(
    resourceVersion: string,
    timeoutSeconds: number,
    onEvent: (type: string, object: unknown) => void,
    onDone: (error: unknown) => void,
    onAnswered: () => void,
  ) {
    const watch: FakeWatch = {
      resourceVersion,
      timeoutSeconds,
      aborted: false,
      answer: onAnswered,
      emit: (type, object) => onEvent(type, object),
      end: (error) => onDone(error ?? null),
    };
    this.watches.push(watch);
    if (this.answering) watch.answer();
    return {
      abort: () => {
        watch.aborted = true;
      },
    };
  }

  get current(): FakeWatch {
    const watch = this.watches.at(-1);
    if (!watch) throw new Error('no watch started yet');
    return watch;
  }
}

function harness(transport: FakeTransport, silenceTimeoutMs = 60_000, extra: Partial<InformerOptions> = {}) {
  const changes: string[] = [];
  const states: string[] = [];
  const restarts: RestartReason[] = [];
  const malformed: string[] = [];
  const controller = new AbortController();
  const watch = new Informer({
    resource: 'sessions',
    transport,
    pageSize: 2,
    watchTimeoutSeconds: 300,
    silenceTimeoutMs,
    healthyAfterMs: 10_000,
    backoff: { initialMs: 5, maxMs: 20 },
    onChanges: (batch: CacheChange[]) =>
      changes.push(...batch.map((c) => `${c.type} ${c.object.name}@${c.object.resourceVersion}`)),
    onMalformed: (_raw, reason) => malformed.push(reason),
    onState: (up, reason) => states.push(up ? 'up' : `down: ${reason}`),
    onRestart: (reason) => restarts.push(reason),
    ...extra,
  });
  const running = watch.run(controller.signal);
  stops.push(async () => {
    controller.abort();
    await running;
  });
  return { watch, changes, states, restarts, malformed, controller, running };
}

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

describe('Informer', () => {
  it('lists, reports everything as added, is up, and watches from the list version', async () => {
    const transport = new FakeTransport();
    transport.pages = [[{ items: [raw('a', '5'), raw('b', '6')], resourceVersion: '10' }]];
    const h = harness(transport);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    expect(h.watch.synced).toBe(true);
    expect(h.changes).toEqual(['added a@5', 'added b@6']);
    expect(h.states).toEqual(['up']);
    expect(transport.current.resourceVersion).toBe('10');

    transport.current.emit('MODIFIED', raw('a', '11'));
    transport.current.emit('ADDED', raw('c', '12'));
    transport.current.emit('DELETED', raw('b', '13'));
    expect(h.changes.slice(2)).toEqual(['modified a@11', 'added c@12', 'deleted b@13']);
    expect([...h.watch.objects()].map((o) => o.name).sort()).toEqual(['a', 'c']);
  });

  it('hands a change on with its object parsed, then caches the object as JSON only', async () => {
    const transport = new FakeTransport();
    transport.pages = [[{ items: [raw('a', '5')], resourceVersion: '10' }]];
    const seen: unknown[] = [];
    const h = harness(transport, 60_000, {
      onChanges: (batch: CacheChange[]) => {
        // While the change is handed on, reads share the object parsed from the list or watch.
        for (const { object } of batch) {
          expect(object.raw).toBe(object.raw);
          seen.push(object.raw);
        }
      },
    });
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    transport.current.emit('MODIFIED', raw('a', '11'));
    expect(seen).toEqual([raw('a', '5'), raw('a', '11')]);
    const cached = h.watch.cache.get('ns', 'a');
    expect(cached?.json).toBe(JSON.stringify(raw('a', '11')));
    // Afterwards nothing holds it parsed: each read parses the JSON anew.
    expect(cached?.raw).toEqual(raw('a', '11'));
    expect(cached?.raw).not.toBe(cached?.raw);
  });

  it('is not ready while the API server has not answered its watch, and ready once it does', async () => {
    // A watch request that waits for a socket (or a server that never answers) looked up: its
    // informer reported up and /readyz was green while its changes went unseen (issue 13).
    const transport = new FakeTransport();
    transport.answering = false;
    transport.pages = [[{ items: [raw('a', '5')], resourceVersion: '10' }]];
    const h = harness(transport);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(h.watch.synced).toBe(true);
    expect(h.watch.watchRequested).toBe(true);
    expect(h.watch.watchAnswered).toBe(false);
    expect(h.watch.ready).toBe(false);
    expect(h.states).toEqual([]);
    transport.current.answer();
    expect(h.watch.watchAnswered).toBe(true);
    expect(h.watch.ready).toBe(true);
    expect(h.states).toEqual(['up']);
  });

  it('takes a first event (a bookmark) for the answer, but not an error event', async () => {
    const transport = new FakeTransport();
    transport.answering = false;
    transport.pages = [[{ items: [], resourceVersion: '10' }]];
    const h = harness(transport);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    transport.current.emit('ERROR', { kind: 'Status', code: 500, message: 'etcd is sad' });
    await vi.waitFor(() => expect(transport.watches).toHaveLength(2));
    expect(h.watch.ready).toBe(false);
    expect(h.states).toEqual(['down: watch of sessions is down: watch error event: 500: etcd is sad']);
    transport.current.emit('BOOKMARK', { metadata: { resourceVersion: '12' } });
    expect(h.watch.ready).toBe(true);
    expect(h.states.at(-1)).toBe('up');
  });

  it('stays up through a routine restart, and goes down when the new watch is unanswered past the bound', async () => {
    const transport = new FakeTransport();
    transport.pages = [[{ items: [], resourceVersion: '10' }]];
    // A bound of 1 s: a busy machine may delay the check below by some hundreds of ms, not by 1 s.
    const h = harness(transport, 60_000, { answerTimeoutMs: 1_000 });
    await vi.waitFor(() => expect(h.watch.ready).toBe(true));
    transport.answering = false;
    transport.current.end();
    await vi.waitFor(() => expect(transport.watches).toHaveLength(2));
    // Within the bound the restart is routine: nothing is reported.
    expect(h.watch.ready).toBe(true);
    expect(h.watch.watchAnswered).toBe(false);
    await vi.waitFor(() => expect(h.watch.ready).toBe(false), { timeout: 5_000 });
    expect(h.states).toEqual([
      'up',
      expect.stringMatching(/^down: the API server has not answered the watch of sessions for \d+s$/),
    ]);
    expect(transport.watches).toHaveLength(2);
    transport.current.answer();
    expect(h.watch.ready).toBe(true);
    expect(h.states.at(-1)).toBe('up');
  });

  it('reports what a page cut off half-way cached, once, and lists again', async () => {
    /** Its first answer hands `a` on and fails; the next one is whole. */
    class CutOff extends FakeTransport {
      cut = true;
      override async list(
        options: { limit: number; continueToken?: string },
        onItem: (item: unknown) => void,
      ): Promise<ListPage> {
        if (!this.cut) return super.list(options, onItem);
        this.cut = false;
        onItem(raw('a', '1'));
        throw new Error('stream reset');
      }
    }
    const transport = new CutOff();
    transport.pages = [[{ items: [raw('a', '1'), raw('b', '2'), 'junk'], resourceVersion: '20' }]];
    const h = harness(transport);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    expect(h.changes).toEqual(['added a@1', 'added b@2']);
    expect(h.restarts).toEqual(['error']);
    // What is not an object, handed on among the items, is reported, not dropped silently.
    expect(h.malformed).toHaveLength(1);
    expect(transport.current.resourceVersion).toBe('20');
  });

  it('hands the changes of a page on every 50 items, in order, not held until the page ends', async () => {
    const transport = new FakeTransport();
    const names = Array.from({ length: 120 }, (_, i) => `s${i}`);
    transport.pages = [[{ items: names.map((name, i) => raw(name, String(i + 1))), resourceVersion: '200' }]];
    const batches: string[][] = [];
    harness(transport, 60_000, {
      pageSize: 500,
      onChanges: (batch: CacheChange[]) => batches.push(batch.map((c) => c.object.name)),
    });
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    expect(batches.map((b) => b.length)).toEqual([50, 50, 20]);
    expect(batches.flat()).toEqual(names);
  });

  it('reads every page of a list', async () => {
    const transport = new FakeTransport();
    transport.pages = [
      [
        { items: [raw('a', '1'), raw('b', '2')], resourceVersion: '20', continueToken: 'next' },
        { items: [raw('c', '3')], resourceVersion: '20' },
      ],
    ];
    const h = harness(transport);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    expect(transport.listCalls).toEqual([undefined, 'next']);
    expect(h.changes).toEqual(['added a@1', 'added b@2', 'added c@3']);
    expect(transport.current.resourceVersion).toBe('20');
  });

  it('hands each page on as it comes, and lists a page at a time with informers sharing its slots', async () => {
    const slots = new Slots(1);
    /** A transport whose pages wait for the test; records what was listed while what was handed on. */
    class GatedTransport extends FakeTransport {
      readonly release: (() => void)[] = [];
      inFlight = 0;
      maxInFlight = 0;
      override async list(
        options: { limit: number; continueToken?: string },
        onItem: (item: unknown) => void,
      ): Promise<ListPage> {
        this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
        await new Promise<void>((resolve) => this.release.push(resolve));
        this.inFlight--;
        return super.list(options, onItem);
      }
    }
    const first = new GatedTransport();
    first.pages = [
      [
        { items: [raw('a', '1')], resourceVersion: '20', continueToken: 'next' },
        { items: [raw('b', '2')], resourceVersion: '20' },
      ],
    ];
    const second = new GatedTransport();
    second.pages = [[{ items: [raw('c', '3')], resourceVersion: '30' }]];
    const h1 = harness(first, 60_000, { listSlots: slots });
    const h2 = harness(second, 60_000, { listSlots: slots });
    await vi.waitFor(() => expect(first.release).toHaveLength(1));
    // The second informer waits for the slot the first holds.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(second.release).toHaveLength(0);
    first.release[0]?.();
    // The first page is handed on before the second is listed.
    await vi.waitFor(() => expect(h1.changes).toEqual(['added a@1']));
    await vi.waitFor(() => expect(second.release.length + first.release.length).toBe(2));
    for (const release of [...first.release, ...second.release]) release();
    await vi.waitFor(() => expect(first.release.length + second.release.length).toBe(3));
    for (const release of [...first.release, ...second.release]) release();
    await vi.waitFor(() => expect(first.watches).toHaveLength(1));
    await vi.waitFor(() => expect(second.watches).toHaveLength(1));
    expect(h1.changes).toEqual(['added a@1', 'added b@2']);
    expect(h2.changes).toEqual(['added c@3']);
    expect(first.maxInFlight + second.maxInFlight).toBe(2);
    expect(Math.max(first.maxInFlight, second.maxInFlight)).toBe(1);
  });

  it('holds nothing of a page while it waits for the slot of its next page', async () => {
    const slots = new Slots(1);
    // A full garbage collection on demand: what is still reachable from the waiting list is held.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    let firstPage: WeakRef<FakePage> | undefined;
    let blocker: Promise<() => void> | undefined;
    /** Its first page is a fresh object (the test keeps none); listing it, the test queues for the slot. */
    class OnePageHeld extends FakeTransport {
      override async list(
        options: { limit: number; continueToken?: string },
        onItem: (item: unknown) => void,
      ): Promise<ListPage> {
        if (options.continueToken) return super.list(options, onItem);
        blocker = slots.take();
        const page = { items: [raw('a', '1'), raw('b', '2')], resourceVersion: '20', continueToken: 'next' };
        firstPage = new WeakRef(page);
        return FakeTransport.send(page, onItem);
      }
    }
    const transport = new OnePageHeld();
    transport.pages = [[{ items: [raw('c', '3')], resourceVersion: '20' }]];
    const h = harness(transport, 60_000, { listSlots: slots });
    // The first page is handed on; the test then holds the slot and the list waits for it.
    await vi.waitFor(() => expect(h.changes).toEqual(['added a@1', 'added b@2']));
    const release = await (blocker as Promise<() => void>);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(transport.listCalls).toEqual([]);
    gc();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(firstPage?.deref()).toBeUndefined();
    release();
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    expect(h.changes).toEqual(['added a@1', 'added b@2', 'added c@3']);
    expect(transport.listCalls).toEqual(['next']);
    expect(transport.current.resourceVersion).toBe('20');
  });

  it('holds nothing of a page while its changes are taken in (afterPage)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    let page: WeakRef<FakePage> | undefined;
    /** Each page a fresh object the test keeps none of. */
    class FreshPage extends FakeTransport {
      override async list(_options: unknown, onItem: (item: unknown) => void): Promise<ListPage> {
        const fresh = { items: [raw('a', '1'), raw('b', '2')], resourceVersion: '20' };
        page = new WeakRef(fresh);
        return FakeTransport.send(fresh, onItem);
      }
    }
    const transport = new FreshPage();
    let taken: (() => void) | undefined;
    const h = harness(transport, 60_000, {
      afterPage: () =>
        new Promise<void>((resolve) => {
          taken = resolve;
        }),
    });
    await vi.waitFor(() => expect(taken).toBeDefined());
    expect(h.changes).toEqual(['added a@1', 'added b@2']);
    gc();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(page?.deref()).toBeUndefined();
    taken?.();
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    expect(transport.current.resourceVersion).toBe('20');
  });

  it('starts another watch from the last version seen (bookmarks included) when one ends', async () => {
    const transport = new FakeTransport();
    transport.pages = [[{ items: [], resourceVersion: '10' }]];
    const h = harness(transport);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    transport.current.emit('ADDED', raw('a', '11'));
    transport.current.emit('BOOKMARK', { metadata: { resourceVersion: '15' } });
    transport.current.end();
    await vi.waitFor(() => expect(transport.watches).toHaveLength(2));
    expect(transport.current.resourceVersion).toBe('15');
    expect(transport.listCalls).toHaveLength(1);
    expect(h.restarts).toEqual(['closed']);
    expect(h.states.at(-1)).toBe('up');
  });

  it('asks each watch for its own timeout, from the configured one to twice it, so watches started together do not end together', async () => {
    const transport = new FakeTransport();
    transport.pages = [[{ items: [], resourceVersion: '10' }]];
    harness(transport);
    for (let n = 1; n <= 20; n++) {
      await vi.waitFor(() => expect(transport.watches).toHaveLength(n));
      transport.current.end();
    }
    const timeouts = transport.watches.map((w) => w.timeoutSeconds);
    for (const timeout of timeouts) {
      expect(timeout).toBeGreaterThanOrEqual(300);
      expect(timeout).toBeLessThan(600);
    }
    expect(new Set(timeouts).size).toBeGreaterThan(1);
    expect([0, 0.5, 0.999_999_9, 1].map((r) => watchTimeoutFor(300, () => r))).toEqual([300, 450, 599, 599]);
  });

  it('relists on a 410 Gone error event and reports what changed meanwhile, deletions included', async () => {
    const transport = new FakeTransport();
    transport.pages = [
      [{ items: [raw('a', '5'), raw('b', '6')], resourceVersion: '10' }],
      [{ items: [raw('a', '30'), raw('c', '31')], resourceVersion: '40' }],
    ];
    const h = harness(transport);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    transport.current.emit('ERROR', {
      kind: 'Status',
      code: 410,
      reason: 'Expired',
      message: 'too old resource version',
    });
    await vi.waitFor(() => expect(transport.watches).toHaveLength(2));
    expect(transport.watches[0]?.aborted).toBe(true);
    expect(transport.current.resourceVersion).toBe('40');
    expect(h.restarts).toEqual(['gone']);
    expect(h.changes.slice(2).sort()).toEqual(['added c@31', 'deleted b@6', 'modified a@30']);
    expect(h.states.slice(1)).toEqual([
      'down: relisting sessions: 410 Gone: watch error event: 410 Expired: too old resource version',
      'up',
    ]);
  });

  it('relists when the watch request itself answers 410', async () => {
    const transport = new FakeTransport();
    transport.pages = [[{ items: [], resourceVersion: '10' }]];
    const h = harness(transport);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    transport.current.end(new KubeApiError('watch: 410 Gone', 410, 'Expired'));
    await vi.waitFor(() => expect(transport.watches).toHaveLength(2));
    expect(transport.listCalls).toHaveLength(2);
    expect(h.restarts).toEqual(['gone']);
  });

  it('waits at least what a 429 asked for before it watches again', async () => {
    const transport = new FakeTransport();
    transport.pages = [[{ items: [], resourceVersion: '10' }]];
    const h = harness(transport);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    const refusedAt = Date.now();
    transport.current.end(new KubeApiError('watch: 429 slow down', 429, 'TooManyRequests', undefined, 1));
    await vi.waitFor(() => expect(transport.watches).toHaveLength(2), { timeout: 3_000 });
    expect(Date.now() - refusedAt).toBeGreaterThanOrEqual(950);
    expect(h.restarts).toEqual(['error']);
  });

  it('hands every cached object to onResync on its interval, asking the API server nothing', async () => {
    const transport = new FakeTransport();
    transport.pages = [[{ items: [raw('a', '1'), raw('b', '2')], resourceVersion: '10' }]];
    const resyncs: string[][] = [];
    harness(transport, 60_000, {
      resyncMs: 20,
      onResync: (objects) => resyncs.push(objects.map((o) => o.name).sort()),
    });
    await vi.waitFor(() => expect(resyncs.length).toBeGreaterThanOrEqual(2));
    expect(resyncs[0]).toEqual(['a', 'b']);
    expect(transport.listCalls).toHaveLength(1);
  });

  it('restarts with backoff after any other error, is down meanwhile, and does not relist', async () => {
    const transport = new FakeTransport();
    transport.pages = [[{ items: [], resourceVersion: '10' }]];
    const h = harness(transport);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    transport.current.end(new Error('connect ECONNREFUSED'));
    await vi.waitFor(() => expect(transport.watches).toHaveLength(2));
    transport.current.emit('ERROR', { kind: 'Status', code: 500, message: 'etcd is sad' });
    await vi.waitFor(() => expect(transport.watches).toHaveLength(3));
    expect(h.restarts).toEqual(['error', 'error']);
    expect(transport.listCalls).toHaveLength(1);
    expect(transport.current.resourceVersion).toBe('10');
    expect(h.states).toEqual([
      'up',
      'down: watch of sessions is down: connect ECONNREFUSED',
      'up',
      'down: watch of sessions is down: watch error event: 500: etcd is sad',
      'up',
    ]);
  });

  it('keeps retrying a failing list, reporting why', async () => {
    const transport = new FakeTransport();
    transport.pages = [
      [new Error('connect ECONNREFUSED 127.0.0.1:6443')],
      [new Error('still down')],
      [{ items: [raw('a', '1')], resourceVersion: '9' }],
    ];
    const h = harness(transport);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    expect(h.states).toEqual([
      'down: cannot list sessions: connect ECONNREFUSED 127.0.0.1:6443',
      'down: cannot list sessions: still down',
      'up',
    ]);
    expect(h.restarts).toEqual(['error', 'error']);
    expect(h.changes).toEqual(['added a@1']);
  });

  it('restarts a watch that has gone silent', async () => {
    const transport = new FakeTransport();
    transport.pages = [[{ items: [], resourceVersion: '10' }]];
    const h = harness(transport, 50);
    await vi.waitFor(() => expect(transport.watches.length).toBeGreaterThanOrEqual(2), { timeout: 2_000 });
    expect(transport.watches[0]?.aborted).toBe(true);
    expect(h.restarts[0]).toBe('watchdog');
    expect(h.states[1]).toMatch(/^down: watch of sessions is down: no event or bookmark for/);
  });

  it('keeps a watch whose bookmarks come within the silence timeout, however long it runs', async () => {
    const transport = new FakeTransport();
    transport.pages = [[{ items: [], resourceVersion: '10' }]];
    const h = harness(transport, 1_000);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    // Three silence timeouts long, a bookmark every 100 ms (late by up to 900 ms on a busy
    // machine, and still in time): the watchdog's due time keeps moving on.
    const startedAt = Date.now();
    let rv = 10;
    while (Date.now() - startedAt < 3_000) {
      transport.current.emit('BOOKMARK', { metadata: { resourceVersion: String(++rv) } });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(h.restarts).toEqual([]);
    expect(transport.watches).toHaveLength(1);
    // Then silence: restarted after the timeout, from the last bookmark's resourceVersion.
    await vi.waitFor(() => expect(transport.watches).toHaveLength(2), { timeout: 5_000 });
    expect(h.restarts).toEqual(['watchdog']);
    expect(transport.watches[1]?.resourceVersion).toBe(String(rv));
  });

  it('skips malformed objects and keeps watching', async () => {
    const transport = new FakeTransport();
    transport.pages = [
      [{ items: [raw('a', '1'), { metadata: { name: 'no-namespace' } }], resourceVersion: '10' }],
    ];
    const h = harness(transport);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    transport.current.emit('MODIFIED', { kind: 'Session' });
    transport.current.emit('SURPRISE', raw('b', '2'));
    transport.current.emit('ADDED', raw('c', '3'));
    expect(h.malformed).toEqual([
      'metadata.namespace is missing or empty',
      'metadata is missing',
      "unknown watch event type 'SURPRISE'",
    ]);
    expect(h.changes).toEqual(['added a@1', 'added c@3']);
    expect(transport.watches).toHaveLength(1);
  });

  it('stops when asked, aborting the watch', async () => {
    const transport = new FakeTransport();
    transport.pages = [[{ items: [], resourceVersion: '10' }]];
    const h = harness(transport);
    await vi.waitFor(() => expect(transport.watches).toHaveLength(1));
    h.controller.abort();
    await h.running;
    expect(transport.current.aborted).toBe(true);
    expect(transport.watches).toHaveLength(1);
  });
});

/** An informer on `transport` whose reports nobody reads. */
function quietInformer(transport: FakeTransport): Informer {
  return new Informer({
    resource: 'sessions',
    transport,
    watchTimeoutSeconds: 300,
    silenceTimeoutMs: 60_000,
    onChanges: () => undefined,
    onMalformed: () => undefined,
    onState: () => undefined,
    onRestart: () => undefined,
  });
}

describe('runInformers', () => {
  it('puts one listener on the shared signal for any number of informers, and stops them all', async () => {
    const transports = Array.from({ length: 80 }, () => new FakeTransport());
    const informers = transports.map(quietInformer);
    const controller = new AbortController();
    const runs = runInformers(informers, controller.signal);
    // Every informer is watching, each listening to a signal of its own.
    await vi.waitFor(() => expect(transports.every((t) => t.watches.length === 1)).toBe(true));
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);

    controller.abort();
    await Promise.all(runs);
    expect(transports.every((t) => t.current.aborted)).toBe(true);
    await vi.waitFor(() => expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0));
  });

  it('does not start watching on a signal already aborted', async () => {
    const transport = new FakeTransport();
    const informer = quietInformer(transport);
    const controller = new AbortController();
    controller.abort();
    await Promise.all(runInformers([informer], controller.signal));
    expect(transport.watches).toHaveLength(0);
  });
});
