import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { partitionsToRelease } from './partition-balance.js';

describe('partitionsToRelease', () => {
  it('gives back what is over the fair share, and nothing when alone or within it', () => {
    expect(partitionsToRelease([0, 1, 2, 3, 4, 5, 6, 7], 3, 8)).toEqual([3, 4, 5, 6, 7]);
    expect(partitionsToRelease([0, 1, 2], 3, 8)).toEqual([]);
    expect(partitionsToRelease([0, 1, 2, 3, 4, 5, 6, 7], 1, 8)).toEqual([]);
  });

  it('leaves every worker at most its fair share, and the workers together able to hold every partition', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 20 }), (partitions, members) => {
        const held = Array.from({ length: partitions }, (_, p) => p);
        const kept = held.length - partitionsToRelease(held, members, partitions).length;
        expect(kept).toBe(Math.min(partitions, Math.ceil(partitions / members)));
        expect(kept * members).toBeGreaterThanOrEqual(partitions);
      }),
    );
  });
});
