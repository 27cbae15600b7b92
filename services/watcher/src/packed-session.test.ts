import { readFileSync } from 'node:fs';
import { type KubeObject, parseKubeObject } from '@streamspace/kube';
import { trimObject } from '@streamspace/shared';
import { describe, expect, it } from 'vitest';
import { PACKED_SESSIONS, sessionState } from './packed-session.js';

const sample = readFileSync(
  new URL('../../../bench/watcher-cache-samples/session.json', import.meta.url),
  'utf8',
);

function session(raw: Record<string, unknown>): KubeObject {
  const parsed = parseKubeObject(raw, (object) => trimObject('session', object));
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.object;
}

describe('PACKED_SESSIONS', () => {
  it('gives back the very JSON and object it was given, and what the watcher keys on', () => {
    const object = session(JSON.parse(sample));
    const packed = PACKED_SESSIONS.retain(object);
    expect(packed.json).toBe(object.json);
    expect(packed.raw).toEqual(JSON.parse(object.json));
    for (const field of ['namespace', 'name', 'uid', 'resourceVersion', 'generation', 'labels'] as const)
      expect(packed[field]).toEqual(object[field]);
    expect(PACKED_SESSIONS.restore(packed).json).toBe(object.json);
  });

  it('tells a Session’s spec.state without inflating it, packed or not', () => {
    const raw = JSON.parse(sample) as { spec: Record<string, unknown> };
    for (const state of ['running', 'hibernated', 'terminated']) {
      const object = session({ ...raw, spec: { ...raw.spec, state } });
      expect(sessionState(PACKED_SESSIONS.retain(object))).toBe(state);
      expect(sessionState(object)).toBe(state);
    }
    // An invalid state (the reconciler says so in the status) asks for no replica count.
    const paused = session({ ...raw, spec: { ...raw.spec, state: 'paused' } });
    expect(sessionState(PACKED_SESSIONS.retain(paused))).toBe(undefined);
  });

  it('keeps a bench Session in a fraction of its JSON', () => {
    const object = session(JSON.parse(sample.replaceAll('bench-1007', 'bench-4242')));
    const packed = PACKED_SESSIONS.retain(object);
    expect(packed.bytes).toBeGreaterThan(0);
    expect(packed.bytes).toBeLessThan(object.bytes / 4);
  });

  it('round-trips what the dictionary does not know: other fields, other scripts, labels, an oversize mark', () => {
    const raw = JSON.parse(sample) as Record<string, Record<string, unknown>>;
    raw.metadata = {
      ...raw.metadata,
      labels: { team: 'ŝtudio-日本' },
      annotations: { note: '\u0000\u00ff😀' },
    };
    raw.spec = { ...raw.spec, user: 'zoë@exämple.org', resources: { limits: { cpu: '2' } } };
    const object = session(raw);
    const packed = PACKED_SESSIONS.retain({
      ...object,
      json: object.json,
      raw: object.raw,
      oversize: { level: 'reduced', bytes: 9 },
    });
    expect(packed.json).toBe(object.json);
    expect((packed.raw.spec as { user: string }).user).toBe('zoë@exämple.org');
    expect(packed.labels).toEqual({ team: 'ŝtudio-日本' });
    expect(packed.oversize).toEqual({ level: 'reduced', bytes: 9 });
  });

  it('round-trips a Session many times larger than the 2 KiB window it is packed with, and than zlib\'s output chunks', () => {
    const raw = JSON.parse(sample) as Record<string, Record<string, unknown>>;
    const labels: Record<string, string> = {};
    for (let i = 0; i < 600; i++) labels[`label-${i}`] = `value-${(i * 7919) % 1000}-${'x'.repeat(i % 13)}`;
    raw.metadata = { ...raw.metadata, labels };
    const object = session(raw);
    expect(object.json.length).toBeGreaterThan(15_000);
    const packed = PACKED_SESSIONS.retain(object);
    expect(packed.json).toBe(object.json);
    expect(packed.bytes).toBeLessThan(object.bytes);
    // Deflated into several of its 1 KiB output chunks, inflated into many of 2 KiB.
    expect(packed.bytes).toBeGreaterThan(1024);
  });

  it('keeps the name, namespace, uid and resourceVersion out of what it deflates, and gives them back', () => {
    const object = session(JSON.parse(sample));
    const packed = PACKED_SESSIONS.retain(object);
    // Its JSON with the identity fields emptied, packed as it is, takes as many bytes: they are not in it.
    let emptied = object.json;
    for (const field of ['name', 'namespace', 'resourceVersion', 'uid'] as const)
      emptied = emptied.replace(`"${field}":${JSON.stringify(object[field])}`, `"${field}":""`);
    expect(emptied).not.toBe(object.json);
    const packedEmptied = PACKED_SESSIONS.retain({ ...object, json: emptied, raw: object.raw });
    expect(packedEmptied.json).toBe(emptied);
    expect(packed.bytes).toBe(packedEmptied.bytes);
    expect(packed.json).toBe(object.json);
  });

  it('round-trips identity fields it cannot pack short: a uid that is no UUID, a resourceVersion with $, a long name', () => {
    const raw = JSON.parse(sample) as { metadata: Record<string, unknown> };
    for (const metadata of [
      { uid: 'not-a-uuid', resourceVersion: '12$&34' },
      { uid: '$1', resourceVersion: '0123' },
      // Longer than one character can count: the uid's length takes three in the packed string.
      { uid: `u-${'é'.repeat(150)}-${'9'.repeat(200)}` },
      // Beyond one byte a character: held as text beside the packed string, which holds one-byte ones only.
      { uid: 'uid-日本-😀' },
      { name: `x${'y'.repeat(200)}`, resourceVersion: '99999999999999' },
    ]) {
      const object = session({ ...raw, metadata: { ...raw.metadata, ...metadata } });
      const packed = PACKED_SESSIONS.retain(object);
      expect(packed.json).toBe(object.json);
      for (const field of ['name', 'uid', 'resourceVersion'] as const)
        expect(packed[field]).toBe(object[field]);
    }
  });

  it('packs whole, and round-trips, a Session whose JSON holds an emptied field before its own', () => {
    const raw = JSON.parse(sample) as { metadata: Record<string, unknown> };
    // annotations come before metadata.name in the JSON: its `"name":""` is the first one.
    for (const annotations of [{ name: '' }, { uid: '', resourceVersion: '' }, { name: 'bench-1007' }]) {
      const object = session({ ...raw, metadata: { ...raw.metadata, annotations } });
      expect(object.json.indexOf('"name":')).toBeLessThan(object.json.indexOf('"namespace":'));
      const packed = PACKED_SESSIONS.retain(object);
      expect(packed.json).toBe(object.json);
      expect(packed.raw).toEqual(JSON.parse(object.json));
    }
  });
});
