import { describe, expect, it } from 'vitest';
import { Publisher, type PublishResult } from './publisher.js';
import type { Publication } from './work-routing.js';

function work(name: string, msgID = `id-${name}`): Publication {
  return {
    stream: 'work',
    subject: `streamspace.work.session.ns.${name}`,
    msgID,
    body: { kind: 'session', namespace: 'ns', name, reason: 'session-modified' },
  };
}

function event(name: string, rv: string): Publication {
  return {
    stream: 'events',
    subject: `streamspace.events.session.ns.${name}`,
    msgID: `${name}:${rv}:modified`,
    body: {
      type: 'modified',
      kind: 'session',
      namespace: 'ns',
      name,
      uid: name,
      resourceVersion: rv,
      observedAt: new Date(0).toISOString(),
    },
    object: '{}',
  };
}

/** A JetStream stand-in that stores by message id, and can be switched off. */
class FakeStream {
  up = true;
  readonly stored: { subject: string; msgID: string; body: unknown }[] = [];
  readonly attempts: string[] = [];
  private readonly ids = new Set<string>();

  publish = async (subject: string, data: Uint8Array, msgID: string): Promise<PublishResult> => {
    this.attempts.push(msgID);
    await new Promise((r) => setTimeout(r, 1));
    if (!this.up) throw new Error('no responders');
    if (this.ids.has(msgID)) return { duplicate: true };
    this.ids.add(msgID);
    this.stored.push({ subject, msgID, body: JSON.parse(new TextDecoder().decode(data)) });
    return { duplicate: false };
  };
}

const fastBackoff = { initialMs: 5, maxMs: 20 };

