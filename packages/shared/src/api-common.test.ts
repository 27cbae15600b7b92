import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareQuantities, formatFieldPath, pruneNulls, quantitySchema } from './api-common.js';
import { validateSession } from './session-schema.js';

describe('compareQuantities (Quantity.Cmp semantics, as the CEL quantity library uses)', () => {
  it.each([
    ['1', '1', 0],
    [1, '1000m', 0],
    ['1Gi', '1024Mi', 0],
    ['1Gi', 1073741824, 0],
    ['1G', '1000M', 0],
    ['1e3', '1k', 0],
    ['1E3', 1000, 0],
    ['0.5', '500m', 0],
    ['.5', '500m', 0],
    ['5.', 5, 0],
    ['+1', '1', 0],
    ['0', '-0', 0],
    ['1Gi', '1G', 1],
    ['1500Mi', '2Gi', -1],
    ['2', '1500m', 1],
    ['100m', '0.1', 0],
    ['1n', '0.0000000001', 0], // rounded up to 1n like resource.ParseQuantity
    ['1n', '0.0000000015', -1], // 1.5n rounds up to 2n
    ['-1', '0', -1],
    ['-2', '-1', -1],
    [-5, '-5', 0],
    ['1e100', '1e99', 1],
    ['1e-100', '1n', 0],
    ['8Ei', '9223372036854775807', 0], // binary quantities are capped at 2^63-1
    ['1e1000000000', '1', 1],
  ] as const)('%s vs %s → %d', (a, b, expected) => {
    expect(compareQuantities(a, b)).toBe(expected);
    expect(compareQuantities(b, a)).toBe(-expected || 0);
  });

  it('is undefined for things that are not quantities', () => {
    expect(compareQuantities('two', '1')).toBeUndefined();
    expect(compareQuantities('1e9999999999', '1')).toBeUndefined();
  });

  it('orders integers like numbers', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer(), (a, b) => {
        expect(compareQuantities(a, b)).toBe(Math.sign(a - b) || 0);
      }),
    );
  });

  it('agrees with the suffix arithmetic for milli and binary units', () => {
    fc.assert(
      fc.property(fc.nat(10_000_000), fc.nat(10_000), (milli, mebi) => {
        expect(compareQuantities(`${milli}m`, `${milli}000000n`)).toBe(0);
        expect(compareQuantities(`${milli}m`, `${milli + 1}m`)).toBe(-1);
        expect(compareQuantities(`${mebi}Mi`, mebi * 1024 * 1024)).toBe(0);
      }),
    );
  });
});

describe('quantitySchema', () => {
  it.each([0, 2, '500m', '2Gi', '1.5', '1e3', '+1', '-1', '.5'])('accepts %j', (q) => {
    expect(quantitySchema.safeParse(q).success).toBe(true);
  });
  it.each(['', 'two', '1 Gi', '1gi', '1.5.5', 1.5, true, null, `${'1'.repeat(65)}`])('rejects %j', (q) => {
    expect(quantitySchema.safeParse(q).success).toBe(false);
  });
});

describe('formatFieldPath', () => {
  it('writes paths the way the API server does', () => {
    expect(formatFieldPath(['spec', 'ports', 1, 'containerPort'])).toBe('spec.ports[1].containerPort');
    expect(formatFieldPath(['spec', 'resources', 'requests', 'cpu'])).toBe('spec.resources.requests.cpu');
    expect(formatFieldPath([])).toBe('');
  });
});

describe('null handling', () => {
  it('treats null fields as absent, then defaults them, as the API server does', () => {
    expect(pruneNulls({ a: null, b: { c: null, d: 1 }, e: [null, { f: null }] })).toEqual({
      b: { d: 1 },
      e: [null, {}],
    });
    const result = validateSession({
      apiVersion: 'stream.streamspace.io/v1alpha1',
      kind: 'Session',
      metadata: { name: 'n' },
      spec: { user: 'u', template: 't', idleTimeout: null, resources: null },
    });
    expect(result.ok && result.value.spec).toEqual({
      user: 'u',
      template: 't',
      state: 'running',
      persistentHome: false,
      idleTimeout: '30m',
      maxSessionDuration: '8h',
    });
  });
});
