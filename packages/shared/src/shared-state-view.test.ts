import type { KV, KvEntry } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import { SharedStateView } from './shared-state-view.js';

const utf8 = new TextEncoder();

/** An entry as a KV watch delivers it; `delta` 0 marks the last of the initial values. */
function put(key: string, object: unknown, delta = 1): KvEntry {
  return { key, operation: 'PUT', value: utf8.encode(JSON.stringify(object)), delta, isUpdate: false } as unknown as KvEntry;
}
function del(key: string): KvEntry {
  return { key, operation: 'DEL', value: new Uint8Array(), delta: 0, isUpdate: true } as unknown as KvEntry;
}

/** A bucket whose watches deliver what the test pushes; each new watch starts from `initial()`. */
function fakeBucket(initial: () => KvEntry[]) {
  let push: (entry: KvEntry | undefined) => void = () => undefined;
  const kv = {
    async keys() {
      const keys = initial().map((e) => e.key);
      return Object.assign(
        (async function* () {
          yield* keys;
        })(),
        { stop: () => undefined },
      );
    },
    async watch() {
      const queue: (KvEntry | undefined)[] = [...initial()];
      let wake: (() => void) | undefined;
      push = (entry) => {
        queue.push(entry);
        wake?.();
      };
      return {
        stop: () => push(undefined),
        async *[Symbol.asyncIterator]() {
          for (;;) {
            if (queue.length === 0) await new Promise<void>((r) => (wake = r));
            const next = queue.shift();
            if (next === undefined) return;
            yield next;
          }
        },
      };
    },
  };
  return { kv: kv as unknown as KV, push: (entry: KvEntry) => push(entry), end: () => push(undefined) };
}

/** Waits until `condition` holds (checked every few milliseconds, for at most 5 s). */
async function until(condition: () => boolean): Promise<void> {
  for (const started = Date.now(); !condition(); ) {
    if (Date.now() - started > 5_000) throw new Error('condition not met within 5 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('SharedStateView without values, keys derived from entry keys', () => {
  it('keeps no values, and reports upserts and deletions with the caller key', async () => {
    let initial = [put('session.ns.a', { name: 'a' }, 1), put('session.ns.b', { name: 'b' }, 0)];
    const bucket = fakeBucket(() => initial);
    const upserts: string[] = [];
    const deletes: string[] = [];
    let synced = 0;
    const view = new SharedStateView<{ name: string }>({
      bucket: async () => bucket.kv,
      kind: 'session',
      keepValues: false,
      keyOf: (entryKey) => entryKey.slice('session.'.length),
      parse: (raw) => {
        const name = (raw as { name?: string }).name;
        return name ? { ok: true, key: `ns.${name}`, value: { name } } : { ok: false, reason: 'no name' };
      },
      onUpsert: (key) => upserts.push(key),
      onDelete: (key) => deletes.push(key),
      onSynced: () => synced++,
    });
    const controller = new AbortController();
    const done = view.run(controller.signal);
    await view.whenSynced();
    expect(upserts).toEqual(['ns.a', 'ns.b']);
    expect(view.values()).toEqual([]);

    bucket.push(del('session.ns.a'));
    await until(() => deletes.length > 0);
    expect(deletes).toEqual(['ns.a']);

    // The watch ends and starts again without b: b is reported gone once the new one caught up.
    initial = [put('session.ns.c', { name: 'c' }, 0)];
    bucket.end();
    await until(() => synced === 2);
    expect(deletes).toEqual(['ns.a', 'ns.b']);
    expect(upserts).toEqual(['ns.a', 'ns.b', 'ns.c']);
    controller.abort();
    await done;
  });

  it('keeps the values by default', async () => {
    const bucket = fakeBucket(() => [put('session.ns.a', { name: 'a' }, 0)]);
    const view = new SharedStateView<{ name: string }>({
      bucket: async () => bucket.kv,
      kind: 'session',
      parse: (raw) => ({ ok: true, key: `ns.${(raw as { name: string }).name}`, value: raw as { name: string } }),
    });
    const controller = new AbortController();
    const done = view.run(controller.signal);
    await view.whenSynced();
    expect(view.values()).toEqual([{ name: 'a' }]);
    controller.abort();
    await done;
  });

  it('says why it cannot watch before it was ever up, again when the reason changes, and when it is up', async () => {
    const bucket = fakeBucket(() => [put('session.ns.a', { name: 'a' }, 0)]);
    const missing = new Error('the KV bucket B does not exist yet');
    const failures = [missing, missing, new Error('the KV bucket B: no JetStream quorum')];
    let calls = 0;
    const states: [boolean, string][] = [];
    const view = new SharedStateView<{ name: string }>({
      bucket: async () => {
        const failure = failures[calls++];
        if (failure) throw failure;
        return bucket.kv;
      },
      kind: 'session',
      parse: (raw) => ({
        ok: true,
        key: `ns.${(raw as { name: string }).name}`,
        value: raw as { name: string },
      }),
      onState: (up, reason) => states.push([up, reason]),
    });
    const controller = new AbortController();
    const done = view.run(controller.signal);
    await view.whenSynced();
    // Each reason once, though the first failed twice; then up.
    expect(states).toEqual([
      [false, 'cannot watch the shared state: the KV bucket B does not exist yet'],
      [false, 'cannot watch the shared state: the KV bucket B: no JetStream quorum'],
      [true, 'ok'],
    ]);
    controller.abort();
    await done;
  }, 10_000);
});
