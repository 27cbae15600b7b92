import { createLogger, type SessionCommand } from '@streamspace/shared';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IdleReaper } from './idle-reaper.js';
import { LastActivityWriter } from './last-activity-writer.js';
import { createReaperMetrics } from './reaper-metrics.js';
import type { TrackedSession } from './session-facts.js';
import type { SessionFacts } from './session-deadlines.js';

const S = 1_000;
const T0 = Date.parse('2025-01-31T10:00:00Z');

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(T0);
});
afterEach(() => vi.useRealTimers());

function session(name: string, facts: Partial<SessionFacts> = {}): TrackedSession {
  return {
    key: `ns.${name}`,
    namespace: 'ns',
    name,
    resourceVersion: '1',
    uid: `uid-${name}`,
    state: 'running',
    phase: 'Running',
    readyStatus: 'True',
    readySince: T0,
    reaperDisabled: false,
    deleting: false,
    createdAt: T0,
    idleTimeout: '10s',
    maxSessionDuration: '0',
    ...facts,
  };
}

function setup(options: { fail?: () => boolean } = {}) {
  const issued: { command: SessionCommand; msgId: string; at: number }[] = [];
  const activity = new Map<string, number>();
  const reaper = new IdleReaper({
    defaults: { idleTimeoutMs: 30 * 60 * S, maxSessionDurationMs: 8 * 3600 * S },
    activityOf: (key) => activity.get(key),
    issue: async (command, msgId) => {
      if (options.fail?.()) throw new Error('no NATS');
      issued.push({ command, msgId, at: Date.now() });
    },
    metrics: createReaperMetrics(new Registry()),
    log: createLogger('test', 'silent'),
    commandRetryMs: 30 * S,
  });
  const ready = () => {
    reaper.markSessionsSynced();
    reaper.markActivityLoaded();
  };
  return { reaper, issued, activity, ready };
}

