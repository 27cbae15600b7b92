import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { httpDate, isoTime } from './utc-time.js';

/** The instants toISOString prints with a four-digit year: 0000-01-01 to 9999-12-31. */
const YEAR_0 = -62_167_219_200_000;
const YEAR_9999_END = 253_402_300_799_999;

describe('isoTime and httpDate', () => {
  it('print exactly what toISOString and toUTCString print, for every instant', () => {
    fc.assert(
      fc.property(fc.integer({ min: YEAR_0, max: YEAR_9999_END }), (ms) => {
        expect(isoTime(ms)).toBe(new Date(ms).toISOString());
        expect(isoTime(new Date(ms))).toBe(new Date(ms).toISOString());
        expect(httpDate(ms)).toBe(new Date(ms).toUTCString());
      }),
      { numRuns: 5_000 },
    );
    for (const ms of [YEAR_0, 0, Date.UTC(2026, 10, 30, 18, 0, 0, 7), YEAR_9999_END]) {
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
      expect(httpDate(ms)).toBe(new Date(ms).toUTCString());
    }
    expect(isoTime(Date.UTC(2026, 10, 30, 18, 0, 0, 7))).toBe('2026-11-30T18:00:00.007Z');
    expect(httpDate(Date.UTC(2026, 10, 30, 18, 0, 0))).toBe('Mon, 30 Nov 2026 18:00:00 GMT');
  });

  it('hand years outside 0-9999 and invalid dates to V8, as toISOString would', () => {
    for (const ms of [YEAR_0 - 1, YEAR_9999_END + 1, -8.64e15, 8.64e15]) {
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
      expect(httpDate(ms)).toBe(new Date(ms).toUTCString());
    }
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
    expect(httpDate(Number.NaN)).toBe('Invalid Date');
  });
});
