import { randomBytes } from 'node:crypto';
import {
  ANNOTATIONS,
  API_GROUP,
  API_VERSION,
  homeClaimName,
  legacyHomeClaimName,
  sessionChildName,
  userSlug,
} from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionObject, templateObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  installCrds,
  kube,
  kubectl,
  ServiceProcess,
} from './harness.js';
import { chartDir, find, helm, template as helmTemplate, type K8sObject, NATS_AUTH_VALUES } from './helm.js';
import { type PrivateNats, startPrivateNats } from './private-nats.js';

/**
 * Issue 12, tenancy: on the real API server, with the real watcher and reconciler, each finding
 * of the review as an attack that used to work and is now refused, leaving the victim's objects as
 * they were: another user's Session changed or deleted, a host taken from another namespace, a
 * Deployment/Service/Ingress of someone else's taken over, a home claim reached through a
 * colliding or forged name, Sessions in the control plane's namespace; and the chart's refusals.
 */

const k = kube();
const DOMAIN = 'desktops.test';
let nats: PrivateNats;
/** Two namespaces for users, and one standing in for the control plane's. */
let teamA: string;
let teamB: string;
let controlPlane: string;
const services: ServiceProcess[] = [];
let reconciler: ServiceProcess;

function start(name: string, env: Record<string, string>): ServiceProcess {
  const service = new ServiceProcess(name, { NATS_URL: nats.url, ...env });
  services.push(service);
  return service;
}

async function apply(object: object): Promise<void> {
  const result = await kubectl(['apply', '-f', '-'], JSON.stringify(object));
  if (result.code !== 0) throw new Error(`kubectl apply failed: ${result.stderr}`);
}

function template(namespace: string) {
  return templateObject(namespace, 'firefox', { displayName: 'Firefox', homePath: '/config' });
}

function session(namespace: string, name: string, user: string, extra: Record<string, unknown> = {}) {
  return sessionObject(namespace, name, user, 'firefox', extra);
}

interface StoredSession {
  metadata: { generation?: number };
  spec: { state: string; user: string };
  status?: {
    phase?: string;
    url?: string;
    observedGeneration?: number;
    conditions?: { type: string; reason: string; message: string }[];
  };
}

function readSession(namespace: string, name: string): Promise<StoredSession> {
  return k.custom.getNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
    name,
  }) as Promise<StoredSession>;
}

/** Waits until the Session's Ready condition has `reason`; returns the Session. */
function waitReadyReason(namespace: string, name: string, reason: string, timeoutMs = 30_000) {
  return eventually(async () => {
    const s = await readSession(namespace, name);
    const ready = s.status?.conditions?.find((c) => c.type === 'Ready');
    expect(ready?.reason, JSON.stringify(s.status)).toBe(reason);
    return { session: s, message: ready?.message ?? '' };
  }, timeoutMs);
}

async function absent(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return false;
  } catch (error) {
    if ((error as { code?: number }).code === 404) return true;
    throw error;
  }
}