describe('IdleReaper', () => {
  it('hibernates an idle session at its deadline', async () => {
    const { reaper, issued, ready } = setup();
    reaper.upsert(session('a'));
    ready();
    await vi.advanceTimersByTimeAsync(9_999);
    expect(issued).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(issued).toHaveLength(1);
    expect(issued[0]!.command).toMatchObject({
      action: 'hibernate',
      reason: 'Idle',
      namespace: 'ns',
      name: 'a',
      uid: 'uid-a',
      issuedBy: 'idle-reaper',
    });
    expect(issued[0]!.msgId).toBe(`uid-a:hibernate:${T0 + 10 * S}:0`);
    expect(issued[0]!.at).toBe(T0 + 10 * S);
  });

  it('decides nothing until both the Session list and the activity bucket are loaded, then acts at once on what came due', async () => {
    const { reaper, issued, activity } = setup();
    reaper.upsert(session('a'));
    await vi.advanceTimersByTimeAsync(60 * S);
    reaper.markSessionsSynced();
    reaper.upsert(session('b'));
    await vi.advanceTimersByTimeAsync(5 * S);
    expect(issued).toEqual([]);
    // The bucket says it was used 5 s ago: not idle after all...
    activity.set('ns.a', T0 + 60 * S);
    reaper.markActivityLoaded();
    await vi.advanceTimersByTimeAsync(0);
    // ...and a session that did come due while we were loading is acted on at once.
    expect(issued.map((i) => i.command.name)).toEqual(['b']);
    expect(Date.now() - T0).toBe(65 * S);
  });

  it('gives a running Session that reaches it only after loading its full idle timeout from then', async () => {
    const { reaper, issued, ready } = setup();
    ready();
    await vi.advanceTimersByTimeAsync(60 * S);
    // Running since T0 with a 10 s timeout, but the shared state delivered it 60 s late: its
    // reports were refused as unknown until now, so it is not hibernated on arrival.
    reaper.upsert(session('late'));
    await vi.advanceTimersByTimeAsync(9 * S);
    expect(issued).toEqual([]);
    await vi.advanceTimersByTimeAsync(1 * S);
    expect(issued.map((i) => i.command.name)).toEqual(['late']);
    expect(issued[0]!.at).toBe(T0 + 70 * S);
  });

  it('moves the deadline when activity arrives', async () => {
    const { reaper, issued, activity, ready } = setup();
    reaper.upsert(session('a'));
    ready();
    await vi.advanceTimersByTimeAsync(8 * S);
    activity.set('ns.a', Date.now());
    reaper.activityChanged('ns.a');
    await vi.advanceTimersByTimeAsync(9 * S);
    expect(issued).toEqual([]);
    await vi.advanceTimersByTimeAsync(1 * S);
    expect(issued).toHaveLength(1);
    expect(issued[0]!.at).toBe(T0 + 18 * S);
  });

  it('applies a changed idleTimeout at once', async () => {
    const { reaper, issued, ready } = setup();
    reaper.upsert(session('a', { idleTimeout: '1h' }));
    ready();
    await vi.advanceTimersByTimeAsync(20 * S);
    expect(issued).toEqual([]);
    reaper.upsert(session('a', { idleTimeout: '15s' }));
    await vi.advanceTimersByTimeAsync(0);
    expect(issued).toHaveLength(1);
    reaper.upsert(session('b', { idleTimeout: '15s' }));
    reaper.upsert(session('b', { idleTimeout: '0' }));
    await vi.advanceTimersByTimeAsync(3600 * S);
    expect(new Set(issued.map((i) => i.command.name))).toEqual(new Set(['a']));
  });

  it('gives a woken session the full timeout from its wake', async () => {
    const { reaper, issued, ready } = setup();
    reaper.upsert(session('a', { state: 'hibernated', phase: 'Hibernated' }));
    ready();
    await vi.advanceTimersByTimeAsync(100 * S);
    // Woken, and the status still carries the old Ready time.
    reaper.upsert(session('a'));
    expect(reaper.wokenAt('ns.a')).toBe(T0 + 100 * S);
    await vi.advanceTimersByTimeAsync(9 * S);
    expect(issued).toEqual([]);
    await vi.advanceTimersByTimeAsync(1 * S);
    expect(issued).toHaveLength(1);
  });

  it('issues a decision again if nothing happened, with a new message id, and retries a failed publish soon', async () => {
    let failing = true;
    const { reaper, issued, ready } = setup({ fail: () => failing });
    reaper.upsert(session('a'));
    ready();
    await vi.advanceTimersByTimeAsync(10 * S);
    expect(issued).toEqual([]);
    failing = false;
    await vi.advanceTimersByTimeAsync(2 * S);
    expect(issued.map((i) => i.msgId)).toEqual([`uid-a:hibernate:${T0 + 10 * S}:0`]);
    // Unrelated updates of the Session do not re-issue it.
    reaper.upsert({ ...session('a'), resourceVersion: '2' });
    await vi.advanceTimersByTimeAsync(29 * S);
    expect(issued).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1 * S);
    expect(issued.map((i) => i.msgId)).toEqual([
      `uid-a:hibernate:${T0 + 10 * S}:0`,
      `uid-a:hibernate:${T0 + 10 * S}:1`,
    ]);
  });

  it('stops tracking a deleted Session and a Session that changed state', async () => {
    const { reaper, issued, ready } = setup();
    reaper.upsert(session('a'));
    reaper.upsert(session('b'));
    ready();
    reaper.remove('ns.a');
    reaper.upsert(session('b', { state: 'hibernated', phase: 'Hibernated' }));
    await vi.advanceTimersByTimeAsync(3600 * S);
    expect(issued).toEqual([]);
    expect(reaper.isKnown('ns.a')).toBe(false);
    expect(reaper.isKnown('ns.b')).toBe(true);
  });

  it('names the same decision alike on two replicas, so JetStream keeps one', async () => {
    const one = setup();
    const two = setup();
    for (const r of [one, two]) {
      r.reaper.upsert(session('a'));
      r.ready();
    }
    await vi.advanceTimersByTimeAsync(10 * S);
    expect(one.issued[0]!.msgId).toBe(two.issued[0]!.msgId);
  });
});

