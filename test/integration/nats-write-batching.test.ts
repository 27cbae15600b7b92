import { connect, type NatsConnection } from '@nats-io/transport-node';
import { batchWritesPerTurn } from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './harness.js';

/**
 * batchWritesPerTurn (packages/shared/src/nats-write-batching.ts) against the real nats-server:
 * what a service queues in one event-loop turn goes out in one socket write, and nothing is lost,
 * reordered or held back.
 */

const url = process.env.NATS_URL as string;
let receiver: NatsConnection;

/** Counts the client's socket writes (its transport's send, which writes once per call). */
function countWrites(nc: NatsConnection): { readonly count: number } {
  const protocol = (nc as unknown as { protocol: { transport: { send(frame: Uint8Array): unknown } } })
    .protocol;
  const transport = protocol.transport;
  const send = transport.send.bind(transport);
  const counter = { count: 0 };
  transport.send = (frame) => {
    counter.count++;
    return send(frame);
  };
  return counter;
}

/** Publishes `n` messages, each from its own microtask (as replies to requests continue flows). */
async function publishFromSeparateMicrotasks(nc: NatsConnection, subject: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await Promise.resolve();
    nc.publish(subject, String(i));
  }
}

function collect(subject: string, n: number): Promise<string[]> {
  const received: string[] = [];
  return new Promise((resolve) => {
    receiver.subscribe(subject, {
      max: n,
      callback: (_error, message) => {
        received.push(message.string());
        if (received.length === n) resolve(received);
      },
    });
  });
}

beforeAll(async () => {
  receiver = await connect({ servers: url });
});

afterAll(async () => {
  await receiver?.drain();
});

describe('NATS socket writes batched per event-loop turn', () => {
  it('sends a turn of separately queued publishes in one write, all delivered in order; an unbatched client writes each', async () => {
    const n = 200;
    const expected = Array.from({ length: n }, (_, i) => String(i));
    const batched = await connect({ servers: url });
    const plain = await connect({ servers: url });
    try {
      expect(batchWritesPerTurn(batched)).toBe(true);
      const batchedWrites = countWrites(batched);
      const plainWrites = countWrites(plain);

      const batchedSubject = `test.batching.${process.pid}.batched`;
      const plainSubject = `test.batching.${process.pid}.plain`;
      const gotBatched = collect(batchedSubject, n);
      const gotPlain = collect(plainSubject, n);
      await receiver.flush();

      await publishFromSeparateMicrotasks(batched, batchedSubject, n);
      await publishFromSeparateMicrotasks(plain, plainSubject, n);
      await batched.flush();
      await plain.flush();

      expect(await gotBatched).toEqual(expected);
      expect(await gotPlain).toEqual(expected);
      // The publishes and flush()'s PING: a couple of writes, where the client alone makes one per publish.
      expect(batchedWrites.count).toBeLessThanOrEqual(3);
      expect(plainWrites.count).toBeGreaterThanOrEqual(n);
    } finally {
      await batched.drain();
      await plain.drain();
    }
  });

  it('writes a turn that fills the client buffer (32 KiB) at once, and delivers all of it', async () => {
    const n = 100;
    const body = 'x'.repeat(1_000);
    const nc = await connect({ servers: url });
    try {
      batchWritesPerTurn(nc);
      const writes = countWrites(nc);
      const subject = `test.batching.${process.pid}.large`;
      const got = collect(subject, n);
      await receiver.flush();
      for (let i = 0; i < n; i++) nc.publish(subject, `${i}:${body}`);
      // Still in the same turn: the full buffers have gone out already, bounded as the client bounds them.
      expect(writes.count).toBeGreaterThanOrEqual(2);
      const received = await got;
      expect(received.map((m) => Number(m.split(':')[0]))).toEqual(Array.from({ length: n }, (_, i) => i));
    } finally {
      await nc.drain();
    }
  });

  it('still answers requests and survives the other side going away and coming back', async () => {
    const nc = await connect({ servers: url });
    try {
      batchWritesPerTurn(nc);
      const subject = `test.batching.${process.pid}.echo`;
      let responder = receiver.subscribe(subject, {
        callback: (_e, m) => {
          m.respond(`echo ${m.string()}`);
        },
      });
      await receiver.flush();
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, i) => nc.request(subject, String(i), { timeout: 10_000 })),
      );
      expect(answers.map((a) => a.string())).toEqual(Array.from({ length: 50 }, (_, i) => `echo ${i}`));
      responder.unsubscribe();
      await receiver.flush();
      await expect(nc.request(subject, 'nobody', { timeout: 2_000 })).rejects.toThrow();
      responder = receiver.subscribe(subject, {
        callback: (_e, m) => {
          m.respond('back');
        },
      });
      await receiver.flush();
      await eventually(async () => {
        expect((await nc.request(subject, 'again', { timeout: 2_000 })).string()).toBe('back');
      }, 10_000);
      responder.unsubscribe();
    } finally {
      await nc.drain();
    }
  });
});
