import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  homeClaimName,
  isDns1123Label,
  isDns1123Subdomain,
  isValidSessionName,
  SESSION_NAME_DIRECT_MAX_LENGTH,
  legacyHomeClaimName,
  SESSION_NAME_MAX_LENGTH,
  sessionChildName,
  sessionHostLabel,
  sessionLabelValue,
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

// Every name Kubernetes accepts for a Session: DNS-1123 subdomains up to 253 characters, weighted
// towards the long and dotted ones that must be shortened, and pairs that share long prefixes.
const sessionLabel = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
const anySessionName = fc
  .oneof(
    sessionLabel,
    fc.array(sessionLabel, { minLength: 1, maxLength: 8 }).map((parts) => parts.join('.')),
    fc.tuple(fc.constant('a'.repeat(60)), sessionLabel).map(([prefix, rest]) => `${prefix}${rest}`),
    fc.integer({ min: 1, max: 253 }).map((n) => 's'.repeat(n)),
  )
  .filter((name) => name.length <= SESSION_NAME_MAX_LENGTH && isValidSessionName(name));

describe('names derived from a Session name', () => {
  it('keeps the names children have always had for names of up to 50 characters', () => {
    expect(sessionChildName('alice-firefox')).toBe('ss-alice-firefox');
    expect(sessionChildName('0abc')).toBe('ss-0abc');
    expect(sessionChildName('s'.repeat(50))).toBe(`ss-${'s'.repeat(50)}`);
    expect(sessionLabelValue('alice-firefox')).toBe('alice-firefox');
    expect(sessionHostLabel('alice-firefox')).toBe('alice-firefox');
  });

  it('shortens longer or dotted names to a readable prefix and 16 hex digits', () => {
    expect(sessionChildName('s'.repeat(51))).toMatch(/^ss-s{33}-[0-9a-f]{16}$/);
    expect(sessionChildName('alice.firefox')).toMatch(/^ss-alice-firefox-[0-9a-f]{16}$/);
    expect(sessionLabelValue('s'.repeat(63))).toBe('s'.repeat(63));
    expect(sessionLabelValue('s'.repeat(64))).toMatch(/^s{46}-[0-9a-f]{16}$/);
    expect(sessionLabelValue('alice.firefox')).toBe('alice.firefox');
    expect(sessionHostLabel('alice.firefox')).toMatch(/^alice-firefox-[0-9a-f]{16}$/);
    expect(sessionHostLabel('s'.repeat(253))).toMatch(/^s{46}-[0-9a-f]{16}$/);
  });

  it('gives different children to two long names that share a 60-character prefix', () => {
    const a = `${'a'.repeat(60)}-one`;
    const b = `${'a'.repeat(60)}-two`;
    expect(sessionChildName(a)).not.toBe(sessionChildName(b));
    expect(sessionLabelValue(a)).not.toBe(sessionLabelValue(b));
    expect(sessionHostLabel(a)).not.toBe(sessionHostLabel(b));
  });

  it('is deterministic, injective and valid for every name Kubernetes accepts', () => {
    fc.assert(
      fc.property(anySessionName, anySessionName, (a, b) => {
        for (const derive of [sessionChildName, sessionLabelValue, sessionHostLabel]) {
          expect(derive(a)).toBe(derive(a));
          if (a !== b) expect(derive(a)).not.toBe(derive(b));
        }
        const child = sessionChildName(a);
        expect(child.length).toBeLessThanOrEqual(SESSION_NAME_DIRECT_MAX_LENGTH + 3);
        expect(child).toMatch(/^ss-[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
        expect(sessionLabelValue(a)).toMatch(/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/);
        expect(isDns1123Label(sessionHostLabel(a))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses Session names that end like a shortened name, and only those', () => {
    expect(isValidSessionName('desk-0123456789abcdef')).toBe(false);
    expect(isValidSessionName('desk-0123456789abcde')).toBe(true);
    expect(isValidSessionName('desk-0123456789abcdeF')).toBe(false); // capitals: not a subdomain
    expect(isValidSessionName('s'.repeat(253))).toBe(true);
    expect(isValidSessionName('s'.repeat(254))).toBe(false);
  });

  it('still returns a valid child name for names the API server would refuse', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        const name = sessionChildName(text);
        expect(isDns1123Label(name)).toBe(true);
        expect(name.startsWith('ss-')).toBe(true);
      }),
    );
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
