import { describe, expect, it } from 'vitest';
import { applyResourceCeiling } from './resource-ceiling.js';

const ceiling = { requests: { cpu: '4', memory: '8Gi' }, limits: { cpu: '8', memory: '16Gi' } };

describe('applyResourceCeiling', () => {
  it('lets resources within the ceiling through, and sets the limits a Session leaves out', () => {
    expect(
      applyResourceCeiling({ requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '2Gi' } }, ceiling),
    ).toEqual({
      resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '2Gi', cpu: '8' } },
      problems: [],
    });
    expect(applyResourceCeiling({ requests: { cpu: '4', memory: '8Gi' } }, ceiling).problems).toEqual([]);
  });

  it('gives a Session that asks for nothing the ceiling as limits and explicit zero requests, not the ceiling as requests', () => {
    // Kubernetes copies a limit into a missing request: without the zeros every such desktop
    // would reserve 8 CPUs and 16Gi.
    expect(applyResourceCeiling({}, ceiling)).toEqual({
      resources: { requests: { cpu: '0', memory: '0' }, limits: { cpu: '8', memory: '16Gi' } },
      problems: [],
    });
    expect(applyResourceCeiling({ requests: { memory: '1Gi' } }, ceiling).resources).toEqual({
      requests: { memory: '1Gi', cpu: '0' },
      limits: { cpu: '8', memory: '16Gi' },
    });
    // A limit the Session sets keeps its request as Kubernetes defaults it (equal to the limit).
    expect(applyResourceCeiling({ limits: { cpu: '2', memory: '4Gi' } }, ceiling).resources).toEqual({
      limits: { cpu: '2', memory: '4Gi' },
    });
  });

  it('refuses a request or a limit above the ceiling, naming the value, the ceiling and the setting', () => {
    const { problems } = applyResourceCeiling(
      { requests: { cpu: '4001m', memory: '1Gi' }, limits: { memory: '17179869185' } },
      ceiling,
      (kind, name) => `the Session (${kind}.${name})`,
    );
    expect(problems).toEqual([
      'requests.cpu 4001m (from the Session (requests.cpu)) is above the ceiling 4 set by SESSION_MAX_REQUESTS (chart value sessions.limits.maxRequests)',
      'limits.memory 17179869185 (from the Session (limits.memory)) is above the ceiling 16Gi set by SESSION_MAX_LIMITS (chart value sessions.limits.maxLimits)',
    ]);
  });

  it('refuses a request above the limit the ceiling gives a Session that sets none', () => {
    const strict = { requests: {}, limits: { memory: '4Gi' } };
    expect(applyResourceCeiling({ requests: { memory: '6Gi' } }, strict).problems).toEqual([
      'requests.memory 6Gi (from the Session) is above the limit 4Gi it gets from SESSION_MAX_LIMITS (chart value sessions.limits.maxLimits), as it sets no memory limit',
    ]);
  });

  it('holds only the resources the ceiling names, and nothing without a ceiling', () => {
    const asked = { requests: { 'nvidia.com/gpu': '4' }, limits: { 'nvidia.com/gpu': '4' } };
    expect(applyResourceCeiling(asked, ceiling).problems).toEqual([]);
    expect(
      applyResourceCeiling(asked, { ...ceiling, limits: { 'nvidia.com/gpu': '1' } }).problems,
    ).toHaveLength(1);
    expect(applyResourceCeiling(asked, undefined)).toEqual({ resources: asked, problems: [] });
  });
});
