import type { V1Deployment, V1Secret } from '@kubernetes/client-node';
import { ConfigError, isSessionActivityToken } from '@streamspace/shared';
import { describe, expect, it } from 'vitest';
import { ACTIVITY_AGENT_ANNOTATION, ACTIVITY_AGENT_CONTAINER } from './activity-agent.js';
import { reconcilerEnvSchema, type ReconcilerSettings, settingsFromEnv } from './reconciler-settings.js';
import { type ObservedSession, planSession } from './session-plan.js';
import type { StoredSession as Session, StoredTemplate as Template } from './stored-objects.js';

const KEY = 'a'.repeat(64);
const agent = {
  image: 'ghcr.io/streamspace/streamspace:0.1.0',
  url: 'http://streamspace-idle-reaper.streamspace:8083/activity',
  key: KEY,
  nodeArgs: ['--lite-mode'],
};
const base: ReconcilerSettings = {
  ingressDomain: 'desktops.example.com',
  ingressHostPattern: '{session}.{domain}',
  homeStorageSize: '10Gi',
  homeAccessMode: 'ReadWriteMany',
  startupDeadlineMs: 60_000,
};
const now = new Date('2026-01-01T12:00:00Z');

const session = {
  apiVersion: 'stream.streamspace.io/v1alpha1',
  kind: 'Session',
  metadata: { name: 'desk', namespace: 'team', uid: 'uid-1', generation: 1 },
  spec: { user: 'alice@example.com', template: 'firefox', state: 'running', persistentHome: false },
} as unknown as Session;

function template(spec: Record<string, unknown> = {}): Template {
  return {
    apiVersion: 'stream.streamspace.io/v1alpha1',
    kind: 'Template',
    metadata: { name: 'firefox', namespace: 'team', generation: 1 },
    spec: {
      displayName: 'Firefox',
      baseImage: 'lscr.io/linuxserver/firefox:latest',
      ports: [{ name: 'http', containerPort: 3000, protocol: 'TCP' }],
      vnc: { enabled: true, port: 3000, protocol: 'websocket', encryption: false },
      homePath: '/config',
      ...spec,
    },
  } as Template;
}

function plan(t: Template, settings: ReconcilerSettings = { ...base, activityAgent: agent }) {
  const observed: ObservedSession = { session, template: t, pods: [] };
  const result = planSession(observed, settings, now);
  const deployment = result.apply.find((o) => o.kind === 'Deployment') as V1Deployment;
  const secret = result.apply.find((o) => o.kind === 'Secret') as V1Secret | undefined;
  return { result, deployment, secret };
}

describe('the activity agent in a desktop pod', () => {
  it('runs beside a desktop with a VNC endpoint: small, non-root, read-only, with its own token', () => {
    const { result, deployment, secret } = plan(template());
    const pod = deployment.spec?.template;
    const container = pod?.spec?.containers.find((c) => c.name === ACTIVITY_AGENT_CONTAINER);
    expect(container).toMatchObject({
      image: agent.image,
      command: ['node', '--lite-mode', '/app/entrypoint.mjs'],
      args: ['activity-agent'],
      resources: { requests: { cpu: '5m', memory: '48Mi' }, limits: { cpu: '50m', memory: '64Mi' } },
      securityContext: {
        runAsNonRoot: true,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      },
    });
    expect(container?.env).toContainEqual({ name: 'DESKTOP_PORT', value: '3000' });
    expect(container?.env).toContainEqual({ name: 'ACTIVITY_URL', value: agent.url });
    // No key and no shared token in the pod: only the path of the Session's own token.
    expect(JSON.stringify(pod)).not.toContain(KEY);
    expect(pod?.spec?.automountServiceAccountToken).toBe(false);
    expect(pod?.metadata?.annotations?.[ACTIVITY_AGENT_ANNOTATION]).toContain('port 3000');
    expect(pod?.spec?.volumes).toContainEqual({
      name: 'activity-token',
      secret: { secretName: 'ss-desk-activity', optional: true },
    });
    // The Secret comes first, owned by the Session, with the token of this session only.
    expect(result.apply[0]).toBe(secret);
    expect(secret?.metadata?.ownerReferences?.[0]).toMatchObject({ uid: 'uid-1', controller: true });
    const token = Buffer.from(secret?.data?.token ?? '', 'base64').toString('utf8');
    expect(isSessionActivityToken(token, KEY, 'team', 'desk', 'uid-1')).toBe(true);
    expect(isSessionActivityToken(token, KEY, 'team', 'desk', 'uid-2')).toBe(false);
  });

  it('follows spec.activity.agent, and is off for templates without a VNC endpoint unless asked', () => {
    expect(plan(template({ activity: { agent: false } })).secret).toBeUndefined();
    const web = template({
      vnc: { enabled: false, port: 5900, protocol: 'rfb', encryption: false },
      ports: [{ name: 'web', containerPort: 8888, protocol: 'TCP' }],
    });
    expect(plan(web).secret).toBeUndefined();
    const asked = plan({ ...web, spec: { ...web.spec, activity: { agent: true } } });
    const container = asked.deployment.spec?.template.spec?.containers.find(
      (c) => c.name === ACTIVITY_AGENT_CONTAINER,
    );
    expect(container?.env).toContainEqual({ name: 'DESKTOP_PORT', value: '8888' });
  });

  it('is absent when the platform has no agent configured', () => {
    const { deployment, secret } = plan(template(), base);
    expect(deployment.spec?.template.spec?.containers.map((c) => c.name)).toEqual(['desktop']);
    expect(secret).toBeUndefined();
  });

  it('needs its image, the reaper URL and a long enough key together', () => {
    const env = (extra: Record<string, string>) =>
      reconcilerEnvSchema.parse({ ACTIVITY_AGENT_IMAGE: 'img:1', ...extra });
    expect(() => settingsFromEnv(env({}))).toThrow(ConfigError);
    expect(() => settingsFromEnv(env({}))).toThrow(/ACTIVITY_AGENT_URL, ACTIVITY_SESSION_KEY_FILE/);
    const full = env({ ACTIVITY_AGENT_URL: agent.url, ACTIVITY_SESSION_KEY_FILE: '/k' });
    expect(() => settingsFromEnv(full, 'short')).toThrow(/at least 32 characters/);
    expect(settingsFromEnv(full, KEY).activityAgent).toMatchObject({ image: 'img:1', url: agent.url });
  });
});