async function eventReasons(namespace: string, name: string): Promise<string[]> {
  const events = await k.core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.kind=Session,involvedObject.name=${name}`,
  });
  return events.items.map((e) => e.reason ?? '');
}

beforeAll(async () => {
  await installCrds();
  [teamA, teamB, controlPlane] = await Promise.all([
    createNamespace('tenancy-a'),
    createNamespace('tenancy-b'),
    createNamespace('tenancy-cp'),
  ]);
  nats = await startPrivateNats();
  // One watcher for the three namespaces (WATCH_NAMESPACE as a list: each watched by itself, as
  // with rbac.scope=namespaces), and one reconciler serving them with the default host pattern,
  // told which namespace is the control plane's.
  start('watcher', { WATCH_NAMESPACE: [teamA, teamB, controlPlane].join(','), RESYNC_INTERVAL: '30s' });
  reconciler = start('reconciler', {
    INGRESS_DOMAIN: DOMAIN,
    CONTROL_PLANE_NAMESPACE: controlPlane,
    STARTUP_DEADLINE: '60s',
  });
  await Promise.all(services.map((s) => s.waitReady(45_000)));
  for (const namespace of [teamA, teamB, controlPlane]) await apply(template(namespace));
});

afterAll(async () => {
  await Promise.all(services.map((s) => s.stop()));
  await nats?.stop();
  await Promise.all([teamA, teamB, controlPlane].filter(Boolean).map(deleteNamespace));
});

describe('hosts are unique per namespace and name', () => {
  it('gives two Sessions of the same name in two namespaces different hosts (default {session}.{namespace}.{domain})', async () => {
    await apply(session(teamA, 'desk', 'alice@example.com'));
    await apply(session(teamB, 'desk', 'bob@example.com'));
    const hosts = await eventually(async () => {
      const found: string[] = [];
      for (const namespace of [teamA, teamB]) {
        const ingress = await k.networking.readNamespacedIngress({
          name: sessionChildName('desk'),
          namespace,
        });
        found.push(ingress.spec?.rules?.[0]?.host ?? '');
      }
      return found;
    }, 30_000);
    expect(hosts).toEqual([`desk.${teamA}.${DOMAIN}`, `desk.${teamB}.${DOMAIN}`]);
    const urls = await eventually(async () => {
      const a = (await readSession(teamA, 'desk')).status?.url;
      const b = (await readSession(teamB, 'desk')).status?.url;
      expect(a && b).toBeTruthy();
      return [a, b];
    });
    expect(urls).toEqual([`http://desk.${teamA}.${DOMAIN}/`, `http://desk.${teamB}.${DOMAIN}/`]);
    console.log(`tenancy: same Session name in two namespaces → ${hosts.join(' and ')}`);
  });

  it('refuses to start with a host pattern that is ambiguous, or that leaves the namespace out while serving several', async () => {
    const cases: [Record<string, string>, string][] = [
      [
        { INGRESS_HOST_PATTERN: '{session}-{namespace}.{domain}' },
        'INGRESS_HOST_PATTERN: {session} must be a whole DNS label',
      ],
      [{ INGRESS_HOST_PATTERN: '{session}.{domain}' }, 'INGRESS_HOST_PATTERN: must contain {namespace}'],
    ];
    for (const [env, message] of cases) {
      const refused = start('reconciler', { INGRESS_DOMAIN: DOMAIN, ...env });
      expect(await refused.waitExit()).toBe(1);
      expect(refused.logs.join('\n')).toContain(message);
    }
    // Serving exactly one namespace, the namespace may be left out.
    const single = start('reconciler', {
      INGRESS_DOMAIN: DOMAIN,
      INGRESS_HOST_PATTERN: '{session}.{domain}',
      WATCH_NAMESPACE: teamA,
    });
    await single.waitReady(30_000);
    await single.stop();
  });
});

describe('children that are not the Session’s own', () => {
  it('never applies over or deletes a Deployment, Service or Ingress it does not control, and says so', async () => {
    const name = sessionChildName('taken');
    const labels = { app: 'someone-elses' };
    await apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: teamA, labels },
      spec: {
        replicas: 0,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: { containers: [{ name: 'app', image: 'registry.example/someone-elses:1' }] },
        },
      },
    });
    await apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: teamA, labels },
      spec: { selector: labels, ports: [{ port: 80, targetPort: 8080 }] },
    });
    await apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name, namespace: teamA, labels },
      spec: {
        rules: [
          {
            host: 'someone-elses.example',
            http: {
              paths: [
                {
                  path: '/',
                  pathType: 'Prefix',
                  backend: { service: { name, port: { number: 80 } } },
                },
              ],
            },
          },
        ],
      },
    });
    const snapshot = async () =>
      JSON.stringify(
        await Promise.all([
          k.apps.readNamespacedDeployment({ name, namespace: teamA }),
          k.core.readNamespacedService({ name, namespace: teamA }),
          k.networking.readNamespacedIngress({ name, namespace: teamA }),
        ]),
      );
    const before = await snapshot();

    await apply(session(teamA, 'taken', 'carol@example.com'));
    const { session: refused, message } = await waitReadyReason(teamA, 'taken', 'ChildNotOwned');
    expect(refused.status?.phase).toBe('Failed');
    expect(message).toContain(
      `Deployment "${name}", Service "${name}", Ingress "${name}" in namespace "${teamA}" already exist`,
    );
    expect(message).toContain('neither changes nor deletes them');
    expect(await eventReasons(teamA, 'taken')).toContain('ChildNotOwned');

    // Terminating it must not delete them either.
    const patched = await kubectl([
      'patch',
      'session',
      'taken',
      '-n',
      teamA,
      '--type=merge',
      '-p',
      '{"spec":{"state":"terminated"}}',
    ]);
    expect(patched.code, patched.stderr).toBe(0);
    const generation = (await readSession(teamA, 'taken')).metadata.generation;
    await eventually(async () => {
      const s = await readSession(teamA, 'taken');
      expect(s.status?.observedGeneration).toBe(generation);
      expect(s.status?.phase).toBe('Terminated');
    });
    // Byte for byte as they were: no field, owner reference or resourceVersion changed.
    expect(await snapshot()).toBe(before);
    console.log('tenancy: a foreign Deployment, Service and Ingress were left untouched (ChildNotOwned)');
  });
});

