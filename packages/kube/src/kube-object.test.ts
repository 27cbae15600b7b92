import { describe, expect, it } from 'vitest';
import { trimObject } from '@streamspace/shared';
import { forgetParsed, parseKubeObject } from './kube-object.js';

const valid = {
  apiVersion: 'stream.streamspace.io/v1alpha1',
  kind: 'Session',
  metadata: {
    namespace: 'team-a',
    name: 's1',
    uid: 'u1',
    resourceVersion: '7',
    generation: 2,
    labels: { a: 'b', n: 3 },
  },
  spec: { template: 'firefox' },
};

describe('parseKubeObject', () => {
  it('reads the routing fields and keeps the raw object', () => {
    const parsed = parseKubeObject(valid);
    expect(parsed).toMatchObject({
      ok: true,
      object: {
        namespace: 'team-a',
        name: 's1',
        uid: 'u1',
        resourceVersion: '7',
        generation: 2,
        labels: { a: 'b' },
        json: JSON.stringify(valid),
        bytes: Buffer.byteLength(JSON.stringify(valid)),
      },
    });
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.object.raw).toEqual(valid);
  });

  it('lets go of the parsed object once told, and reads it again from its JSON', () => {
    const parsed = parseKubeObject(valid);
    if (!parsed.ok) throw new Error(parsed.reason);
    // Until the informer has handed the change on, reads get the object parsed from the watch.
    expect(parsed.object.raw).toBe(parsed.object.raw);
    forgetParsed(parsed.object);
    const again = parsed.object.raw;
    expect(again).toEqual(valid);
    // Nothing keeps it: each read parses the JSON anew.
    expect(parsed.object.raw).not.toBe(again);
    expect(Object.keys(parsed.object)).not.toContain('raw');
  });

  it.each([
    [null, 'not a JSON object'],
    ['text', 'not a JSON object'],
    [[], 'not a JSON object'],
    [{ kind: 'Session' }, 'metadata is missing'],
    [{ metadata: 'x' }, 'metadata is missing'],
    [{ metadata: { name: 's', uid: 'u', resourceVersion: '1' } }, 'metadata.namespace is missing or empty'],
    [{ metadata: { namespace: 'n', uid: 'u', resourceVersion: '1' } }, 'metadata.name is missing or empty'],
    [{ metadata: { namespace: 'n', name: 's', resourceVersion: '1' } }, 'metadata.uid is missing or empty'],
    [
      { metadata: { namespace: 'n', name: 's', uid: 'u', resourceVersion: '' } },
      'metadata.resourceVersion is missing or empty',
    ],
    [
      { metadata: { namespace: 'n', name: 's', uid: 'u', resourceVersion: '1', generation: -1 } },
      'metadata.generation is not a non-negative integer',
    ],
  ])('rejects %j: %s', (raw, reason) => {
    expect(parseKubeObject(raw)).toEqual({ ok: false, reason });
  });
});

describe('the kept object', () => {
  it('drops managedFields and leaves the rest (and the original) alone', () => {
    const raw = { ...valid, metadata: { ...valid.metadata, managedFields: [{ manager: 'kubectl' }] } };
    const parsed = parseKubeObject(raw);
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.object.raw.metadata).not.toHaveProperty('managedFields');
    expect(parsed.object.raw.metadata).toMatchObject({ name: 's1', labels: { a: 'b', n: 3 } });
    expect(parsed.object.raw.spec).toEqual(valid.spec);
    expect(raw.metadata.managedFields).toHaveLength(1);
  });
});

describe('the kept object, trimmed for its kind', () => {
  const big = 'x'.repeat(200 * 1024);
  const session = {
    ...valid,
    metadata: {
      ...valid.metadata,
      annotations: {
        'kubectl.kubernetes.io/last-applied-configuration': big,
        'example.com/notes': big,
        'stream.streamspace.io/state-changed-by': 'idle-reaper',
      },
      managedFields: [{ manager: 'kubectl', fieldsV1: { big } }],
    },
  };

  it('keeps only the annotations a component reads, and says how many bytes are held', () => {
    const parsed = parseKubeObject(session, (raw) => trimObject('session', raw, 64 * 1024));
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.object.raw.metadata).toMatchObject({
      annotations: { 'stream.streamspace.io/state-changed-by': 'idle-reaper' },
      labels: { a: 'b', n: 3 },
    });
    expect(parsed.object.bytes).toBe(Buffer.byteLength(JSON.stringify(parsed.object.raw)));
    expect(parsed.object.bytes).toBeLessThan(1024);
    expect(parsed.object.oversize).toBeUndefined();
  });

  it('keeps the labels the platform routes on when an object over the bound loses the others', () => {
    const labels: Record<string, string> = { 'stream.streamspace.io/session': 's1' };
    for (let i = 0; i < 3000; i++) labels[`example.com/label-${i}`] = 'v'.repeat(60);
    const parsed = parseKubeObject({ ...valid, metadata: { ...valid.metadata, labels } }, (raw) =>
      trimObject('pod', raw, 8 * 1024),
    );
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.object.labels).toEqual({ 'stream.streamspace.io/session': 's1' });
    expect(parsed.object.oversize).toMatchObject({ level: 'reduced' });
    expect(parsed.object.bytes).toBeLessThanOrEqual(8 * 1024);
  });
});
