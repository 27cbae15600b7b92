import type {
  KubernetesObject,
  V1Deployment,
  V1Ingress,
  V1NetworkPolicy,
  V1PersistentVolumeClaim,
  V1Service,
} from '@kubernetes/client-node';
import {
  homeClaimName,
  isDns1123Label,
  QUANTITY_PATTERN,
  validateSession,
  validateTemplate,
} from '@streamspace/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { INGRESS_NGINX_URL_CHARACTERS, unauthorizableUser } from './desktop-access.js';
import { DEFAULT_DESKTOP_INGRESS_FROM, type ReconcilerSettings } from './reconciler-settings.js';
import { type ObservedSession, planSession } from './session-plan.js';
import type { StoredSession, StoredTemplate } from './stored-objects.js';

/**
 * Properties of the planning core over generated, schema-valid Session/Template pairs (the
 * existing properties in session-plan.test.ts vary only the Session's name, user and state over a
 * fixed Template). Every generated pair is checked against the shared zod schemas first, so the
 * properties speak about exactly the inputs the API server can hold.
 */

const SEED = Number(process.env.FC_SEED ?? 20261126);
const CAPABILITIES = ['SYS_ADMIN', 'NET_ADMIN', 'SYS_PTRACE', 'NET_RAW', 'CHOWN', 'SETUID'];
const ADMINS = ['root@example.com', 'ops@example.com'];
/** As the chart deploys it: HTTPS, oauth2-proxy in front, a NetworkPolicy per desktop. */
const settings: ReconcilerSettings = {
  ingressDomain: 'desktops.example.com',
  ingressHostPattern: '{session}.{domain}',
  homeStorageSize: '10Gi',
  homeAccessMode: 'ReadWriteMany',
  startupDeadlineMs: 60_000,
  ingressTls: true,
  desktopAuth: {
    url: 'http://oauth2-proxy.auth.svc/oauth2/auth',
    signinUrl: 'https://auth.desktops.example.com/oauth2/start',
    adminUsers: ADMINS,
    responseHeaders: ['X-Auth-Request-User', 'X-Auth-Request-Email'],
    annotationValidation: false,
  },
  desktopIngressFrom: DEFAULT_DESKTOP_INGRESS_FROM,
  allowedCapabilities: CAPABILITIES,
};
const now = new Date('2026-01-01T12:00:00Z');

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUANTITY = new RegExp(QUANTITY_PATTERN);

const quantity = fc.oneof(
  fc.constantFrom('100m', '250m', '500m', '1', '2', '1.5', '512Mi', '1Gi', '2Gi', '4G', '1e3'),
  fc.integer({ min: 1, max: 64 }).map((n) => `${n}Gi`),
  fc.integer({ min: 1, max: 4000 }).map((n) => `${n}m`),
);
const resources = fc.option(
  fc.record(
    {
      requests: fc.record({ cpu: quantity }, { requiredKeys: [] }),
      limits: fc.record({ memory: quantity }, { requiredKeys: [] }),
    },
    { requiredKeys: [] },
  ),
  { nil: undefined },
);
const portName = fc.stringMatching(/^[a-z](-?[a-z0-9]){0,8}$/).filter((s) => s.length <= 15);
const capability = fc.constantFrom(...CAPABILITIES);