describe('home claims', () => {
  const claimOf = (namespace: string, sessionName: string) =>
    eventually(async () => {
      const deployment = await k.apps.readNamespacedDeployment({
        name: sessionChildName(sessionName),
        namespace,
      });
      const claim = deployment.spec?.template.spec?.volumes?.find((v) => v.name === 'home')
        ?.persistentVolumeClaim?.claimName;
      expect(claim).toBeTruthy();
      return claim as string;
    }, 30_000);

  it('gives two users whose names fold to the same readable part their own claims', async () => {
    const users = ['José.Núñez@example.com', 'jose.nunez@example.com'];
    // The readable parts coincide: only the hash tells them apart.
    expect(userSlug(users[0] as string).slice(0, -17)).toBe(userSlug(users[1] as string).slice(0, -17));
    await apply(session(teamA, 'jose-one', users[0] as string, { persistentHome: true }));
    await apply(session(teamA, 'jose-two', users[1] as string, { persistentHome: true }));
    const claims = [await claimOf(teamA, 'jose-one'), await claimOf(teamA, 'jose-two')];
    expect(claims).toEqual(users.map(homeClaimName));
    expect(claims[0]).not.toBe(claims[1]);
    // 64 bits of hash (16 hex digits), not the 32 that a chosen collision could be searched for.
    for (const claim of claims) expect(claim).toMatch(/^home-jose-nunez-example-com-[0-9a-f]{16}$/);
    for (const [i, claim] of claims.entries()) {
      const pvc = await eventually(() =>
        k.core.readNamespacedPersistentVolumeClaim({ name: claim, namespace: teamA }),
      );
      expect(pvc.metadata?.annotations?.[ANNOTATIONS.user]).toBe(users[i]);
    }
    console.log(`tenancy: ${users.join(' / ')} → ${claims.join(' / ')}`);
  });

  it('does not mount an existing claim of the user’s name that names another user', async () => {
    const claim = homeClaimName('dave@example.com');
    await apply({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: claim, namespace: teamA, annotations: { [ANNOTATIONS.user]: 'mallory@example.com' } },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    });
    const before = await k.core.readNamespacedPersistentVolumeClaim({ name: claim, namespace: teamA });
    await apply(session(teamA, 'daves', 'dave@example.com', { persistentHome: true }));
    const { session: refused, message } = await waitReadyReason(teamA, 'daves', 'HomeClaimNotOwned');
    expect(refused.status?.phase).toBe('Failed');
    expect(message).toContain(`PersistentVolumeClaim "${claim}" in namespace "${teamA}"`);
    expect(message).toContain('owner annotation "mallory@example.com"');
    expect(await eventReasons(teamA, 'daves')).toContain('HomeClaimNotOwned');
    // No desktop, and the claim as it was.
    expect(
      await absent(() =>
        k.apps.readNamespacedDeployment({ name: sessionChildName('daves'), namespace: teamA }),
      ),
    ).toBe(true);
    const after = await k.core.readNamespacedPersistentVolumeClaim({ name: claim, namespace: teamA });
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
  });

  it('keeps mounting a home made by an earlier release (32-bit name) that names this user', async () => {
    const legacy = legacyHomeClaimName('erin@example.com');
    await apply({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: legacy, namespace: teamB, annotations: { [ANNOTATIONS.user]: 'erin@example.com' } },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    });
    await apply(session(teamB, 'erins', 'erin@example.com', { persistentHome: true }));
    expect(await claimOf(teamB, 'erins')).toBe(legacy);
    expect(
      await absent(() =>
        k.core.readNamespacedPersistentVolumeClaim({
          name: homeClaimName('erin@example.com'),
          namespace: teamB,
        }),
      ),
    ).toBe(true);
  });
});

