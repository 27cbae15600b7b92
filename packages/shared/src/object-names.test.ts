import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  homeClaimName,
  isDns1123Label,
  isDns1123Subdomain,
  legacyHomeClaimName,
  SESSION_NAME_MAX_LENGTH,
  sessionChildName,
  USER_SLUG_MAX_LENGTH,
  userSlug,
} from './object-names.js';

// User names arrive as JSON decoded by the API server, so they are well-formed Unicode (Go replaces
// lone surrogates with U+FFFD); generate well-formed strings of every kind.
const anyUser = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 300 }),
  fc.emailAddress(),
  fc.string({ unit: fc.constantFrom('a', 'A', '.', '_', '@', '-', ' ', 'é', '1'), maxLength: 80 }),
);

describe('userSlug', () => {
  it.each([
    ['alice@example.com', 'alice-example-com-ff8d9819fc0e12bf'],
    ['Alice@example.com', 'alice-example-com-cdbc73c2371c82a2'],
    ['Bob_Smith', 'bob-smith-2c018501c6f5694b'],
  ])('maps %s to %s', (user, slug) => {
    expect(userSlug(user)).toBe(slug);
  });

  it('keeps readable text, strips accents, and falls back to "user" when nothing readable is left', () => {
    expect(userSlug('José.Núñez')).toMatch(/^jose-nunez-[0-9a-f]{16}$/);
    expect(userSlug('@@@')).toMatch(/^user-[0-9a-f]{16}$/);
    expect(userSlug('')).toMatch(/^user-[0-9a-f]{16}$/);
    expect(userSlug('用户')).toMatch(/^user-[0-9a-f]{16}$/);
    expect(userSlug('-_-a-_-')).toMatch(/^a-[0-9a-f]{16}$/);
  });

  it('truncates long names without leaving a dangling hyphen', () => {
    const slug = userSlug(`${'a'.repeat(29)}-${'b'.repeat(100)}`);
    expect(slug).toMatch(/^a{29}-[0-9a-f]{16}$/);
    expect(userSlug('x'.repeat(253))).toHaveLength(USER_SLUG_MAX_LENGTH);
  });

  it('is a DNS-1123 label of at most 47 characters for any user', () => {
    fc.assert(
      fc.property(anyUser, (user) => {
        const slug = userSlug(user);
        expect(isDns1123Label(slug)).toBe(true);
        expect(slug.length).toBeLessThanOrEqual(USER_SLUG_MAX_LENGTH);
      }),
      { numRuns: 2000 },
    );
  });

  it('is deterministic', () => {
    fc.assert(fc.property(anyUser, (user) => userSlug(user) === userSlug(`${user}`)));
  });

  it('gives distinct users distinct slugs, even when their readable parts coincide', () => {
    fc.assert(
      fc.property(anyUser, anyUser, (a, b) => {
        fc.pre(a !== b);
        expect(userSlug(a)).not.toBe(userSlug(b));
      }),
      { numRuns: 2000 },
    );
    const lookalikes = ['a.b', 'a_b', 'a-b', 'A.B', 'a b', 'a..b', 'a@b', 'á.b'];
    expect(new Set(lookalikes.map(userSlug)).size).toBe(lookalikes.length);
    const many = Array.from({ length: 20_000 }, (_, i) => `user${i}@example.com`);
    expect(new Set(many.map(userSlug)).size).toBe(many.length);
  });

  it('carries a 64-bit hash, so two users whose names fold to one readable part differ in 16 hex digits', () => {
    // Case, accents and compatibility forms fold away: the readable parts are equal.
    const folded = [
      'jose.nunez@example.com',
      'José.Núñez@example.com',
      'JOSE.NUNEZ@example.com',
      'ｊｏｓｅ.nunez@example.com',
    ];
    const slugs = folded.map(userSlug);
    expect(new Set(slugs.map((s) => s.slice(0, -17))).size).toBe(1);
    expect(new Set(slugs).size).toBe(folded.length);
    for (const slug of slugs) expect(slug).toMatch(/-[0-9a-f]{16}$/);
  });
});

describe('homeClaimName', () => {
  it('is home-<slug>, a valid DNS-1123 label', () => {
    expect(homeClaimName('alice@example.com')).toBe('home-alice-example-com-ff8d9819fc0e12bf');
    fc.assert(
      fc.property(anyUser, (user) => {
        const name = homeClaimName(user);
        expect(name).toBe(`home-${userSlug(user)}`);
        expect(isDns1123Label(name)).toBe(true);
      }),
    );
  });
});

describe('legacyHomeClaimName', () => {
  it('is the name homes had before 64-bit slugs: the readable part and 8 hex digits', () => {
    expect(legacyHomeClaimName('alice@example.com')).toBe('home-alice-example-com-ff8d9819');
    expect(legacyHomeClaimName('@@@')).toMatch(/^home-user-[0-9a-f]{8}$/);
    fc.assert(
      fc.property(anyUser, (user) => {
        const legacy = legacyHomeClaimName(user);
        expect(isDns1123Label(legacy)).toBe(true);
        expect(legacy).not.toBe(homeClaimName(user));
        // Same readable part, the first 8 of the 16 hex digits.
        expect(homeClaimName(user).startsWith(legacy)).toBe(true);
      }),
    );
  });
});

describe('sessionChildName', () => {
  const sessionName = fc
    .stringMatching(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
    .filter((s) => s.length <= SESSION_NAME_MAX_LENGTH);

  it('prefixes a valid Session name with ss-', () => {
    expect(sessionChildName('alice-firefox')).toBe('ss-alice-firefox');
    expect(sessionChildName('0abc')).toBe('ss-0abc');
  });

  it('is deterministic, injective and a DNS-1035 label ≤ 53 chars for every valid Session name', () => {
    fc.assert(
      fc.property(sessionName, sessionName, (a, b) => {
        const name = sessionChildName(a);
        expect(name).toBe(sessionChildName(a));
        expect(name.length).toBeLessThanOrEqual(53);
        expect(name).toMatch(/^[a-z]([-a-z0-9]*[a-z0-9])?$/);
        if (a !== b) expect(name).not.toBe(sessionChildName(b));
      }),
    );
  });

  it('still returns a valid label ≤ 63 chars for names the API server would refuse', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        const name = sessionChildName(text);
        expect(isDns1123Label(name)).toBe(true);
        expect(name.startsWith('ss-')).toBe(true);
      }),
    );
    expect(sessionChildName('a'.repeat(51))).toMatch(/^ss-a{41}-[0-9a-f]{8}$/);
  });
});

describe('DNS-1123 helpers', () => {
  it.each([
    ['firefox', true, true],
    ['vs-code.v2', false, true],
    ['Firefox', false, false],
    ['-a', false, false],
    ['a-', false, false],
    ['a..b', false, false],
    ['', false, false],
    ['a'.repeat(63), true, true],
    ['a'.repeat(64), false, true],
  ])('%s: label %s, subdomain %s', (value, label, subdomain) => {
    expect(isDns1123Label(value)).toBe(label);
    expect(isDns1123Subdomain(value)).toBe(subdomain);
  });
});
