import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { objectKey, subjects } from './subjects.js';
import {
  MAX_WORK_PARTITIONS,
  partitionOf,
  recordedPartitions,
  WORK_PARTITIONS_METADATA,
  workConsumerNames,
} from './work-partitions.js';

describe('work partitions', () => {
  it('puts a key in the same partition every time, within range', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: MAX_WORK_PARTITIONS }), (key, partitions) => {
        const p = partitionOf(key, partitions);
        expect(Number.isInteger(p) && p >= 0 && p < partitions).toBe(true);
        expect(partitionOf(key, partitions)).toBe(p);
      }),
    );
  });

  it('is FNV-1a, so every process and release agrees (pinned values)', () => {
    // FNV-1a of "" is the offset basis, of "a" 0xe40c292c: published test vectors.
    expect(partitionOf('', 2 ** 31)).toBe(0x811c9dc5 % 2 ** 31);
    expect(partitionOf('a', 2 ** 31)).toBe(0xe40c292c % 2 ** 31);
    expect(partitionOf('foobar', 2 ** 31)).toBe(0xbf9cf968 % 2 ** 31);
  });

  it('spreads Session keys evenly over the partitions', () => {
    const partitions = 8;
    const counts = new Array(partitions).fill(0);
    for (let i = 0; i < 8_000; i++)
      counts[partitionOf(objectKey('session', `team-${i % 37}`, `desk-${i}`), partitions)]++;
    // A uniform spread puts 1,000 in each; ±15% is far outside what FNV-1a does on such keys.
    for (const count of counts) expect(Math.abs(count - 1_000)).toBeLessThan(150);
  });

  it('names the partition first in a work subject, so a consumer can filter on it', () => {
    const subject = subjects.work('session', 'team-a', 'alice.desk', 8);
    const partition = partitionOf(objectKey('session', 'team-a', 'alice.desk'), 8);
    expect(subject).toBe(`streamspace.work.${partition}.session.team-a.alice_desk`);
    expect(subject.startsWith(subjects.workPartition(partition).slice(0, -1))).toBe(true);
  });

  it('refuses a partition count that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN])
      expect(() => partitionOf('k', bad)).toThrow(/positive integer/);
  });

  it('reads the count the watcher recorded, and nothing else', () => {
    expect(recordedPartitions({ [WORK_PARTITIONS_METADATA]: '8' })).toBe(8);
    const bad: (Record<string, string> | undefined)[] = [
      undefined,
      {},
      { [WORK_PARTITIONS_METADATA]: '0' },
      { [WORK_PARTITIONS_METADATA]: 'x' },
    ];
    for (const metadata of bad) expect(recordedPartitions(metadata)).toBeUndefined();
    expect(
      recordedPartitions({ [WORK_PARTITIONS_METADATA]: String(MAX_WORK_PARTITIONS + 1) }),
    ).toBeUndefined();
    expect(new Set(workConsumerNames(16)).size).toBe(16);
  });
});