describe('the control plane’s namespace', () => {
  it('refuses Sessions there, with a condition and an Event, creating nothing', async () => {
    await apply(session(controlPlane, 'sneaky', 'mallory@example.com', { persistentHome: true }));
    const { session: refused, message } = await waitReadyReason(
      controlPlane,
      'sneaky',
      'ControlPlaneNamespace',
    );
    expect(refused.status?.phase).toBe('Failed');
    expect(message).toContain(`namespace "${controlPlane}", where StreamSpace itself runs`);
    expect(await eventReasons(controlPlane, 'sneaky')).toContain('ControlPlaneNamespace');
    const listed = await kubectl([
      'get',
      'deployments,services,ingresses,pvc',
      '-n',
      controlPlane,
      '-o',
      'name',
    ]);
    expect(listed.stdout.trim()).toBe('');
  });

  it('counted each refusal once, by reason (the reconciler’s /metrics)', async () => {
    const { body } = await reconciler.get('/metrics');
    for (const reason of ['ControlPlaneNamespace', 'ChildNotOwned', 'HomeClaimNotOwned'])
      expect(body).toContain(`streamspace_reconciler_sessions_refused_total{reason="${reason}"} 1`);
  });
});

describe('the session-ownership policy covers CREATE, UPDATE and DELETE', () => {
  const suffix = randomBytes(3).toString('hex');
  const policyName = `session-owner-${suffix}`;
  const userRole = `streamspace-user-${suffix}`;
  let doomed: string;

  const as = (user: string, group?: string) => [`--as=${user}`, ...(group ? [`--as-group=${group}`] : [])];
  const setState = (who: string[], name: string, state: string, extra: string[] = []) =>
    kubectl([
      'patch',
      'session',
      name,
      '-n',
      teamB,
      ...who,
      ...extra,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { state } }),
    ]);
  const remove = (who: string[], name: string) => kubectl(['delete', 'session', name, '-n', teamB, ...who]);
  const create = (who: string[], name: string, user: string) =>
    kubectl(['create', ...who, '-f', '-'], JSON.stringify(session(teamB, name, user)));

  afterAll(async () => {
    for (const kind of ['validatingadmissionpolicybinding', 'validatingadmissionpolicy'])
      await kubectl(['delete', kind, policyName, '--ignore-not-found']);
    await kubectl(['delete', 'clusterrole', userRole, '--ignore-not-found']);
    if (doomed) await deleteNamespace(doomed);
  });

  it("lets only the owner or a trusted requester change or delete a Session (impersonated users, the chart's policy and user role)", async () => {
    doomed = await createNamespace('tenancy-doomed');
    // The chart's policy and user role as rendered (release ss in namespace streamspace), renamed
    // and bound to this file's namespaces only: other files share the cluster.
    const rendered = await helmTemplate(
      [],
      ['--show-only', 'templates/session-ownership.yaml', '--show-only', 'templates/rbac.yaml'],
    );
    const policy = rendered
      .filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy'))
      .map((o) => ({
        ...o,
        metadata: { ...o.metadata, name: policyName },
        spec:
          o.kind === 'ValidatingAdmissionPolicyBinding'
            ? {
                ...o.spec,
                policyName,
                matchResources: {
                  namespaceSelector: {
                    matchExpressions: [
                      { key: 'kubernetes.io/metadata.name', operator: 'In', values: [teamB, doomed] },
                    ],
                  },
                },
              }
            : o.spec,
      }));
    expect(
      policy.find((o) => o.kind === 'ValidatingAdmissionPolicy')?.spec.matchConstraints.resourceRules[0]
        .operations,
    ).toEqual(['CREATE', 'UPDATE', 'DELETE']);
    const role = find(rendered, 'ClusterRole', '-user') as K8sObject;
    const reaper = 'ss-streamspace-idle-reaper';
    await apply({ ...role, metadata: { ...role.metadata, name: userRole } });
    await apply({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'streamspace-users', namespace: teamB },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: userRole },
      subjects: [
        { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'mallory@example.com' },
        { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'bob@example.com' },
        { apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'streamspace:session-admins' },
        { kind: 'ServiceAccount', name: reaper, namespace: 'streamspace' },
      ],
    });
    // The user role: own Sessions and reading Templates, nothing else in the namespace.
    const can = async (verb: string, resource: string) =>
      (
        await kubectl(['auth', 'can-i', verb, resource, '-n', teamB, ...as('mallory@example.com')])
      ).stdout.trim();
    for (const verb of ['create', 'get', 'list', 'watch', 'patch', 'delete'])
      expect(await can(verb, `sessions.${API_GROUP}`)).toBe('yes');
    expect(await can('get', `templates.${API_GROUP}`)).toBe('yes');
    for (const [verb, resource] of [
      ['create', `templates.${API_GROUP}`],
      ['patch', `templates.${API_GROUP}`],
      ['delete', `templates.${API_GROUP}`],
      ['get', 'secrets'],
      ['create', 'pods'],
      ['create', 'deployments.apps'],
      ['create', 'persistentvolumeclaims'],
    ])
      expect(await can(verb as string, resource as string), `${verb} ${resource}`).toBe('no');

    for (const object of policy) await apply(object);

    const bobs = await create(as('bob@example.com'), 'bobs-desk', 'bob@example.com');
    expect(bobs.code, bobs.stderr).toBe(0);
    // The API server enforces a new policy a moment after it is stored: wait with server-side dry runs.
    const denial =
      'Session bobs-desk belongs to bob@example.com: only its owner may change it, not mallory@example.com';
    await eventually(
      async () => {
        const dry = await setState(as('mallory@example.com'), 'bobs-desk', 'terminated', [
          '--dry-run=server',
        ]);
        expect(dry.stderr).toContain(denial);
      },
      30_000,
      500,
    );
    // The reconciler's status writes are not matched: bob's desktop still comes up.
    await eventually(
      async () => expect((await readSession(teamB, 'bobs-desk')).status?.phase).toBe('Running'),
      60_000,
      300,
    );

    // Mallory may patch and delete Sessions here (RBAC), but not bob's.
    const terminate = await setState(as('mallory@example.com'), 'bobs-desk', 'terminated');
    expect(terminate.code).not.toBe(0);
    expect(terminate.stderr).toContain(denial);
    const deletion = await remove(as('mallory@example.com'), 'bobs-desk');
    expect(deletion.code).not.toBe(0);
    expect(deletion.stderr).toContain(
      'Session bobs-desk belongs to bob@example.com: only its owner may delete it, not mallory@example.com',
    );
    const stored = await readSession(teamB, 'bobs-desk');
    expect(stored.spec.state).toBe('running');
    expect(stored.status?.phase).toBe('Running');

    // The owner, the chart's idle reaper, a trusted admin and a cluster admin may.
    for (const [who, state] of [
      [as('bob@example.com'), 'hibernated'],
      [as(`system:serviceaccount:streamspace:${reaper}`), 'running'],
      [as('portal', 'streamspace:session-admins'), 'hibernated'],
      [[], 'running'],
    ] as const) {
      const result = await setState([...who], 'bobs-desk', state);
      expect(result.code, `${who.join(' ')}: ${result.stderr}`).toBe(0);
      expect((await readSession(teamB, 'bobs-desk')).spec.state).toBe(state);
    }
    // Mallory's own Session is hers to change and delete; an admin may delete anyone's.
    expect((await create(as('mallory@example.com'), 'mallorys', 'mallory@example.com')).code).toBe(0);
    expect((await setState(as('mallory@example.com'), 'mallorys', 'hibernated')).code).toBe(0);
    expect((await remove(as('mallory@example.com'), 'mallorys')).code).toBe(0);
    expect((await remove(as('portal', 'streamspace:session-admins'), 'bobs-desk')).code).toBe(0);
    expect(await absent(() => readSession(teamB, 'bobs-desk'))).toBe(true);

    // Kubernetes' own controllers stay trusted: a namespace with someone's Session still goes away.
    await apply(session(doomed, 'left-behind', 'bob@example.com'));
    await kube().core.deleteNamespace({ name: doomed });
    await eventually(
      async () => expect(await absent(() => k.core.readNamespace({ name: doomed }))).toBe(true),
      90_000,
      1_000,
    );
    console.log(
      'tenancy: another user’s Session could not be patched or deleted; owner, reaper, admins could',
    );
  });
});