const templateArb = fc
  .record({
    ports: fc.uniqueArray(fc.record({ name: portName, containerPort: fc.integer({ min: 1, max: 65535 }) }), {
      minLength: 0,
      maxLength: 4,
      selector: (p) => p.containerPort,
    }),
    vncPort: fc.integer({ min: 1, max: 65535 }),
    vncEnabled: fc.boolean(),
    capabilities: fc.uniqueArray(capability, { maxLength: 3 }),
    env: fc.uniqueArray(
      fc.record({ name: fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,10}$/), value: fc.string({ maxLength: 20 }) }),
      {
        maxLength: 3,
        selector: (e) => e.name,
      },
    ),
    mounts: fc.uniqueArray(
      fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/).filter((n) => n !== 'home' && n !== 'dshm'),
      {
        maxLength: 2,
      },
    ),
    shmSize: fc.option(fc.constantFrom('64Mi', '1Gi', '2Gi'), { nil: undefined }),
    defaultResources: resources,
    name: fc.stringMatching(/^[a-z]([-a-z0-9]{0,20}[a-z0-9])?$/),
  })
  .map((t): StoredTemplate => {
    // Keep the ports unique by name too, and make the VNC port one of them (as the CRD requires).
    const byName = new Map<string, { name: string; containerPort: number }>();
    for (const p of t.ports) if (!byName.has(p.name)) byName.set(p.name, p);
    const ports = [...byName.values()].map((p) => ({ ...p, protocol: 'TCP' as const }));
    const vncPort = ports.length > 0 ? (ports[0]?.containerPort ?? t.vncPort) : t.vncPort;
    return {
      apiVersion: 'stream.streamspace.io/v1alpha1',
      kind: 'Template',
      metadata: { name: t.name, namespace: 'team', generation: 1 },
      spec: {
        displayName: `Desktop ${t.name}`,
        baseImage: 'lscr.io/linuxserver/firefox:latest',
        ports,
        vnc: {
          enabled: t.vncEnabled || ports.length === 0,
          port: vncPort,
          protocol: 'websocket',
          encryption: false,
        },
        capabilities: t.capabilities,
        env: t.env,
        volumeMounts: t.mounts.map((m) => ({ name: m, mountPath: `/scratch/${m}` })),
        homePath: '/config',
        ...(t.shmSize ? { shmSize: t.shmSize } : {}),
        ...(t.defaultResources ? { defaultResources: t.defaultResources } : {}),
      },
    } as StoredTemplate;
  });

const sessionArb = fc
  .record({
    name: fc.stringMatching(/^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$/),
    user: fc.oneof(
      fc.string({ minLength: 1, maxLength: 120 }),
      fc.emailAddress(),
      fc.stringMatching(/^[a-z][a-z0-9._-]{0,20}$/),
    ),
    state: fc.constantFrom('running', 'hibernated', 'terminated'),
    persistentHome: fc.boolean(),
    resources,
  })
  .map(
    (s) =>
      ({
        apiVersion: 'stream.streamspace.io/v1alpha1',
        kind: 'Session',
        metadata: { name: s.name, namespace: 'team', uid: `uid-${s.name}`, generation: 1 },
        spec: {
          user: s.user,
          template: 'x',
          state: s.state,
          persistentHome: s.persistentHome,
          idleTimeout: '30m',
          maxSessionDuration: '8h',
          ...(s.resources ? { resources: s.resources } : {}),
        },
      }) as StoredSession,
  );

/** A pair the shared schemas accept (the Session names its Template). */
const pairArb = fc
  .tuple(sessionArb, templateArb)
  .map(([session, template]) => {
    session.spec.template = template.metadata.name;
    return { session, template };
  })
  .filter(({ session, template }) => validateSession(session).ok && validateTemplate(template).ok);

function expectLabels(labels: Record<string, string> | undefined, where: string): void {
  for (const [key, value] of Object.entries(labels ?? {})) {
    const name = key.includes('/') ? key.slice(key.indexOf('/') + 1) : key;
    const prefix = key.includes('/') ? key.slice(0, key.indexOf('/')) : undefined;
    expect(name.length, `${where}: label key ${key}`).toBeLessThanOrEqual(63);
    expect(name, `${where}: label key ${key}`).toMatch(LABEL_NAME);
    if (prefix !== undefined) expect(prefix, `${where}: label prefix ${key}`).toMatch(DNS_SUBDOMAIN);
    expect(value.length, `${where}: label ${key}=${value}`).toBeLessThanOrEqual(63);
    expect(value, `${where}: label ${key}=${value}`).toMatch(LABEL_VALUE);
  }
}

