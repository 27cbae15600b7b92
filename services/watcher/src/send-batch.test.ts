import { describe, expect, it } from 'vitest';
import { SendBatch } from './send-batch.js';

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
});