describe('LastActivityWriter', () => {
  function writerSetup() {
    const writes: { at: number; when: number }[] = [];
    const state = { latest: undefined as number | undefined, status: undefined as number | undefined };
    const writer = new LastActivityWriter({
      intervalMs: 30 * S,
      latest: () => state.latest,
      session: () => ({
        namespace: 'ns',
        name: 'a',
        ...(state.status !== undefined ? { statusLastActivity: state.status } : {}),
      }),
      write: async (_ns, _name, at) => {
        writes.push({ at, when: Date.now() });
        state.status = at;
      },
      metrics: createReaperMetrics(new Registry()),
      log: createLogger('test', 'silent'),
      random: () => 0,
    });
    writer.start();
    return { writer, writes, state };
  }

  it('writes at most once per interval under steady activity, the first an interval after activity is seen, and the last report of a burst', async () => {
    const { writer, writes, state } = writerSetup();
    for (let t = 0; t < 95; t++) {
      state.latest = Date.now();
      writer.notify('ns.a');
      await vi.advanceTimersByTimeAsync(S);
    }
    // Activity stops at T0+94s; the trailing write carries it.
    await vi.advanceTimersByTimeAsync(60 * S);
    expect(writes.map((w) => (w.when - T0) / S)).toEqual([30, 60, 90, 120]);
    expect(writes.at(-1)!.at).toBe(T0 + 94 * S);
    for (let i = 1; i < writes.length; i++)
      expect(writes[i]!.when - writes[i - 1]!.when).toBeGreaterThanOrEqual(30 * S);
  });

  it('spreads the writes of Sessions seen together over a tenth of the interval', async () => {
    const whens: number[] = [];
    let draw = 0;
    const writer = new LastActivityWriter({
      intervalMs: 600 * S,
      latest: () => T0,
      session: (key) => ({ namespace: 'ns', name: key }),
      write: async () => {
        whens.push(Date.now() - T0);
      },
      metrics: createReaperMetrics(new Registry()),
      log: createLogger('test', 'silent'),
      random: () => (draw++ % 10) / 10,
    });
    writer.start();
    for (let i = 0; i < 10; i++) writer.notify(`s${i}`);
    await vi.advanceTimersByTimeAsync(599 * S);
    expect(whens).toEqual([]);
    await vi.advanceTimersByTimeAsync(61 * S);
    expect(whens.sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => 600 * S + i * 6 * S));
    writer.stop();
  });

  it('does not write what the status already shows', async () => {
    const { writer, writes, state } = writerSetup();
    state.latest = T0 - 5 * S;
    state.status = T0 - 5 * S;
    writer.notify('ns.a');
    await vi.advanceTimersByTimeAsync(120 * S);
    expect(writes).toEqual([]);
  });

  it('reports a Session asking beyond the limits once per request, counted, and again when it asks anew', async () => {
    const metrics = createReaperMetrics(new Registry());
    const reported: string[][] = [];
    const reaper = new IdleReaper({
      defaults: {
        idleTimeoutMs: 30 * 60 * S,
        maxSessionDurationMs: 8 * 3600 * S,
        limits: { allowOptOut: false, maxIdleTimeoutMs: 20 * S, maxSessionDurationMs: 3600 * S },
      },
      activityOf: () => undefined,
      issue: async () => undefined,
      metrics,
      log: createLogger('test', 'silent'),
      commandRetryMs: 30 * S,
      onLimited: (_s, limited) => reported.push(limited.map((l) => `${l.setting}=${l.requested}`)),
    });
    reaper.markSessionsSynced();
    reaper.markActivityLoaded();
    reaper.upsert(session('a', { idleTimeout: '0', reaperDisabled: true }));
    reaper.upsert({ ...session('a', { idleTimeout: '0', reaperDisabled: true }), resourceVersion: '2' });
    reaper.activityChanged('ns.a');
    expect(reported).toEqual([['optOut=true', 'idleTimeout=0', 'maxSessionDuration=0']]);
    // Within the limits: nothing to say; asking too much again is reported again.
    reaper.upsert(session('a', { idleTimeout: '10s', maxSessionDuration: '1h' }));
    reaper.upsert(session('a', { idleTimeout: '1h', maxSessionDuration: '1h' }));
    expect(reported).toEqual([['optOut=true', 'idleTimeout=0', 'maxSessionDuration=0'], ['idleTimeout=1h']]);
    const counted = (await metrics.limitsApplied.get()).values.map((v) => [v.labels.setting, v.value]);
    expect(counted).toEqual([
      ['optOut', 1],
      ['idleTimeout', 2],
      ['maxSessionDuration', 1],
    ]);
    // The limit is what decides: hibernated after 20 s idle although it asked for 1h.
    expect(reaper.deadlineOf('ns.a')).toBe(T0 + 20 * S);
    reaper.stop();
  });
});