function expectQuantities(list: Record<string, unknown> | undefined, where: string): void {
  for (const [key, value] of Object.entries(list ?? {}))
    expect(String(value), `${where}.${key}`).toMatch(QUANTITY);
}

function expectPort(port: unknown, where: string): void {
  expect(Number.isInteger(port), `${where}: ${String(port)}`).toBe(true);
  expect(port as number, where).toBeGreaterThanOrEqual(1);
  expect(port as number, where).toBeLessThanOrEqual(65535);
}

/** The checks a Kubernetes API server would make on names, labels, ports and quantities. */
function expectValidObject(object: KubernetesObject): void {
  const where = `${object.kind}/${object.metadata?.name}`;
  const name = object.metadata?.name as string;
  expect(isDns1123Label(name), `${where}: name`).toBe(true);
  expect(object.metadata?.namespace).toBe('team');
  expectLabels(object.metadata?.labels, where);
  switch (object.kind) {
    case 'Deployment': {
      const deployment = object as V1Deployment;
      expectLabels(deployment.spec?.selector.matchLabels, `${where} selector`);
      expectLabels(deployment.spec?.template.metadata?.labels, `${where} pod`);
      for (const [k, v] of Object.entries(deployment.spec?.selector.matchLabels ?? {}))
        expect(deployment.spec?.template.metadata?.labels?.[k], `${where}: selector matches pods`).toBe(v);
      const pod = deployment.spec?.template.spec;
      for (const container of pod?.containers ?? []) {
        const names = new Set<string>();
        for (const port of container.ports ?? []) {
          expectPort(port.containerPort, `${where} containerPort`);
          if (port.name) {
            expect(port.name.length).toBeLessThanOrEqual(15);
            expect(names.has(port.name), `${where}: duplicate port name ${port.name}`).toBe(false);
            names.add(port.name);
          }
        }
        expectQuantities(container.resources?.requests, `${where} requests`);
        expectQuantities(container.resources?.limits, `${where} limits`);
        for (const mount of container.volumeMounts ?? [])
          expect(
            pod?.volumes?.some((v) => v.name === mount.name),
            `${where}: mount ${mount.name} has a volume`,
          ).toBe(true);
      }
      const volumeNames = (pod?.volumes ?? []).map((v) => v.name);
      expect(new Set(volumeNames).size, `${where}: unique volume names`).toBe(volumeNames.length);
      for (const volume of pod?.volumes ?? []) {
        expect(isDns1123Label(volume.name)).toBe(true);
        if (volume.emptyDir?.sizeLimit !== undefined)
          expect(String(volume.emptyDir.sizeLimit)).toMatch(QUANTITY);
      }
      break;
    }
    case 'Service': {
      const service = object as V1Service;
      expect(service.spec?.ports?.length ?? 0).toBeGreaterThan(0);
      for (const port of service.spec?.ports ?? []) {
        expectPort(port.port, `${where} port`);
        if (typeof port.targetPort === 'number') expectPort(port.targetPort, `${where} targetPort`);
      }
      expectLabels(service.spec?.selector, `${where} selector`);
      break;
    }
    case 'Ingress': {
      const ingress = object as V1Ingress;
      for (const rule of ingress.spec?.rules ?? []) {
        expect(rule.host ?? '', `${where}: host`).toMatch(DNS_SUBDOMAIN);
        for (const path of rule.http?.paths ?? []) {
          const port = path.backend.service?.port;
          if (port?.number !== undefined) expectPort(port.number, `${where} backend port`);
          expect(isDns1123Label(path.backend.service?.name ?? '')).toBe(true);
        }
      }
      break;
    }
    case 'NetworkPolicy': {
      const policy = object as V1NetworkPolicy;
      expectLabels(policy.spec?.podSelector?.matchLabels, `${where} podSelector`);
      expect(policy.spec?.policyTypes).toEqual(['Ingress']);
      for (const rule of policy.spec?.ingress ?? [])
        for (const port of rule.ports ?? []) expectPort(port.port, `${where} port`);
      break;
    }
    case 'PersistentVolumeClaim': {
      const claim = object as V1PersistentVolumeClaim;
      expectQuantities(claim.spec?.resources?.requests, `${where} requests`);
      break;
    }
    default:
      throw new Error(`unexpected kind planned: ${object.kind}`);
  }
}

