import { describe, expect, it } from 'vitest';
import type { ValidationResult } from './api-common.js';
import { apiCorpus, type InvalidCase, type ValidCase } from './api-corpus.test-support.js';
import { validateSession } from './session-schema.js';
import { validateTemplate } from './template-schema.js';

// zod's half of the zod/CRD agreement: every valid object is accepted and every invalid one is
// rejected with an issue at exactly the field the API server names. (The integration suite sends
// the same corpus to a real kube-apiserver.)

const kinds = [
  ['Session', apiCorpus.sessions, validateSession],
  ['Template', apiCorpus.templates, validateTemplate],
] as const satisfies readonly (readonly [
  string,
  { valid: readonly ValidCase[]; invalid: readonly InvalidCase[] },
  (obj: unknown) => ValidationResult<unknown>,
])[];

describe.each(kinds)('%s corpus', (kind, corpus, validate) => {
  it('has at least 15 valid and 15 invalid cases, all of this kind, with distinct names', () => {
    expect(corpus.valid.length).toBeGreaterThanOrEqual(15);
    expect(corpus.invalid.length).toBeGreaterThanOrEqual(15);
    const all = [...corpus.valid, ...corpus.invalid];
    for (const c of all) expect(c.object.kind).toBe(kind);
    const names = all.map((c) => c.object.metadata.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it.each(corpus.valid.map((c) => [c.description, c] as const))('accepts: %s', (_d, c) => {
    const result = validate(structuredClone(c.object));
    expect(result.ok ? [] : result.issues).toEqual([]);
  });

  it.each(corpus.invalid.map((c) => [c.field, c.description, c] as const))(
    'rejects at %s: %s',
    (field, _d, c) => {
      const result = validate(structuredClone(c.object));
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.issues.map((i) => i.path)).toContain(field);
      for (const issue of result.issues) expect(issue.message).toMatch(/\S/);
    },
  );
});

describe('validation results', () => {
  it('apply the defaults to valid objects', () => {
    const result = validateSession(apiCorpus.sessions.valid[0]!.object);
    expect(result.ok && result.value.spec).toEqual({
      user: 'alice@example.com',
      template: 'firefox',
      state: 'running',
      persistentHome: false,
      idleTimeout: '30m',
      maxSessionDuration: '8h',
    });
  });

  it('explain a bad duration in words a person can act on', () => {
    const bad = apiCorpus.sessions.invalid.find((c) => c.object.metadata.name === 'bad-idle-words')!;
    const result = validateSession(bad.object);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.issues).toEqual([
      {
        path: 'spec.idleTimeout',
        message:
          "invalid duration '30 minutes': use a number followed by h, m or s, e.g. 30m, 8h or 1h30m (0 disables)",
      },
    ]);
  });

  it('reject things that are not objects at all', () => {
    expect(validateSession(null)).toMatchObject({ ok: false, issues: [{ path: '' }] });
    expect(validateTemplate('firefox')).toMatchObject({ ok: false });
  });
});
