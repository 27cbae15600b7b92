import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DURATION_MAX_LENGTH,
  DURATION_PATTERN,
  durationSchema,
  formatDuration,
  isDuration,
  parseDuration,
} from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['0', 0],
    ['0s', 0],
    ['0h', 0],
    ['45s', 45_000],
    ['30m', 1_800_000],
    ['8h', 28_800_000],
    ['1h30m', 5_400_000],
    ['1h30m15s', 5_415_000],
    ['1h15s', 3_615_000],
    ['2m30s', 150_000],
    ['1s500ms', 1_500],
    ['250ms', 250],
    ['90m', 5_400_000],
    ['007m', 420_000],
    ['999999999h', 999_999_999 * 3_600_000],
  ])('parses %s as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    '',
    ' ',
    '30 minutes',
    '30 m',
    ' 30m',
    '30m ',
    '-5m',
    '+5m',
    '1.5h',
    '30',
    '00',
    'm',
    'h30m',
    '30M',
    '1d',
    '1w',
    '30min',
    '30mins',
    '5us',
    '1m1h',
    '1s1m',
    '1h1h',
    '1ms1s',
    '1000000000h',
    'PT30M',
    '30m\n',
  ])('rejects %j with a message naming the text and the format', (text) => {
    expect(() => parseDuration(text)).toThrow(
      `invalid duration '${text}': use a number followed by h, m or s, e.g. 30m, 8h or 1h30m`,
    );
    expect(isDuration(text)).toBe(false);
  });

  it('rejects non-strings', () => {
    expect(() => parseDuration(30 as unknown as string)).toThrow(/invalid duration '30'/);
  });

  it('gives the exact message of the design for "30 minutes"', () => {
    expect(() => parseDuration('30 minutes')).toThrowError(
      "invalid duration '30 minutes': use a number followed by h, m or s, e.g. 30m, 8h or 1h30m (0 disables)",
    );
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [45_000, '45s'],
    [1_800_000, '30m'],
    [5_400_000, '1h30m'],
    [28_800_000, '8h'],
    [90_500, '1m30s500ms'],
    [3_600_001, '1h1ms'],
    [1.4, '1ms'],
  ])('formats %d as %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('rejects %d', (ms) => {
    expect(() => formatDuration(ms)).toThrow(RangeError);
  });

  it('round-trips through parseDuration', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 999_999_999 * 3_600_000 }), (ms) => {
        const text = formatDuration(ms);
        expect(isDuration(text)).toBe(true);
        expect(parseDuration(text)).toBe(ms);
      }),
    );
  });
});

describe('DURATION_PATTERN', () => {
  it('is a string usable as-is in an OpenAPI pattern (anchored, no look-around)', () => {
    expect(typeof DURATION_PATTERN).toBe('string');
    expect(DURATION_PATTERN.startsWith('^')).toBe(true);
    expect(DURATION_PATTERN.endsWith('$')).toBe(true);
    expect(DURATION_PATTERN).not.toMatch(/\(\?[=!<]/);
  });

  it('agrees with parseDuration on arbitrary strings', () => {
    const re = new RegExp(DURATION_PATTERN);
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.stringMatching(/^[0-9]{0,3}[hms]{0,2}[0-9]{0,3}[hms]{0,2}$/)),
        (text) => {
          const accepted = re.test(text);
          if (accepted) expect(() => parseDuration(text)).not.toThrow();
          else expect(() => parseDuration(text)).toThrow(/invalid duration/);
        },
      ),
    );
  });

  it('admits nothing longer than DURATION_MAX_LENGTH', () => {
    const longest = '999999999h999999999m999999999s999999999ms';
    expect(longest).toHaveLength(DURATION_MAX_LENGTH);
    expect(isDuration(longest)).toBe(true);
  });
});

describe('durationSchema', () => {
  it('accepts valid durations and explains invalid ones', () => {
    expect(durationSchema.parse('1h30m')).toBe('1h30m');
    const result = durationSchema.safeParse('30 minutes');
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toMatch(/^invalid duration '30 minutes': use a number/);
  });
});
