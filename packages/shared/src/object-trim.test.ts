import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ANNOTATIONS, LABELS } from './labels.js';
import { KEPT_ANNOTATIONS, trimObject } from './object-trim.js';

const KiB = 1024;
const bytesOf = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

function session(annotations: Record<string, string>, labels: Record<string, string> = {}) {
  return {
    apiVersion: 'stream.streamspace.io/v1alpha1',
    kind: 'Session',
    metadata: {
      name: 'desk',
      namespace: 'team',
      uid: 'u-1',
      resourceVersion: '42',
      generation: 3,
      creationTimestamp: '2026-01-01T00:00:00Z',
      labels,
      annotations,
      finalizers: ['example.com/keep'],
      managedFields: [{ manager: 'kubectl', operation: 'Apply', fieldsV1: { 'f:spec': {} } }],
    },
    spec: { user: 'alice@example.com', template: 'firefox', state: 'running' },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

describe('trimObject', () => {
  it('drops managedFields, last-applied-configuration and unread annotations, and keeps what components read', () => {
    const raw = session({
      'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(200 * KiB),
      'example.com/anything': 'y'.repeat(200 * KiB),
      [ANNOTATIONS.stateChangedBy]: 'idle-reaper',
      [ANNOTATIONS.stateChangeReason]: 'Idle',
      [ANNOTATIONS.reaperDisabled]: 'true',
    });
    const result = trimObject('session', raw);
    expect(result.level).toBe('trimmed');
    expect(result.object.metadata).toEqual({
      name: 'desk',
      namespace: 'team',
      uid: 'u-1',
      resourceVersion: '42',
      generation: 3,
      creationTimestamp: '2026-01-01T00:00:00Z',
      labels: {},
      finalizers: ['example.com/keep'],
      annotations: {
        [ANNOTATIONS.stateChangedBy]: 'idle-reaper',
        [ANNOTATIONS.stateChangeReason]: 'Idle',
        [ANNOTATIONS.reaperDisabled]: 'true',
      },
    });
    expect(result.object.spec).toBe(raw.spec);
    expect(result.object.status).toBe(raw.status);
    expect(result.bytes).toBe(bytesOf(result.object));
    // The input is left alone (the caller may still hold it).
    expect(raw.metadata.managedFields).toHaveLength(1);
    expect(Object.keys(raw.metadata.annotations)).toHaveLength(5);
  });

  it('keeps the reconciler’s pod template snapshot on a Deployment but not on a Session', () => {
    const annotations = { [ANNOTATIONS.podTemplate]: '{"spec":{}}', [ANNOTATIONS.user]: 'alice' };
    expect(trimObject('deployment', session(annotations)).object.metadata).toMatchObject({ annotations });
    expect(trimObject('session', session(annotations)).object.metadata).not.toHaveProperty('annotations');
    expect(KEPT_ANNOTATIONS.template).toEqual([]);
  });

  it('drops a Deployment’s status, which nobody reads, so a status rewrite leaves the kept object as it was', () => {
    const deployment = (status: Record<string, unknown>, annotations: Record<string, string> = {}) => ({
      ...session(annotations),
      kind: 'Deployment',
      spec: { replicas: 1 },
      status,
    });
    const first = trimObject('deployment', deployment({ replicas: 1, readyReplicas: 0 }));
    const second = trimObject('deployment', deployment({ replicas: 1, readyReplicas: 1 }));
    expect(first.object).not.toHaveProperty('status');
    expect(first.object.spec).toEqual({ replicas: 1 });
    expect(second.json).toBe(first.json);
    // Over the bound too: the reduced level keeps spec, not the unread status.
    const big = trimObject(
      'deployment',
      deployment({ message: 'm'.repeat(4 * KiB) }, { [ANNOTATIONS.podTemplate]: 'x'.repeat(4 * KiB) }),
      2 * KiB,
    );
    expect(big.level).toBe('reduced');
    expect(big.object).not.toHaveProperty('status');
    // Every other kind keeps its status (a Pod's is what its Session's phase is made of).
    expect(trimObject('pod', deployment({ phase: 'Running' })).object.status).toEqual({ phase: 'Running' });
  });

  it('cuts a kept annotation that is too large down to spec and status, keeping the platform’s labels', () => {
    const raw = session(
      { [ANNOTATIONS.stateChangeReason]: 'z'.repeat(100 * KiB) },
      { [LABELS.session]: 'desk', team: 'qa' },
    );
    const result = trimObject('session', raw, 16 * KiB);
    expect(result.level).toBe('reduced');
    expect(result.oversizeBytes).toBeGreaterThan(100 * KiB);
    expect(result.object.metadata).toEqual({
      name: 'desk',
      namespace: 'team',
      uid: 'u-1',
      resourceVersion: '42',
      generation: 3,
      creationTimestamp: '2026-01-01T00:00:00Z',
      labels: { [LABELS.session]: 'desk' },
    });
    expect(result.object.spec).toEqual(raw.spec);
    expect(result.bytes).toBeLessThanOrEqual(16 * KiB);
  });

  it('keeps only the identity when even spec and status are over the bound', () => {
    const raw = { ...session({}), status: { message: 'm'.repeat(20 * KiB) } };
    const result = trimObject('pod', raw, 8 * KiB);
    expect(result.level).toBe('identity');
    expect(result.object).toEqual({
      apiVersion: raw.apiVersion,
      kind: 'Session',
      metadata: {
        name: 'desk',
        namespace: 'team',
        uid: 'u-1',
        resourceVersion: '42',
        generation: 3,
        creationTimestamp: '2026-01-01T00:00:00Z',
      },
    });
  });

  it('never returns more than the bound, whatever the annotations, labels and status', () => {
    const text = fc.string({ maxLength: 40 });
    fc.assert(
      fc.property(
        fc.dictionary(text, fc.string({ maxLength: 30_000 }), { maxKeys: 8 }),
        fc.dictionary(text, fc.string({ maxLength: 63 }), { maxKeys: 200 }),
        fc.string({ maxLength: 20_000 }),
        fc.constantFrom('session', 'template', 'deployment', 'pod' as const),
        fc.integer({ min: 4 * KiB, max: 64 * KiB }),
        (annotations, labels, message, kind, maxBytes) => {
          const raw = { ...session(annotations, labels), status: { message } };
          const result = trimObject(kind, raw, maxBytes);
          expect(result.bytes).toBe(bytesOf(result.object));
          // The JSON kept is the object's, whichever level it was cut to.
          expect(JSON.parse(result.json)).toEqual(result.object);
          expect(result.bytes).toBeLessThanOrEqual(maxBytes);
          expect(result.object.metadata).toMatchObject({ name: 'desk', uid: 'u-1', resourceVersion: '42' });
          if (result.level === 'trimmed') {
            const kept =
              (result.object.metadata as { annotations?: Record<string, string> }).annotations ?? {};
            for (const key of Object.keys(kept)) expect(KEPT_ANNOTATIONS[kind]).toContain(key);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
