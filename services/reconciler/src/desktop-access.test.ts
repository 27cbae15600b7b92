import { loadConfig } from '@streamspace/shared';
import { describe, expect, it } from 'vitest';
import {
  authorizationUrl,
  type DesktopAuth,
  INGRESS_NGINX_URL_CHARACTERS,
  desktopAuthAnnotations,
  signinUrl,
  unauthorizableUser,
} from './desktop-access.js';
import {
  DEFAULT_ALLOWED_CAPABILITIES,
  type ReconcilerSettings,
  reconcilerEnvSchema,
  settingsFromEnv,
} from './reconciler-settings.js';
import { buildIngress, sessionUrl } from './session-children.js';
import { planSession } from './session-plan.js';
import type { StoredSession, StoredTemplate } from './stored-objects.js';
import { templateProblems } from './template-validation.js';

const auth: DesktopAuth = {
  url: 'http://oauth2-proxy.auth.svc/oauth2/auth',
  signinUrl: 'https://auth.example.com/oauth2/start',
  adminUsers: ['ops@example.com'],
  responseHeaders: ['X-Auth-Request-User', 'X-Auth-Request-Email', 'X-Forwarded-User', 'X-Forwarded-Email'],
  annotationValidation: false,
};

/** What oauth2-proxy's /oauth2/auth reads: every allowed_emails value, split at commas. */
const admitted = (url: string) =>
  new URL(url).searchParams.getAll('allowed_emails').flatMap((v) => v.split(','));

describe('desktop access annotations', () => {
  it('admit the owner and the admins, URL-encoded, and nobody the platform URL named', () => {
    const url = authorizationUrl(
      { ...auth, url: 'http://oauth2-proxy.auth.svc/oauth2/auth?allowed_emails=everyone@example.com&x=1' },
      'alice+desk@example.com',
    );
    expect(admitted(url)).toEqual(['alice+desk@example.com', 'ops@example.com']);
    expect(new URL(url).searchParams.get('x')).toBe('1');
    // '+' and '@' must survive as data, not become a space or a separator.
    expect(url).toContain('alice%2Bdesk%40example.com');
  });

  it('send a browser without a session to sign in and back to the desktop it asked for', () => {
    expect(signinUrl(auth, 'https://alice-firefox.team.example.com')).toBe(
      'https://auth.example.com/oauth2/start?rd=https://alice-firefox.team.example.com$escaped_request_uri',
    );
    expect(signinUrl({ ...auth, signinUrl: 'https://auth.example.com/start?a=b' }, 'https://d')).toBe(
      'https://auth.example.com/start?a=b&rd=https://d$escaped_request_uri',
    );
    expect(desktopAuthAnnotations(auth, 'alice@example.com', 'https://d')).toEqual({
      'nginx.ingress.kubernetes.io/auth-url': authorizationUrl(auth, 'alice@example.com'),
      'nginx.ingress.kubernetes.io/auth-signin':
        'https://auth.example.com/oauth2/start?rd=https://d$escaped_request_uri',
      'nginx.ingress.kubernetes.io/auth-response-headers':
        'X-Auth-Request-User,X-Auth-Request-Email,X-Forwarded-User,X-Forwarded-Email',
    });
  });

  it('refuse user names that oauth2-proxy would split or could never match', () => {
    expect(unauthorizableUser('alice@example.com')).toBeUndefined();
    expect(unauthorizableUser('mallory@example.com,alice@example.com')).toMatch(/contains a comma/);
    expect(unauthorizableUser(' alice@example.com')).toMatch(/spaces/);
  });

  it("refuse, under ingress-nginx's annotation validation, names it would not accept in an auth-url", () => {
    const validated = { ...auth, adminUsers: ['ops'], annotationValidation: true };
    expect(unauthorizableUser('alice', validated)).toBeUndefined();
    expect(unauthorizableUser('alice.smith-2', validated)).toBeUndefined();
    // Exactly the characters ingress-nginx's URLWithNginxVariableRegex accepts.
    expect(INGRESS_NGINX_URL_CHARACTERS.test(authorizationUrl(validated, 'alice.smith-2'))).toBe(true);
    expect(authorizationUrl(validated, 'alice')).toBe(
      'http://oauth2-proxy.auth.svc/oauth2/auth?allowed_emails=alice,ops',
    );
    for (const user of ['alice@example.com', 'al%40ice', 'alice+x', "o'neil"])
      expect(unauthorizableUser(user, validated)).toMatch(
        /--enable-annotation-validation off and set the chart value auth.annotationValidation=false/,
      );
    expect(
      unauthorizableUser('alice@example.com', { ...validated, annotationValidation: false }),
    ).toBeUndefined();
  });
});