describe('Publisher', () => {
  it('publishes everything in order and reports when flushed', async () => {
    const stream = new FakeStream();
    const publisher = new Publisher({ publish: stream.publish, maxQueue: 100, concurrency: 1 });
    for (let i = 0; i < 5; i++) publisher.enqueue(event('s', String(i)));
    expect(await publisher.flush(1_000)).toBe(true);
    expect(stream.stored.map((m) => m.msgID)).toEqual([
      's:0:modified',
      's:1:modified',
      's:2:modified',
      's:3:modified',
      's:4:modified',
    ]);
    expect(stream.stored[0]?.body).toMatchObject({ resourceVersion: '0' });
    expect(publisher.pending).toBe(0);
  });

  it('keeps publications while the stream is down, retries with backoff and reports health', async () => {
    const stream = new FakeStream();
    stream.up = false;
    const health: boolean[] = [];
    let errors = 0;
    const publisher = new Publisher({
      publish: stream.publish,
      maxQueue: 100,
      concurrency: 4,
      backoff: fastBackoff,
      hooks: { health: (ok) => health.push(ok), failed: () => errors++ },
    });
    publisher.enqueue(event('a', '1'));
    publisher.enqueue(event('b', '1'));
    expect(await publisher.flush(60)).toBe(false);
    expect(publisher.pending).toBe(2);
    expect(health[0]).toBe(false);
    stream.up = true;
    expect(await publisher.flush(1_000)).toBe(true);
    expect(stream.stored.map((m) => m.msgID).sort()).toEqual(['a:1:modified', 'b:1:modified']);
    expect(health.at(-1)).toBe(true);
    expect(errors).toBeGreaterThan(2);
  });

  it('resume() retries at once instead of waiting out the backoff', async () => {
    const stream = new FakeStream();
    stream.up = false;
    const publisher = new Publisher({
      publish: stream.publish,
      maxQueue: 10,
      concurrency: 1,
      backoff: { initialMs: 60_000 },
    });
    publisher.enqueue(work('a'));
    await new Promise((r) => setTimeout(r, 20));
    stream.up = true;
    publisher.resume();
    expect(await publisher.flush(500)).toBe(true);
    expect(stream.stored).toHaveLength(1);
  });

  it('counts a publication JetStream already had as a duplicate', async () => {
    const stream = new FakeStream();
    const results: boolean[] = [];
    const publisher = new Publisher({
      publish: stream.publish,
      maxQueue: 10,
      concurrency: 1,
      hooks: { published: (_p, r) => results.push(r.duplicate) },
    });
    publisher.enqueue(event('a', '1'));
    await publisher.flush(500);
    publisher.enqueue(event('a', '1'));
    await publisher.flush(500);
    expect(results).toEqual([false, true]);
    expect(stream.stored).toHaveLength(1);
  });

  it('does not queue a second work item for a key whose item is still waiting', async () => {
    const stream = new FakeStream();
    stream.up = false;
    let coalesced = 0;
    const publisher = new Publisher({
      publish: stream.publish,
      maxQueue: 10,
      concurrency: 1,
      backoff: { initialMs: 60_000 },
      hooks: { coalesced: () => coalesced++ },
    });
    publisher.enqueue(work('a', 'first'));
    await new Promise((r) => setTimeout(r, 10)); // 'first' failed and waits in the queue
    publisher.enqueue(work('a', 'second'));
    publisher.enqueue(work('b'));
    expect(coalesced).toBe(1);
    stream.up = true;
    publisher.resume();
    await publisher.flush(500);
    expect(stream.stored.map((m) => m.msgID)).toEqual(['first', 'id-b']);
  });

  it('queues a trigger for a key whose item is already on its way', async () => {
    const stream = new FakeStream();
    const publisher = new Publisher({ publish: stream.publish, maxQueue: 10, concurrency: 1 });
    publisher.enqueue(work('a', 'first')); // sent at once
    publisher.enqueue(work('a', 'second'));
    await publisher.flush(500);
    expect(stream.stored.map((m) => m.msgID)).toEqual(['first', 'second']);
  });

  it('drops the oldest publication when the queue is full and asks for a resync once drained', async () => {
    const stream = new FakeStream();
    stream.up = false;
    const dropped: string[] = [];
    let resyncs = 0;
    const publisher = new Publisher({
      publish: stream.publish,
      maxQueue: 3,
      concurrency: 1,
      backoff: { initialMs: 60_000 },
      hooks: {
        dropped: (p, reason) => dropped.push(`${p.msgID} ${reason}`),
        drainedAfterDrops: () => resyncs++,
      },
    });
    for (let i = 0; i < 6; i++) publisher.enqueue(event('s', String(i)));
    await new Promise((r) => setTimeout(r, 10));
    expect(dropped).toEqual(['s:1:modified overflow', 's:2:modified overflow']);
    stream.up = true;
    publisher.resume();
    await publisher.flush(500);
    expect(stream.stored.map((m) => m.msgID).sort()).toEqual([
      's:0:modified',
      's:3:modified',
      's:4:modified',
      's:5:modified',
    ]);
    expect(resyncs).toBe(1);
  });

  it('gives up at once on an error that retrying cannot fix', async () => {
    const dropped: string[] = [];
    const publisher = new Publisher({
      publish: async () => {
        throw new Error('max_payload size exceeded');
      },
      maxQueue: 10,
      concurrency: 1,
      isPermanent: (e) => /max_payload/.test((e as Error).message),
      hooks: { dropped: (p, reason) => dropped.push(`${p.msgID} ${reason}`) },
    });
    publisher.enqueue(work('a'));
    expect(await publisher.flush(500)).toBe(true);
    expect(dropped).toEqual(['id-a permanent']);
  });

  it('stops sending once closed', async () => {
    const stream = new FakeStream();
    stream.up = false;
    const publisher = new Publisher({
      publish: stream.publish,
      maxQueue: 10,
      concurrency: 1,
      backoff: fastBackoff,
    });
    publisher.enqueue(work('a'));
    await new Promise((r) => setTimeout(r, 5));
    publisher.close();
    const attempts = stream.attempts.length;
    await new Promise((r) => setTimeout(r, 50));
    expect(stream.attempts.length).toBe(attempts);
    publisher.enqueue(work('b'));
    expect(stream.attempts.length).toBe(attempts);
  });

  it('keeps at most `concurrency` publications awaiting acknowledgement', async () => {
    let inFlight = 0;
    let peak = 0;
    const publisher = new Publisher({
      publish: async () => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((r) => setTimeout(r, 2));
        inFlight--;
        return { duplicate: false };
      },
      maxQueue: 1_000,
      concurrency: 8,
    });
    for (let i = 0; i < 100; i++) publisher.enqueue(event('s', String(i)));
    expect(await publisher.flush(2_000)).toBe(true);
    expect(peak).toBe(8);
  });
});
