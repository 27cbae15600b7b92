import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readText } from './body-text.js';

function textOf(chunks: Buffer[]): Promise<string> {
  return new Promise((resolve) => readText(Readable.from(chunks), resolve));
}

describe('readText', () => {
  it('gives the whole body as text, a character split between chunks included', async () => {
    const body = Buffer.from('{"name":"Zoë","city":"Kraków ✓"}');
    // Every split point, so each multi-byte character is cut in every place once.
    for (let at = 1; at < body.length; at++)
      expect(await textOf([body.subarray(0, at), body.subarray(at)])).toBe('{"name":"Zoë","city":"Kraków ✓"}');
  });

  it('gives an empty text for an empty body', async () => {
    expect(await textOf([])).toBe('');
  });
});