const runs = { numRuns: 150, seed: SEED };

// Hundreds of generated plans per test: CPU-bound, and the first also compiles the planner. On a
// busy 2-core machine that passed 5 s (2026-12-01), a slow machine rather than a wrong plan.
describe('planSession: properties over generated Session/Template pairs', { timeout: 60_000 }, () => {
  it('plans valid Kubernetes objects (names, labels, ports, quantities), deterministically', () => {
    console.log(`session-plan properties: seed ${SEED}, ${runs.numRuns} runs per property`);
    fc.assert(
      fc.property(pairArb, ({ session, template }) => {
        const input: ObservedSession = { session, template, pods: [] };
        const plan = planSession(input, settings, now);
        expect(JSON.stringify(planSession(structuredClone(input), settings, now))).toBe(JSON.stringify(plan));
        if (session.spec.state === 'running' && !unauthorizableUser(session.spec.user)) {
          expect(plan.apply.map((o) => o.kind).sort()).toEqual(
            session.spec.persistentHome
              ? ['Deployment', 'Ingress', 'NetworkPolicy', 'PersistentVolumeClaim', 'Service']
              : ['Deployment', 'Ingress', 'NetworkPolicy', 'Service'],
          );
        }
        for (const object of plan.apply) expectValidObject(object);
      }),
      runs,
    );
  });

  it('planning again on the applied result is a no-op', () => {
    fc.assert(
      fc.property(pairArb, ({ session, template }) => {
        const first = planSession({ session, template, pods: [] }, settings, now);
        const of = (kind: string) => first.apply.find((o) => o.kind === kind);
        // The API server now holds what was applied, and the status the plan wrote.
        const applied: ObservedSession = {
          session: { ...structuredClone(session), status: first.status } as StoredSession,
          template,
          pods: [],
          ...(of('Deployment') ? { deployment: structuredClone(of('Deployment')) as V1Deployment } : {}),
          ...(of('Service') ? { service: structuredClone(of('Service')) as V1Service } : {}),
          ...(of('Ingress') ? { ingress: structuredClone(of('Ingress')) as V1Ingress } : {}),
          ...(of('NetworkPolicy')
            ? { networkPolicy: structuredClone(of('NetworkPolicy')) as V1NetworkPolicy }
            : {}),
          ...(of('PersistentVolumeClaim')
            ? { homeClaim: structuredClone(of('PersistentVolumeClaim')) as V1PersistentVolumeClaim }
            : {}),
        };
        const second = planSession(applied, settings, now);
        // Nothing new to create: the same objects (the home claim is created once, then left alone).
        expect(second.apply.map((o) => JSON.stringify(o))).toEqual(
          first.apply.filter((o) => o.kind !== 'PersistentVolumeClaim').map((o) => JSON.stringify(o)),
        );
        expect(second.status).toEqual(first.status);
        // No event is told twice.
        expect(second.events).toEqual([]);
        const third = planSession(
          { ...applied, session: { ...applied.session, status: second.status } },
          settings,
          now,
        );
        expect(JSON.stringify(third)).toBe(JSON.stringify(second));
      }),
      runs,
    );
  });

  it("drops every capability but the Template's, runs under seccomp RuntimeDefault, never escalates, and mounts only the user's own home", () => {
    fc.assert(
      fc.property(pairArb, ({ session, template }) => {
        fc.pre(session.spec.state === 'running' && !unauthorizableUser(session.spec.user));
        const plan = planSession({ session, template, pods: [] }, settings, now);
        const deployment = plan.apply.find((o) => o.kind === 'Deployment') as V1Deployment;
        const pod = deployment.spec?.template.spec;
        expect(pod?.automountServiceAccountToken).toBe(false);
        expect(pod?.hostNetwork ?? false).toBe(false);
        expect(pod?.hostPID ?? false).toBe(false);
        for (const container of pod?.containers ?? []) {
          const security = container.securityContext;
          expect(security?.allowPrivilegeEscalation).toBe(false);
          expect(security?.privileged ?? false).toBe(false);
          expect(security?.capabilities?.drop).toEqual(['ALL']);
          expect([...(security?.capabilities?.add ?? [])].sort()).toEqual(
            [...(template.spec.capabilities ?? [])].sort(),
          );
        }
        expect(pod?.securityContext?.seccompProfile).toEqual({ type: 'RuntimeDefault' });
        const claims = (pod?.volumes ?? []).filter((v) => v.persistentVolumeClaim);
        const hostPaths = (pod?.volumes ?? []).filter((v) => v.hostPath);
        expect(hostPaths).toEqual([]);
        if (session.spec.persistentHome) {
          expect(claims.map((v) => v.persistentVolumeClaim?.claimName)).toEqual([
            homeClaimName(session.spec.user),
          ]);
          const claim = plan.apply.find((o) => o.kind === 'PersistentVolumeClaim');
          expect(claim?.metadata?.name).toBe(homeClaimName(session.spec.user));
        } else {
          expect(claims).toEqual([]);
        }
      }),
      runs,
    );
  });

  it('builds a desktop only from a Template whose capabilities are all on the allow-list, and says which is not', () => {
    fc.assert(
      fc.property(pairArb, fc.subarray(CAPABILITIES), ({ session, template }, allowed) => {
        fc.pre(session.spec.state === 'running' && !unauthorizableUser(session.spec.user));
        const plan = planSession(
          { session, template, pods: [] },
          { ...settings, allowedCapabilities: allowed },
          now,
        );
        const refused = (template.spec.capabilities ?? []).filter((c) => !allowed.includes(c));
        const deployment = plan.apply.find((o) => o.kind === 'Deployment');
        const resolved = plan.status.conditions.find((c) => c.type === 'TemplateResolved');
        if (refused.length === 0) {
          expect(deployment).toBeDefined();
          expect(resolved?.status).toBe('True');
        } else {
          expect(plan.apply).toEqual([]);
          expect(resolved?.reason).toBe('TemplateInvalid');
          for (const capability of refused)
            expect(resolved?.message).toContain(`${capability} is not allowed`);
          expect(resolved?.message).toContain('desktops.allowedCapabilities');
        }
      }),
      runs,
    );
  });

  it("puts sign-in in front of every desktop and admits exactly the Session's user and the named admins", () => {
    fc.assert(
      fc.property(pairArb, ({ session, template }) => {
        fc.pre(session.spec.state !== 'terminated');
        const plan = planSession({ session, template, pods: [] }, settings, now);
        const ingress = plan.apply.find((o) => o.kind === 'Ingress') as V1Ingress | undefined;
        if (unauthorizableUser(session.spec.user)) {
          // A name oauth2-proxy would split is never exposed at all.
          expect(ingress).toBeUndefined();
          expect(plan.apply.find((o) => o.kind === 'Deployment')).toBeUndefined();
          return;
        }
        const annotations = ingress?.metadata?.annotations ?? {};
        const host = ingress?.spec?.rules?.[0]?.host as string;
        const authUrl = new URL(annotations['nginx.ingress.kubernetes.io/auth-url'] as string);
        expect(`${authUrl.origin}${authUrl.pathname}`).toBe('http://oauth2-proxy.auth.svc/oauth2/auth');
        // As oauth2-proxy reads it: every allowed_emails value, split at commas.
        const admitted = authUrl.searchParams.getAll('allowed_emails').flatMap((v) => v.split(','));
        expect(admitted).toEqual([session.spec.user, ...ADMINS]);
        expect(annotations['nginx.ingress.kubernetes.io/auth-signin']).toBe(
          `https://auth.desktops.example.com/oauth2/start?rd=https://${host}$escaped_request_uri`,
        );
        expect(annotations['nginx.ingress.kubernetes.io/auth-response-headers']).toBe(
          'X-Auth-Request-User,X-Auth-Request-Email',
        );
        expect(ingress?.spec?.tls).toEqual([{ hosts: [host] }]);
        expect(plan.status.url).toBe(`https://${host}/`);
        // Only the ingress controller reaches the desktop, on its port only.
        const policy = plan.apply.find((o) => o.kind === 'NetworkPolicy') as V1NetworkPolicy;
        const deployment = plan.apply.find((o) => o.kind === 'Deployment') as V1Deployment;
        const podLabels = deployment.spec?.template.metadata?.labels ?? {};
        for (const [key, value] of Object.entries(policy.spec?.podSelector?.matchLabels ?? {}))
          expect(podLabels[key]).toBe(value);
        expect(policy.metadata?.name).toBe(deployment.metadata?.name);
        expect(policy.metadata?.ownerReferences).toEqual(deployment.metadata?.ownerReferences);
        expect(policy.spec?.ingress).toEqual([
          {
            from: DEFAULT_DESKTOP_INGRESS_FROM,
            ports: [{ protocol: 'TCP', port: template.spec.vnc?.port }],
          },
        ]);
      }),
      runs,
    );
  });

  it("writes only what ingress-nginx's annotation validation accepts, or refuses the user", () => {
    const validated: ReconcilerSettings = {
      ...settings,
      desktopAuth: {
        ...(settings.desktopAuth as NonNullable<ReconcilerSettings['desktopAuth']>),
        adminUsers: ['ops'],
        annotationValidation: true,
      },
    };
    let written = 0;
    fc.assert(
      fc.property(pairArb, ({ session, template }) => {
        fc.pre(session.spec.state === 'running');
        const plan = planSession({ session, template, pods: [] }, validated, now);
        const ingress = plan.apply.find((o) => o.kind === 'Ingress');
        if (!ingress) {
          expect(plan.status.conditions.find((c) => c.type === 'Ready')?.reason).toBe('UserNotAuthorizable');
          // The Template is fine: only the user is refused.
          expect(plan.status.conditions.find((c) => c.type === 'TemplateResolved')?.status).toBe('True');
          return;
        }
        written++;
        const annotations = ingress.metadata?.annotations ?? {};
        for (const key of ['auth-url', 'auth-signin'])
          expect(annotations[`nginx.ingress.kubernetes.io/${key}`]).toMatch(INGRESS_NGINX_URL_CHARACTERS);
        const authUrl = new URL(annotations['nginx.ingress.kubernetes.io/auth-url'] as string);
        expect(authUrl.searchParams.getAll('allowed_emails').flatMap((v) => v.split(','))).toEqual([
          session.spec.user,
          'ops',
        ]);
      }),
      runs,
    );
    // The generators must reach both outcomes, or the property says little.
    expect(written).toBeGreaterThan(10);
  });

  it('gives different users different home claims', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 120 }),
        fc.string({ minLength: 1, maxLength: 120 }),
        (a, b) => {
          fc.pre(a !== b);
          expect(homeClaimName(a)).not.toBe(homeClaimName(b));
          expect(isDns1123Label(homeClaimName(a))).toBe(true);
        },
      ),
      { numRuns: 500, seed: SEED },
    );
  });
});
