import { describe, expect, it } from 'vitest';
import * as compact from './compact-fields.js';

const { compactPart, compactVersion, packedNumber, packedUid, packNumbersAndUid, partText, versionText } =
  compact;

describe('packNumbersAndUid', () => {
  const uuid = 'ccd17429-3f9c-41d0-b128-f4e6f2fae5e5';

  it('gives back 48-bit numbers and a UUID exactly, in 29 characters', () => {
    const numbers = [0, 1, 2 ** 24 - 1, 2 ** 24, 2 ** 48 - 1, 0x1234_5678_9abc];
    const packed = packNumbersAndUid(numbers, uuid);
    expect(packed).toHaveLength(numbers.length * 6 + 17);
    expect(numbers.map((_, i) => packedNumber(packed, i))).toEqual(numbers);
    expect(packedUid(packed, numbers.length)).toBe(uuid);
    expect(packedUid(packNumbersAndUid([7, 9], uuid), 2)).toBe(uuid);
  });

  it('keeps a uid that is not a lower-case UUID as its text', () => {
    for (const uid of ['uid-p', uuid.toUpperCase(), `${uuid}x`, '', 'ünïcode-€', '0'.repeat(16)]) {
      const packed = packNumbersAndUid([42], uid);
      expect(packedUid(packed, 1)).toBe(uid);
      expect(packedNumber(packed, 0)).toBe(42);
    }
  });

  it('tells different uids and digests apart', () => {
    const other = 'ccd17429-3f9c-41d0-b128-f4e6f2fae5e6';
    expect(packNumbersAndUid([1], uuid)).not.toBe(packNumbersAndUid([1], other));
    expect(packNumbersAndUid([1], uuid)).not.toBe(packNumbersAndUid([2], uuid));
  });

  it('refuses what is not a 48-bit integer', () => {
    for (const value of [-1, 2 ** 48, 1.5, Number.NaN])
      expect(() => packNumbersAndUid([value], 'u')).toThrow(RangeError);
  });
});

describe('compactVersion', () => {
  it('holds a small decimal as an integer and reads back the same text', () => {
    expect(compactVersion('26299')).toBe(26299);
    expect(compactVersion('999999999')).toBe(999_999_999);
    for (const text of ['1', '26299', '999999999']) expect(versionText(compactVersion(text))).toBe(text);
  });

  it('keeps any other text as it came', () => {
    for (const text of ['0', '007', '1000000000', '18446744073709551615', 'abc', '12a', ''])
      expect(compactVersion(text)).toBe(text);
  });
});

describe('compactPart', () => {
  it('holds a Session name found in its child name as a position, read back the same', () => {
    for (const [name, session] of [
      ['ss-bench-1007', 'bench-1007'],
      ['ss-bench-1007-6b4585f67-6mf7t', 'bench-1007'],
      ['x', 'x'],
    ] as const) {
      const part = compactPart(name, session);
      expect(typeof part).toBe('number');
      expect(partText(name, part)).toBe(session);
    }
  });

  it('keeps a name not found in the child name, or none', () => {
    expect(compactPart('ss-s1-abc', 's1-short')).toBe('s1-short');
    expect(partText('ss-s1-abc', 's1-short')).toBe('s1-short');
    expect(compactPart('ss-s1', undefined)).toBeUndefined();
    expect(partText('ss-s1', undefined)).toBeUndefined();
    expect(compactPart('ss-s1', '')).toBe('');
  });
});
