import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ListItemSplitter } from './list-items.js';

/** Feeds `text` in the given chunks; returns the items' texts, the envelope and the error. */
function split(chunks: string[]): { items: string[]; envelope: string; error: unknown } {
  const items: string[] = [];
  const splitter = new ListItemSplitter((json) => items.push(json));
  for (const chunk of chunks) splitter.write(chunk);
  return { items, envelope: splitter.end(), error: splitter.error };
}

/** Every way of cutting `text` in two, and in chunks of 1, 2, 3 and 7 characters. */
function cuts(text: string): string[][] {
  const ways: string[][] = [[text]];
  for (let at = 1; at < text.length; at++) ways.push([text.slice(0, at), text.slice(at)]);
  for (const size of [1, 2, 3, 7]) {
    const chunks: string[] = [];
    for (let at = 0; at < text.length; at += size) chunks.push(text.slice(at, at + size));
    ways.push(chunks);
  }
  return ways;
}

// The hard parts of JSON in one list: quotes, backslashes (one ending a string), brackets and
// commas inside strings, an `items` key inside an item and a string value `items` in the list,
// nested arrays, numbers, literals, non-ASCII text, and whitespace between the items.
const items = [
  { metadata: { name: 'a', annotations: { note: 'say "hi", then {leave} [now]\\' } }, spec: { items: [1, [2, 3], { x: null }] } },
  { metadata: { name: 'b', labels: { 'ü-key': 'naïve ✓ \u2028' } }, status: { ready: true, count: -1.5e3 } },
  { metadata: { name: 'c\\"d' }, data: { 'items': '],[{"' } },
];
const list = {
  kind: 'items',
  apiVersion: 'v1',
  metadata: { resourceVersion: '42', continue: 'token,"with" [brackets]' },
  items,
};

describe('ListItemSplitter', () => {
  it('hands on each item of a list as its JSON, however the text is cut into chunks', () => {
    const texts = [JSON.stringify(list), JSON.stringify(list, null, 2)];
    for (const text of texts)
      for (const chunks of cuts(text)) {
        const { items: got, envelope, error } = split(chunks);
        expect(error).toBeUndefined();
        expect(got.map((json) => JSON.parse(json))).toEqual(items);
        expect(JSON.parse(envelope)).toEqual({ ...list, items: [] });
      }
  });

  it('hands on any JSON objects as they were, cut anywhere (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.dictionary(fc.string({ unit: 'binary' }), fc.jsonValue()), { maxLength: 8 }),
        fc.string({ unit: 'binary' }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.boolean(),
        (objects, token, at, pretty) => {
          const value = { metadata: { resourceVersion: '9', continue: token }, items: objects };
          const text = pretty ? JSON.stringify(value, null, 1) : JSON.stringify(value);
          const points = [...new Set(at.map((n) => n % (text.length + 1)))].sort((a, b) => a - b);
          const chunks = [0, ...points].map((from, i) => text.slice(from, [...points, text.length][i]));
          const { items: got, envelope, error } = split(chunks);
          expect(error).toBeUndefined();
          expect(got.map((json) => JSON.parse(json))).toEqual(JSON.parse(JSON.stringify(objects)));
          expect(JSON.parse(envelope)).toEqual({ metadata: value.metadata, items: [] });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('finds the items wherever the key stands, and none in an empty or missing array', () => {
    const first = `{"items":[{"a":1},{"b":2}],"metadata":{"resourceVersion":"7"}}`;
    expect(split([first]).items).toEqual(['{"a":1}', '{"b":2}']);
    expect(JSON.parse(split([first]).envelope)).toEqual({ items: [], metadata: { resourceVersion: '7' } });
    expect(split(['{"metadata":{},"items":[]}'])).toEqual({ items: [], envelope: '{"metadata":{},"items":[]}', error: undefined });
    expect(split(['{"metadata":{},"items": [ ] }']).items).toEqual([]);
    expect(split(['{"metadata":{"resourceVersion":"1"}}']).envelope).toBe('{"metadata":{"resourceVersion":"1"}}');
    // A nested `items` is part of its item, not the list's.
    expect(split(['{"metadata":{"items":[1,2]},"items":[3]}']).items).toEqual(['3']);
  });

  it('hands on what is not an object as it stands, for the consumer to judge', () => {
    expect(split(['{"items":[null, "x" ,7,[1,{}]]}']).items).toEqual(['null', '"x" ', '7', '[1,{}]']);
  });

  it('stops handing on after the consumer failed, and says so', () => {
    const seen: string[] = [];
    const splitter = new ListItemSplitter((json) => {
      seen.push(json);
      if (seen.length === 2) throw new Error('cache refused it');
    });
    splitter.write('{"items":[{"a":1},{"b":2},{"c":3}],"metadata":{}}');
    splitter.end();
    expect(seen).toEqual(['{"a":1}', '{"b":2}']);
    expect((splitter.error as Error).message).toBe('cache refused it');
  });

  it('says so when the answer ends inside the list', () => {
    for (const text of ['{"items":[{"a":1},{"b":', '{"items":[{"a":"x\\', '{"metadata":{"resourceVersion":"1"']) {
      const { error } = split([text]);
      expect((error as Error).message).toMatch(/the list's answer ended inside it/);
    }
  });

  it('holds no more than the item being received', () => {
    const big = { metadata: { name: 'x' }, data: 'y'.repeat(10_000) };
    const text = JSON.stringify({ metadata: { resourceVersion: '1' }, items: Array.from({ length: 50 }, () => big) });
    const splitter = new ListItemSplitter(() => undefined);
    let held = 0;
    for (let at = 0; at < text.length; at += 1000) {
      splitter.write(text.slice(at, at + 1000));
      held = Math.max(held, (splitter as unknown as { buf: string }).buf.length);
    }
    expect(splitter.error).toBeUndefined();
    expect(splitter.count).toBe(50);
    expect(held).toBeLessThan(JSON.stringify(big).length + 1000);
  });
});
