import { describe, expect, it } from 'vitest';
import { nextResyncAt, resyncName, resyncRound } from './resync-schedule.js';

const MIN5 = 300_000;

describe('resync schedule', () => {
  it('fires at the middle of each round, strictly in the future', () => {
    expect(nextResyncAt(0, MIN5)).toBe(150_000);
    expect(nextResyncAt(149_999, MIN5)).toBe(150_000);
    expect(nextResyncAt(150_000, MIN5)).toBe(450_000);
    expect(nextResyncAt(299_999, MIN5)).toBe(450_000);
  });

  it('gives two watchers firing at the same mid-round moment the same name despite skewed clocks', () => {
    const fireAt = nextResyncAt(1_000_000, MIN5);
    for (const skew of [-140_000, -1_000, 0, 1_000, 140_000]) {
      expect(resyncName('periodic', fireAt + skew, MIN5)).toBe(resyncName('periodic', fireAt, MIN5));
    }
    expect(resyncName('periodic', fireAt, MIN5)).toBe(`p${resyncRound(fireAt, MIN5)}`);
  });

  it('names unscheduled resyncs apart from periodic ones', () => {
    expect(resyncName('reconnect', 65_000, MIN5)).toBe('r2');
    expect(resyncName('overflow', 65_000, MIN5)).toBe('o2');
    expect(resyncName('periodic', 65_000, MIN5)).toBe('p0');
  });
});
