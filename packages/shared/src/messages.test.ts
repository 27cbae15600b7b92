import { describe, expect, it } from 'vitest';
import { decodeMessage, workItemSchema } from './messages.js';

const bytes = (text: string) => new TextEncoder().encode(text);

describe('decodeMessage', () => {
  it('accepts a valid work item and fills the default reason', () => {
    expect(decodeMessage(workItemSchema, bytes('{"kind":"session","namespace":"team-a","name":"desk"}'))).toEqual({
      ok: true,
      value: { kind: 'session', namespace: 'team-a', name: 'desk', reason: 'unknown' },
    });
  });

  it.each([
    ['not JSON', '{oops', /not JSON/],
    ['a wrong kind', '{"kind":"pod","namespace":"a","name":"b"}', /kind:/],
    ['a namespace that is not a name', '{"kind":"session","namespace":"Team A","name":"b"}', /namespace: must be a namespace name/],
    ['a number for a name', '{"kind":"session","namespace":"a","name":7}', /name:/],
    ['truncated input', '{"kind":"session","namesp', /not JSON/],
  ])('rejects %s with a readable error', (_, text, pattern) => {
    const result = decodeMessage(workItemSchema, bytes(text));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(pattern);
  });
});
