import { ConfigError, loadConfig } from '@streamspace/shared';
import { describe, expect, it } from 'vitest';
import { hostPatternProblem } from './host-pattern.js';
import { reconcilerEnvSchema, settingsFromEnv } from './reconciler-settings.js';

describe('hostPatternProblem', () => {
  it.each([
    '{session}.{namespace}.{domain}',
    '{namespace}.{session}.{domain}',
    '{session}.{namespace}.desktops.{domain}',
    '{session}.{namespace}.desktops.example.com',
  ])('accepts %s in any setup', (pattern) => {
    expect(hostPatternProblem(pattern, false)).toBeUndefined();
    expect(hostPatternProblem(pattern, true)).toBeUndefined();
  });

  it.each([
    [
      '{session}-{namespace}.{domain}',
      /\{session\} must be a whole DNS label.*a-b in namespace c and a in namespace b-c/,
    ],
    ['{session}.{namespace}-x.{domain}', /\{namespace\} must be a whole DNS label/],
    ['desk-{session}.{namespace}.{domain}', /\{session\} must be a whole DNS label/],
    ['{session}.{namespace}.{session}.{domain}', /\{session\} may appear only once/],
    ['{namespace}.{domain}', /must contain \{session\}/],
    ['{session}.{namespace}.{user}.{domain}', /unknown placeholder/],
    ['{session}.{namespace}..{domain}', /not a DNS label/],
    ['{session}.{namespace}.Desktops.{domain}', /"Desktops" is not a DNS label/],
    ['{session}.{namespace}.{domain}x', /\{domain\} must be a whole DNS label/],
  ])('refuses %s', (pattern, why) => {
    expect(hostPatternProblem(pattern, false)).toMatch(why);
    expect(hostPatternProblem(pattern, true)).toMatch(why);
  });

  it('allows a pattern without {namespace} only when exactly one namespace is served', () => {
    expect(hostPatternProblem('{session}.{domain}', false)).toMatch(
      /must contain \{namespace\}.*unless StreamSpace serves exactly one namespace/,
    );
    expect(hostPatternProblem('{session}.{domain}', true)).toBeUndefined();
  });
});

describe('reconciler settings from the environment', () => {
  const settings = (env: Record<string, string>) => settingsFromEnv(loadConfig(reconcilerEnvSchema, env));

  it('defaults to {session}.{namespace}.{domain}', () => {
    expect(settings({}).ingressHostPattern).toBe('{session}.{namespace}.{domain}');
  });

  it('refuses an ambiguous or namespace-less pattern at start, naming INGRESS_HOST_PATTERN', () => {
    const attempt = () => settings({ INGRESS_HOST_PATTERN: '{session}-{namespace}.{domain}' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(
      /INGRESS_HOST_PATTERN: \{session\} must be a whole DNS label.*\(got '\{session\}-\{namespace\}\.\{domain\}'\)/s,
    );
    expect(() => settings({ INGRESS_HOST_PATTERN: '{session}.{domain}' })).toThrow(
      /INGRESS_HOST_PATTERN: must contain \{namespace\}/,
    );
    expect(
      settings({ INGRESS_HOST_PATTERN: '{session}.{domain}', WATCH_NAMESPACE: 'desktops' })
        .ingressHostPattern,
    ).toBe('{session}.{domain}');
  });

  it('counts the namespaces served: two are not one', () => {
    expect(() =>
      settings({ INGRESS_HOST_PATTERN: '{session}.{domain}', WATCH_NAMESPACE: 'team-a,team-b' }),
    ).toThrow(/INGRESS_HOST_PATTERN: must contain \{namespace\}/);
  });

  it('carries the control plane’s namespace, and refuses one that is not a namespace name', () => {
    expect(settings({ CONTROL_PLANE_NAMESPACE: 'streamspace' }).controlPlaneNamespace).toBe('streamspace');
    expect(settings({}).controlPlaneNamespace).toBeUndefined();
    expect(() => settings({ CONTROL_PLANE_NAMESPACE: 'Stream_Space' })).toThrow(/CONTROL_PLANE_NAMESPACE/);
  });
});