describe('IdleReaper with Sessions spread over replicas', () => {
  /** A reaper that owns the keys in `mine` (changed by the test, then `reassign`). */
  function shared(mine: Set<string>) {
    const released: string[] = [];
    const changed: string[] = [];
    const issued: { command: SessionCommand; msgId: string }[] = [];
    /** Work the reaper put off to a later turn of the event loop; `later()` runs one turn of it. */
    const deferred: (() => void)[] = [];
    const later = () => {
      for (const work of deferred.splice(0)) work();
    };
    const reaper = new IdleReaper({
      defer: (work) => deferred.push(work),
      defaults: { idleTimeoutMs: 30 * 60 * S, maxSessionDurationMs: 8 * 3600 * S },
      activityOf: () => undefined,
      issue: async (command, msgId) => {
        issued.push({ command, msgId });
      },
      metrics: createReaperMetrics(new Registry()),
      log: createLogger('test', 'silent'),
      commandRetryMs: 30 * S,
      owns: (key) => mine.has(key),
      onRelease: (key) => released.push(key),
      onSessionChange: (key) => changed.push(key),
    });
    reaper.markSessionsSynced();
    reaper.markActivityLoaded();
    return { reaper, released, changed, issued, deferred, later };
  }

  it('holds a Session another replica owns, with no deadline for it', async () => {
    const { reaper, issued, changed } = shared(new Set());
    reaper.upsert(session('other'));
    expect(reaper.isKnown('ns.other')).toBe(true);
    expect(reaper.uidOf('ns.other')).toBe('uid-other');
    expect(reaper.owned('ns.other')).toBeUndefined();
    expect(reaper.trackedCount).toBe(0);
    expect(reaper.deadlineOf('ns.other')).toBeUndefined();
    expect(changed).toEqual([]);
    await vi.advanceTimersByTimeAsync(60 * S);
    expect(issued).toEqual([]);
  });

  it('drops the deadline of a Session it no longer owns, and tells the caller', async () => {
    const mine = new Set(['ns.a', 'ns.b']);
    const { reaper, released, issued } = shared(mine);
    reaper.upsert(session('a'));
    reaper.upsert(session('b'));
    expect(reaper.deadlineOf('ns.a')).toBe(T0 + 10 * S);
    mine.delete('ns.a');
    expect(reaper.reassign()).toEqual({ adopted: 0, released: 1, reissued: 0 });
    expect(released).toEqual(['ns.a']);
    expect(reaper.deadlineOf('ns.a')).toBeUndefined();
    expect(reaper.deadlineOf('ns.b')).toBe(T0 + 10 * S);
    expect(reaper.trackedCount).toBe(1);
    await vi.advanceTimersByTimeAsync(15 * S);
    expect(issued.map((i) => i.command.name)).toEqual(['b']);
  });

  it('decides an adopted Session at once from what it holds, on its own deadline, not an idleTimeout after adopting it', async () => {
    const mine = new Set<string>();
    const { reaper, issued, changed, later } = shared(mine);
    reaper.upsert(session('a'));
    reaper.upsert(session('b'));
    await vi.advanceTimersByTimeAsync(12 * S);
    expect(issued).toEqual([]);
    // Its owner died: 'a' is this replica's now. Its deadline (T0 + 10 s) has passed: decided in
    // the same turn, before anything else is planned.
    mine.add('ns.a');
    expect(reaper.reassign()).toEqual({ adopted: 1, released: 0, reissued: 0 });
    expect(reaper.trackedCount).toBe(1);
    await Promise.resolve();
    expect(issued).toHaveLength(1);
    expect(changed).toEqual([]);
    later();
    expect(changed).toEqual(['ns.a']);
    // Under an id of its own: the command of the replica that died may sit unacknowledged in
    // its executor until the consumer's ack_wait.
    expect(issued[0]!.msgId).toBe(`uid-a:hibernate:${T0 + 10 * S}:0:adopted-${T0 + 12 * S}`);
    // Nothing changed: asking again adopts nothing more.
    expect(reaper.reassign()).toEqual({ adopted: 0, released: 0, reissued: 0 });
  });

  it('names the decisions of an adopted Session that come due after the adoption as every replica does', async () => {
    const mine = new Set<string>();
    const { reaper, issued, later } = shared(mine);
    reaper.upsert(session('a'));
    await vi.advanceTimersByTimeAsync(5 * S);
    mine.add('ns.a');
    reaper.reassign();
    later();
    await vi.advanceTimersByTimeAsync(5 * S);
    expect(issued.map((i) => i.msgId)).toEqual([`uid-a:hibernate:${T0 + 10 * S}:0`]);
  });

  it('gives an adopted Session that reached the replicas late the idle time its owner gave it', async () => {
    const mine = new Set<string>();
    const { reaper, later } = shared(mine);
    await vi.advanceTimersByTimeAsync(8 * S);
    // Delivered late (the shared state lagging): the owner starts its idle time now, and so does
    // this replica, which may have to adopt it.
    reaper.upsert(session('late'));
    await vi.advanceTimersByTimeAsync(4 * S);
    mine.add('ns.late');
    reaper.reassign();
    later();
    expect(reaper.deadlineOf('ns.late')).toBe(T0 + 18 * S);
  });

  it('keeps the wake time of a Session woken while another replica owned it', async () => {
    const mine = new Set<string>();
    const { reaper, later } = shared(mine);
    reaper.upsert(session('a', { state: 'hibernated' }));
    await vi.advanceTimersByTimeAsync(20 * S);
    reaper.upsert(session('a'));
    await vi.advanceTimersByTimeAsync(5 * S);
    mine.add('ns.a');
    reaper.reassign();
    later();
    expect(reaper.deadlineOf('ns.a')).toBe(T0 + 30 * S);
  });

  it('still gives a Session that appears late (not adopted) its full idle time', async () => {
    const { reaper, ready } = setup();
    ready();
    await vi.advanceTimersByTimeAsync(8 * S);
    reaper.upsert(session('late'));
    expect(reaper.deadlineOf('ns.late')).toBe(T0 + 18 * S);
  });

  it('issues its own decisions that have not taken effect again at once when a member left, under ids of their own', async () => {
    const mine = new Set(['ns.a', 'ns.b', 'ns.c']);
    const { reaper, issued } = shared(mine);
    reaper.upsert(session('a'));
    reaper.upsert(session('b'));
    reaper.upsert(session('c', { idleTimeout: '60s' }));
    await vi.advanceTimersByTimeAsync(11 * S);
    expect(issued.map((i) => i.msgId)).toEqual([
      `uid-a:hibernate:${T0 + 10 * S}:0`,
      `uid-b:hibernate:${T0 + 10 * S}:0`,
    ]);
    // 'b' was carried out (its state changed); 'a' was not yet, and the replica that left may hold
    // its command unacknowledged. 'c' was never due.
    reaper.upsert(session('b', { state: 'hibernated', phase: 'Hibernated' }));
    // A change that only adds a member retries nothing.
    expect(reaper.reassign()).toEqual({ adopted: 0, released: 0, reissued: 0 });
    expect(reaper.reassign({ memberLeft: true })).toEqual({ adopted: 0, released: 0, reissued: 1 });
    await vi.advanceTimersByTimeAsync(0);
    expect(issued.map((i) => i.msgId).slice(2)).toEqual([
      `uid-a:hibernate:${T0 + 10 * S}:0:again-${T0 + 11 * S}`,
    ]);
    // Then as before: issued again only if nothing happened for a retry interval.
    await vi.advanceTimersByTimeAsync(29 * S);
    expect(issued).toHaveLength(3);
  });

  it('decides the overdue adopted Sessions at once and plans the others a slice per turn, skipping any it lost meanwhile', async () => {
    const mine = new Set<string>();
    const { reaper, issued, changed, deferred, later } = shared(mine);
    for (let i = 0; i < 1_200; i++) reaper.upsert(session(`s${i}`, { idleTimeout: i < 3 ? '10s' : '60s' }));
    await vi.advanceTimersByTimeAsync(12 * S);
    for (let i = 0; i < 1_200; i++) mine.add(`ns.s${i}`);
    reaper.reassign();
    await Promise.resolve();
    // The three overdue ones are out before any deadline is planned.
    expect(issued.map((i) => i.command.name)).toEqual(['s0', 's1', 's2']);
    expect(reaper.deadlineOf('ns.s100')).toBeUndefined();
    expect(deferred).toHaveLength(1);
    later();
    expect(changed).toHaveLength(500);
    expect(reaper.deadlineOf('ns.s100')).toBe(T0 + 60 * S);
    // Lost again before its turn: not planned.
    mine.delete('ns.s1100');
    reaper.reassign();
    later();
    later();
    expect(changed).toHaveLength(1_199);
    expect(reaper.deadlineOf('ns.s1100')).toBeUndefined();
    expect(reaper.deadlineOf('ns.s1199')).toBe(T0 + 60 * S);
    expect(deferred).toEqual([]);
  });

  it('counts a Session removed while another replica owned it out of neither count', () => {
    const mine = new Set(['ns.a']);
    const { reaper } = shared(mine);
    reaper.upsert(session('a'));
    reaper.upsert(session('b'));
    reaper.remove('ns.b');
    expect(reaper.trackedCount).toBe(1);
    reaper.remove('ns.a');
    expect(reaper.trackedCount).toBe(0);
    expect(reaper.isKnown('ns.a')).toBe(false);
  });
});
