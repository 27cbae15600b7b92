import { describe, expect, it } from 'vitest';
import { batchDelay, SendBatch } from './send-batch.js';

describe('SendBatch', () => {
  it('starts the sends asked for in one turn together, after that turn, in the order asked', async () => {
    const batch = new SendBatch();
    const started: string[] = [];
    const send = (name: string) =>
      batch.run(async () => {
        started.push(name);
        return name;
      });
    const first = [send('a'), send('b')];
    // Asked for later in the same turn (another callback, a microtask): the same batch.
    const joined = Promise.resolve().then(() => send('c'));
    await Promise.resolve();
    expect(started).toEqual([]);
    expect(await Promise.all(first)).toEqual(['a', 'b']);
    expect(started).toEqual(['a', 'b', 'c']);
    expect(await (await joined)).toBe('c');
    // A later turn's sends make a batch of their own.
    await expect(send('d')).resolves.toBe('d');
    expect(started).toEqual(['a', 'b', 'c', 'd']);
  });

  it('settles each send as its own promise does; one that fails or throws stops no other', async () => {
    const batch = new SendBatch();
    const failing = batch.run(async () => {
      throw new Error('no responders');
    });
    const throwing = batch.run<string>(() => {
      throw new Error('invalid subject');
    });
    const fine = batch.run(async () => 'stored');
    await expect(failing).rejects.toThrow('no responders');
    await expect(throwing).rejects.toThrow('invalid subject');
    await expect(fine).resolves.toBe('stored');
    // And the next turn's sends go out too.
    await expect(batch.run(async () => 'next')).resolves.toBe('next');
  });

  it('while sends await replies, starts the next batch no sooner than the gap after the last', async () => {
    const batch = new SendBatch({ busyGapMs: 40 });
    let reply: (value: string) => void = () => undefined;
    const started: number[] = [];
    const at = performance.now();
    const first = batch.run(
      () =>
        new Promise<string>((resolve) => {
          started.push(performance.now() - at);
          reply = resolve;
        }),
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toHaveLength(1);
    // The first awaits its reply: the next turn's sends wait for the gap, together.
    const second = batch.run(async () => started.push(performance.now() - at));
    const third = batch.run(async () => started.push(performance.now() - at));
    await Promise.all([second, third]);
    expect(started[1]).toBeGreaterThanOrEqual(39);
    expect((started[2] ?? 0) - (started[1] ?? 0)).toBeLessThan(5);
    // Nothing awaits a reply any more: the next send goes in the next turn, without waiting.
    reply('stored');
    await first;
    const before = performance.now();
    await batch.run(async () => 'alone');
    expect(performance.now() - before).toBeLessThan(30);
  });
});

describe('batchDelay', () => {
  it('waits out the gap only while sends await replies', () => {
    expect(batchDelay(100, 98, 0, 5)).toBe(0);
    expect(batchDelay(100, 98, 3, 5)).toBe(3);
    expect(batchDelay(100, 90, 3, 5)).toBe(0);
    expect(batchDelay(100, 98, 3, 0)).toBe(0);
    expect(batchDelay(100, Number.NEGATIVE_INFINITY, 3, 5)).toBe(0);
  });
});
