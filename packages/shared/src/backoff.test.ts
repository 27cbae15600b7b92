import { describe, expect, it } from 'vitest';
import { backoffDelay, retryForever } from './backoff.js';

describe('backoffDelay', () => {
  it('grows exponentially within [ceiling/2, ceiling] and stops at the maximum', () => {
    expect(backoffDelay(0, { initialMs: 100, random: () => 0 })).toBe(50);
    expect(backoffDelay(0, { initialMs: 100, random: () => 0.999999 })).toBe(100);
    expect(backoffDelay(3, { initialMs: 100, random: () => 0 })).toBe(400);
    expect(backoffDelay(50, { initialMs: 100, maxMs: 5_000, random: () => 0.999999 })).toBe(5_000);
  });
});

describe('retryForever', () => {
  it('retries until the operation succeeds and reports each failure', async () => {
    const seen: number[] = [];
    const result = await retryForever(
      async (attempt) => {
        if (attempt < 3) throw new Error(`fail ${attempt}`);
        return 'done';
      },
      { initialMs: 1, maxMs: 2, onError: (_, attempt) => seen.push(attempt) },
    );
    expect(result).toBe('done');
    expect(seen).toEqual([0, 1, 2]);
  });

  it('gives up when aborted', async () => {
    const controller = new AbortController();
    const running = retryForever(
      async () => {
        throw new Error('down');
      },
      { initialMs: 10_000, signal: controller.signal },
    );
    controller.abort();
    await expect(running).rejects.toThrow('down');
  });
});