describe('the chart’s tenancy rules', () => {
  /** --set, or --set-literal for host patterns (--set reads {a,b} as a list). */
  const render = (values: string[]) =>
    helm([
      'template',
      'ss',
      chartDir,
      '--namespace',
      'streamspace',
      // Each refusal is checked on its own: NATS authentication is given, as an operator must.
      '--set',
      NATS_AUTH_VALUES,
      ...values.flatMap((v) => [v.startsWith('ingress.hostPattern=') ? '--set-literal' : '--set', v]),
    ]);

  it.each([
    [
      ['sessionNamespaces={desktops,streamspace}'],
      'sessionNamespaces must not hold the release namespace streamspace',
    ],
    [['catalog.namespace=streamspace'], 'catalog.namespace must not be the release namespace streamspace'],
    [['rbac.scope=namespace'], 'rbac.scope=namespace was replaced by rbac.scope=namespaces'],
    [['rbac.scope=namespaces'], 'rbac.scope=namespaces needs the namespaces that host Sessions'],
    [['watchNamespace=desktops'], 'watchNamespace was replaced by sessionNamespaces'],
    [['rbac.aggregateToDefaultRoles=true'], 'rbac.aggregateToDefaultRoles was removed'],
    [['ingress.hostPattern={session}-{namespace}.{domain}'], '{session} must be a whole DNS label'],
    [['ingress.hostPattern={session}.{domain}'], 'must contain {namespace} as a whole DNS label'],
    [
      ['rbac.scope=namespaces', 'sessionNamespaces={a,b}', 'ingress.hostPattern={session}.{domain}'],
      'must contain {namespace} as a whole DNS label',
    ],
  ])('refuses %j', async (values, message) => {
    const result = await render(values);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(message);
  });

  it('ships the user role, aggregates nothing into edit or admin, and puts no Template in its own namespace', async () => {
    const rendered = await helmTemplate();
    expect(find(rendered, 'ClusterRole', '-user').rules).toEqual([
      {
        apiGroups: [API_GROUP],
        resources: ['sessions'],
        verbs: ['create', 'get', 'list', 'watch', 'patch', 'delete'],
      },
      { apiGroups: [API_GROUP], resources: ['templates'], verbs: ['get', 'list', 'watch'] },
    ]);
    const aggregated = rendered.filter((o) =>
      Object.keys(o.metadata.labels ?? {}).some((l) =>
        l.startsWith('rbac.authorization.k8s.io/aggregate-to'),
      ),
    );
    expect(aggregated).toEqual([]);
    expect(rendered.filter((o) => o.kind === 'Template')).toEqual([]);
    const config = find(rendered, 'ConfigMap', '-reconciler').data;
    expect(config.INGRESS_HOST_PATTERN).toBe('{session}.{namespace}.{domain}');
    expect(config.CONTROL_PLANE_NAMESPACE).toBe('streamspace');
    // view only on request.
    const view = await helmTemplate(['rbac.aggregateToView=true']);
    expect(find(view, 'ClusterRole', '-view').metadata.labels).toMatchObject({
      'rbac.authorization.k8s.io/aggregate-to-view': 'true',
    });
  });

  it('limits the services to the namespaces that host Sessions with rbac.scope=namespaces', async () => {
    const rendered = await helmTemplate(['rbac.scope=namespaces', 'sessionNamespaces={team-a,team-b}']);
    for (const component of ['watcher', 'reconciler', 'idle-reaper', 'metrics']) {
      const roles = rendered.filter((o) => o.kind === 'Role' && o.metadata.name.endsWith(`-${component}`));
      expect(roles.map((r) => r.metadata.namespace)).toEqual(['team-a', 'team-b']);
      const bindings = rendered.filter(
        (o) => o.kind === 'RoleBinding' && o.metadata.name.endsWith(`-${component}`),
      );
      expect(bindings.map((r) => r.metadata.namespace)).toEqual(['team-a', 'team-b']);
      expect(bindings[0]?.subjects).toEqual([
        { kind: 'ServiceAccount', name: `ss-streamspace-${component}`, namespace: 'streamspace' },
      ]);
      expect(find(rendered, 'ConfigMap', `-${component}`).data.WATCH_NAMESPACE).toBe('team-a,team-b');
    }
    expect(rendered.filter((o) => o.kind === 'ClusterRoleBinding')).toEqual([]);
    const templates = rendered.filter((o) => o.kind === 'Template');
    expect(templates.filter((t) => t.metadata.namespace === 'team-a')).toHaveLength(22);
    expect(templates.filter((t) => t.metadata.namespace === 'team-b')).toHaveLength(22);
    expect(find(rendered, 'ValidatingAdmissionPolicyBinding', '-session-owner').spec.matchResources).toEqual({
      namespaceSelector: {
        matchExpressions: [
          { key: 'kubernetes.io/metadata.name', operator: 'In', values: ['team-a', 'team-b'] },
        ],
      },
    });
    // One namespace: the host may leave the namespace out.
    const single = await helmTemplate(
      ['rbac.scope=namespaces', 'sessionNamespaces={team-a}'],
      ['--set-literal', 'ingress.hostPattern={session}.{domain}'],
    );
    expect(find(single, 'ConfigMap', '-reconciler').data).toMatchObject({
      WATCH_NAMESPACE: 'team-a',
      INGRESS_HOST_PATTERN: '{session}.{domain}',
    });
  });
});
