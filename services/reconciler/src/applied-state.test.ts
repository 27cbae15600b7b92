import { describe, expect, it } from 'vitest';
import { coversDesired, replicasOnlyChange } from './applied-state.js';

describe('coversDesired', () => {
  const desired = {
    metadata: { name: 'ss-a', labels: { app: 'x' } },
    spec: {
      replicas: 1,
      template: {
        spec: { containers: [{ name: 'desktop', image: 'a:1', ports: [{ containerPort: 3000 }] }] },
      },
    },
  };
  const observed = {
    metadata: { name: 'ss-a', uid: 'u', labels: { app: 'x', extra: 'y' }, annotations: { z: '1' } },
    spec: {
      replicas: 1,
      revisionHistoryLimit: 10,
      template: {
        spec: {
          containers: [
            {
              name: 'desktop',
              image: 'a:1',
              imagePullPolicy: 'Always',
              ports: [{ containerPort: 3000, protocol: 'TCP' }],
            },
          ],
        },
      },
    },
    status: { readyReplicas: 1 },
  };

  it('accepts what the server stored plus its own defaults', () => {
    expect(coversDesired(desired, observed)).toBe(true);
  });

  it('sees a changed value, a missing field, or a list of another length', () => {
    expect(coversDesired(desired, { ...observed, spec: { ...observed.spec, replicas: 0 } })).toBe(false);
    expect(coversDesired(desired, { ...observed, metadata: { name: 'ss-a' } })).toBe(false);
    expect(coversDesired({ ports: [1, 2] }, { ports: [1] })).toBe(false);
    expect(coversDesired({ a: 1 }, undefined)).toBe(false);
  });

  it('lets an empty object be dropped by the server', () => {
    expect(coversDesired({ securityContext: { capabilities: {} } }, { securityContext: {} })).toBe(true);
  });

  it('lets the server omit empty strings and empty lists (an unchanged Deployment is recognised)', () => {
    const pod = {
      containers: [{ name: 'desktop', env: [{ name: 'A', value: '' }], volumeMounts: [] }],
      volumes: [],
    };
    expect(coversDesired(pod, { containers: [{ name: 'desktop', env: [{ name: 'A' }] }] })).toBe(true);
    expect(coversDesired(pod, { containers: [{ name: 'desktop', env: [{ name: 'A', value: 'x' }] }] })).toBe(
      false,
    );
    expect(coversDesired({ volumes: [] }, { volumes: [{ name: 'home' }] })).toBe(false);
  });
});

describe('replicasOnlyChange', () => {
  const deployment = (replicas: number, image = 'desk:1') => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'ss-a', namespace: 'n', annotations: { snapshot: '{}' } },
    spec: { replicas, template: { spec: { containers: [{ name: 'desktop', image }] } } },
  });
  const stored = (replicas: number, image = 'desk:1') => ({
    ...deployment(replicas, image),
    metadata: { ...deployment(replicas, image).metadata, resourceVersion: '9', uid: 'u' },
    spec: { ...deployment(replicas, image).spec, revisionHistoryLimit: 10 },
  });

  it('gives the replicas when they are all that differs (a hibernate, a wake)', () => {
    expect(replicasOnlyChange(deployment(0), stored(1))).toBe(0);
    expect(replicasOnlyChange(deployment(1), stored(0))).toBe(1);
  });

  it('is undefined when nothing differs, or something else does too, or nothing is stored', () => {
    expect(replicasOnlyChange(deployment(1), stored(1))).toBeUndefined();
    expect(replicasOnlyChange(deployment(1, 'desk:2'), stored(0))).toBeUndefined();
    expect(replicasOnlyChange(deployment(1), undefined)).toBeUndefined();
    expect(replicasOnlyChange(deployment(1), { metadata: {} })).toBeUndefined();
  });
});