describe('reconciler settings for desktop access', () => {
  const load = (env: Record<string, string>) => settingsFromEnv(loadConfig(reconcilerEnvSchema, env));

  it('turn auth on with AUTH_URL and AUTH_SIGNIN_URL, and refuse AUTH_URL alone with a message naming the variable', () => {
    const settings = load({
      AUTH_URL: auth.url,
      AUTH_SIGNIN_URL: auth.signinUrl,
      AUTH_ADMIN_USERS: 'ops@example.com, root@example.com',
      AUTH_ANNOTATION_VALIDATION: 'false',
    });
    expect(settings.desktopAuth).toEqual({ ...auth, adminUsers: ['ops@example.com', 'root@example.com'] });
    // With ingress-nginx's annotation validation (the default) admins named with '@' cannot be written.
    expect(() =>
      load({ AUTH_URL: auth.url, AUTH_SIGNIN_URL: auth.signinUrl, AUTH_ADMIN_USERS: 'ops@example.com' }),
    ).toThrow(/AUTH_ADMIN_USERS: ingress-nginx's annotation validation accepts only/);
    expect(
      load({ AUTH_URL: auth.url, AUTH_SIGNIN_URL: auth.signinUrl, AUTH_ADMIN_USERS: 'ops' }).desktopAuth
        ?.annotationValidation,
    ).toBe(true);
    expect(load({}).desktopAuth).toBeUndefined();
    expect(() => load({ AUTH_URL: auth.url })).toThrow(/AUTH_SIGNIN_URL: must be set with AUTH_URL/);
    expect(() => load({ AUTH_URL: 'oauth2-proxy/oauth2/auth', AUTH_SIGNIN_URL: auth.signinUrl })).toThrow(
      /AUTH_URL: must be an http\(s\) URL/,
    );
  });

  it('make URLs https with INGRESS_TLS, a TLS secret or a cluster issuer', () => {
    expect(load({}).ingressTls).toBeUndefined();
    expect(load({ INGRESS_TLS: 'true' }).ingressTls).toBe(true);
    expect(load({ INGRESS_CLUSTER_ISSUER: 'letsencrypt' })).toMatchObject({
      ingressTls: true,
      ingressClusterIssuer: 'letsencrypt',
    });
  });

  it('fence desktops by default, take the peers as JSON, and explain bad JSON', () => {
    expect(load({}).desktopIngressFrom?.[0]?.namespaceSelector?.matchLabels).toEqual({
      'kubernetes.io/metadata.name': 'ingress-nginx',
    });
    expect(load({ DESKTOP_NETWORK_POLICY: 'false' }).desktopIngressFrom).toBeUndefined();
    expect(load({ DESKTOP_INGRESS_FROM: '[{"podSelector":{}}]' }).desktopIngressFrom).toEqual([
      { podSelector: {} },
    ]);
    expect(() => load({ DESKTOP_INGRESS_FROM: '{"podSelector":{}}' })).toThrow(
      /DESKTOP_INGRESS_FROM: must be a non-empty JSON array of NetworkPolicy peers/,
    );
  });

  it("allow the catalog's capabilities by default, and none with 'none'", () => {
    expect(load({}).allowedCapabilities).toEqual(DEFAULT_ALLOWED_CAPABILITIES);
    expect(load({ DESKTOP_ALLOWED_CAPABILITIES: 'none' }).allowedCapabilities).toEqual([]);
    expect(load({ DESKTOP_ALLOWED_CAPABILITIES: 'SYS_ADMIN,CHOWN' }).allowedCapabilities).toEqual([
      'SYS_ADMIN',
      'CHOWN',
    ]);
    expect(() => load({ DESKTOP_ALLOWED_CAPABILITIES: 'cap_sys_admin' })).toThrow(
      /DESKTOP_ALLOWED_CAPABILITIES/,
    );
  });
});

/** One Session, its Template and plain settings, for the tests of whole objects below. */
const session = {
  apiVersion: 'stream.streamspace.io/v1alpha1',
  kind: 'Session',
  metadata: { name: 'desk', namespace: 'team', uid: 'u1' },
  spec: { user: 'alice@example.com', template: 'browser', state: 'running' },
} as StoredSession;
const template = {
  apiVersion: 'stream.streamspace.io/v1alpha1',
  kind: 'Template',
  metadata: { name: 'browser', namespace: 'team' },
  spec: {
    displayName: 'B',
    baseImage: 'x',
    vnc: { enabled: true, port: 3000, protocol: 'websocket', encryption: false },
  },
} as StoredTemplate;
const base: ReconcilerSettings = {
  ingressDomain: 'example.com',
  ingressHostPattern: '{session}.{domain}',
  homeStorageSize: '1Gi',
  homeAccessMode: 'ReadWriteMany',
  startupDeadlineMs: 1,
};

describe('template capabilities against the allow-list', () => {
  const withCapabilities = (capabilities: string[]) =>
    ({ ...template, spec: { ...template.spec, capabilities } }) as StoredTemplate;

  it('names each capability beyond the list and the setting that would allow it', () => {
    expect(templateProblems(withCapabilities(['CHOWN', 'SETUID']), DEFAULT_ALLOWED_CAPABILITIES)).toEqual([]);
    const problems = templateProblems(
      withCapabilities(['SYS_ADMIN', 'CHOWN', 'NET_ADMIN']),
      DEFAULT_ALLOWED_CAPABILITIES,
    );
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(
      /^spec\.capabilities: SYS_ADMIN is not allowed on this platform \(allowed: CHOWN, /,
    );
    expect(problems[0]).toContain('desktops.allowedCapabilities (DESKTOP_ALLOWED_CAPABILITIES');
    expect(problems[1]).toMatch(/NET_ADMIN is not allowed/);
    expect(templateProblems(withCapabilities(['CHOWN']), [])[0]).toMatch(/\(allowed: none\)/);
  });
});

describe('TLS of a desktop Ingress', () => {
  it('is plain HTTP only when nothing asks for TLS', () => {
    expect(buildIngress(session, template, base).spec?.tls).toBeUndefined();
    expect(sessionUrl(session, base)).toBe('http://desk.example.com/');
  });

  it("uses the controller's default certificate, a wildcard Secret, or a cert-manager certificate of its own", () => {
    const tls = (settings: Partial<ReconcilerSettings>) => {
      const ingress = buildIngress(session, template, { ...base, ...settings });
      return {
        tls: ingress.spec?.tls,
        issuer: ingress.metadata?.annotations?.['cert-manager.io/cluster-issuer'],
      };
    };
    expect(tls({ ingressTls: true })).toEqual({ tls: [{ hosts: ['desk.example.com'] }], issuer: undefined });
    expect(tls({ ingressTls: true, ingressTlsSecret: 'wildcard' })).toEqual({
      tls: [{ hosts: ['desk.example.com'], secretName: 'wildcard' }],
      issuer: undefined,
    });
    expect(tls({ ingressTls: true, ingressClusterIssuer: 'letsencrypt' })).toEqual({
      tls: [{ hosts: ['desk.example.com'], secretName: 'ss-desk-tls' }],
      issuer: 'letsencrypt',
    });
    expect(sessionUrl(session, { ...base, ingressTls: true })).toBe('https://desk.example.com/');
  });
});

describe('a desktop whose user cannot be guarded', () => {
  it('loses an Ingress written before sign-in was on, and gets no new one', () => {
    const running = {
      ...session,
      spec: { ...session.spec, user: 'alice@example.com' },
      status: { phase: 'Running' },
    } as StoredSession;
    const open = buildIngress(running, template, base);
    const plan = planSession(
      { session: running, template, ingress: open, pods: [] },
      { ...base, desktopAuth: { ...auth, adminUsers: [], annotationValidation: true } },
      new Date('2026-01-01T00:00:00Z'),
    );
    expect(plan.remove).toEqual([
      { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', name: 'ss-desk', namespace: 'team' },
    ]);
    expect(plan.apply.some((o) => o.kind === 'Ingress')).toBe(false);
    expect(plan.status.url).toBeUndefined();
    expect(plan.refused?.reason).toBe('user_not_authorizable');
  });
});
