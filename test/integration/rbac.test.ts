import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, homeClaimName } from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  createNamespace,
  deleteNamespace,
  installCrds,
  kube,
  kubectl,
  ServiceProcess,
} from './harness.js';
import { COMPONENTS, chartDir, helm, ok } from './helm.js';
import { type PrivateNats, startPrivateNats } from './private-nats.js';
import {
  createSession,
  setSessionState,
  waitSessionChildrenGone,
  waitSessionPhase,
} from './session-steps.js';

/**
 * Least privilege, proven on the real API server: the chart's RBAC is installed, each service's
 * ServiceAccount gets a token (`kubectl create token`), and (a) the API server's own access
 * reviews, asked with that token, allow each verb the service uses and forbid the ones it must
 * not have; (b) the real services, each run with only its own token and the chart's
 * configuration, take a Session through its life.
 */

type Component = (typeof COMPONENTS)[number];
interface Access {
  verb: string;
  resource: string;
  group?: string;
  subresource?: string;
}

const access = (spec: string): Access => {
  // "verb resource[/subresource][.group]", e.g. "patch sessions/status.stream.streamspace.io"
  const [verb, target] = spec.split(' ') as [string, string];
  const dot = target.indexOf('.');
  const [resourcePath, group] = dot < 0 ? [target, ''] : [target.slice(0, dot), target.slice(dot + 1)];
  const [resource, subresource] = resourcePath.split('/') as [string, string | undefined];
  return { verb, resource, group, ...(subresource ? { subresource } : {}) };
};

const SS = 'stream.streamspace.io';

/** What each service does to the API (see the chart's streamspace.rules and each service's source). */
const ALLOWED: Record<Component, string[]> = {
  watcher: [
    `list sessions.${SS}`,
    `watch sessions.${SS}`,
    `list templates.${SS}`,
    `watch templates.${SS}`,
    'list deployments.apps',
    'watch deployments.apps',
    'list pods',
    'watch pods',
    ...['services', 'persistentvolumeclaims', 'ingresses.networking.k8s.io', 'networkpolicies.networking.k8s.io'].flatMap(
      (r) => [`list ${r}`, `watch ${r}`],
    ),
  ],
  reconciler: [
    `patch sessions/status.${SS}`,
    `patch templates/status.${SS}`,
    `update sessions/finalizers.${SS}`,
    ...['create', 'patch', 'delete'].flatMap((v) => [
      `${v} deployments.apps`,
      `${v} services`,
      `${v} ingresses.networking.k8s.io`,
    ]),
    'create persistentvolumeclaims',
    'patch persistentvolumeclaims',
    // Each session's activity token (activityAgent.enabled, the default): written, never read.
    'create secrets',
    'patch secrets',
    'create events',
  ],
  'idle-reaper': [
    `get sessions.${SS}`,
    `patch sessions.${SS}`,
    `patch sessions/status.${SS}`,
    'create events',
  ],
  // Its gauges come from the shared state on NATS: nothing of the API server.
  metrics: [],
};

/** Verbs each service must NOT have: a compromised service can do no more than its job. */
const FORBIDDEN: Record<Component, string[]> = {
  watcher: [
    'patch deployments.apps',
    `create sessions.${SS}`,
    `patch sessions/status.${SS}`,
    'get secrets',
    'list configmaps',
    'delete pods',
    'create events',
  ],
  reconciler: [
    // It reads from the shared state on NATS, never from the API server.
    `get sessions.${SS}`,
    `list sessions.${SS}`,
    `get templates.${SS}`,
    'get deployments.apps',
    'get services',
    'list pods',
    'get persistentvolumeclaims',
    'delete persistentvolumeclaims',
    'get secrets',
    'list secrets',
    `patch sessions.${SS}`,
    `delete sessions.${SS}`,
    `update templates.${SS}`,
    'create pods',
    'delete pods',
    'create rolebindings.rbac.authorization.k8s.io',
    'patch events',
    'create serviceaccounts/token',
  ],
  'idle-reaper': [
    // Sessions come from the shared state on NATS.
    `list sessions.${SS}`,
    `watch sessions.${SS}`,
    `delete sessions.${SS}`,
    `create sessions.${SS}`,
    `patch templates.${SS}`,
    'create deployments.apps',
    'patch deployments.apps',
    'get secrets',
    'delete persistentvolumeclaims',
  ],
  metrics: [
    `list sessions.${SS}`,
    `watch sessions.${SS}`,
    `list templates.${SS}`,
    `get sessions.${SS}`,
    `patch sessions.${SS}`,
    `patch sessions/status.${SS}`,
    'list pods',
    'list deployments.apps',
    'get secrets',
    'list configmaps',
    'create events',
  ],
};

const admin = kube();
const workdir = mkdtempSync(join(tmpdir(), 'streamspace-rbac-'));

/** A kubeconfig that authenticates as the ServiceAccount with a fresh token, and nothing else. */
async function tokenKubeconfig(namespace: string, serviceAccount: string): Promise<string> {
  const created = await kubectl(['create', 'token', serviceAccount, '-n', namespace, '--duration', '1h']);
  if (created.code !== 0) throw new Error(`kubectl create token ${serviceAccount}: ${created.stderr}`);
  const cluster = admin.kc.getCurrentCluster() as k8s.Cluster;
  const file = join(workdir, `${namespace}-${serviceAccount}.kubeconfig`);
  writeFileSync(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'local',
          cluster: {
            server: cluster.server,
            ...(cluster.caData ? { 'certificate-authority-data': cluster.caData } : {}),
            ...(cluster.caFile ? { 'certificate-authority': cluster.caFile } : {}),
            ...(cluster.skipTLSVerify ? { 'insecure-skip-tls-verify': true } : {}),
          },
        },
      ],
      users: [{ name: serviceAccount, user: { token: created.stdout.trim() } }],
      contexts: [{ name: serviceAccount, context: { cluster: 'local', user: serviceAccount, namespace } }],
      'current-context': serviceAccount,
    }),
  );
  return file;
}

/** Asks the API server, as the token's owner, whether it may do `what` (namespace undefined: cluster-wide). */
async function allowed(kubeconfig: string, what: Access, namespace: string | undefined): Promise<boolean> {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const review = await kc.makeApiClient(k8s.AuthorizationV1Api).createSelfSubjectAccessReview({
    body: { spec: { resourceAttributes: { ...what, ...(namespace ? { namespace } : {}) } } },
  });
  return review.status?.allowed === true;
}

async function decisions(
  kubeconfig: string,
  specs: string[],
  namespace: string | undefined,
): Promise<Record<string, boolean>> {
  const entries = await Promise.all(
    specs.map(async (s) => [s, await allowed(kubeconfig, access(s), namespace)] as const),
  );
  return Object.fromEntries(entries);
}

const everything = (specs: string[], value: boolean) => Object.fromEntries(specs.map((s) => [s, value]));

afterAll(() => rmSync(workdir, { recursive: true, force: true }));

/** Nothing the service tried was refused by RBAC (a 403, "... is forbidden: User ... cannot ..."). */
function expectNoRefusals(service: ServiceProcess): void {
  const refused = /HTTP-Code: 403|answered 403|is forbidden: User/;
  expect(
    service.logs.filter((line) => refused.test(line)),
    service.service,
  ).toEqual([]);
}

/** One installed release of the chart, its ServiceAccounts' tokens, and the real services run with them. */
class Release {
  readonly name: string;
  namespace = '';
  readonly kubeconfigs = {} as Record<Component, string>;
  readonly services: ServiceProcess[] = [];
  nats: PrivateNats | undefined;

  constructor(
    prefix: string,
    private readonly values: string[],
  ) {
    this.name = `${prefix}-${randomBytes(3).toString('hex')}`;
  }

  /** `values`: more --set values, e.g. the namespaces that host Sessions (created before). */
  async install(values: string[] = []): Promise<void> {
    await installCrds();
    // Only this release's services may consume its work items: they get a NATS of their own.
    this.nats = await startPrivateNats();
    this.namespace = await createNamespace(`${this.name}`);
    // The services run here as processes against an open private nats-server (the RBAC is what
    // this file tests; security.test.ts covers the NATS users), so the release says so explicitly.
    const set = ['nats.insecure=true', ...this.values, ...values].flatMap((v) => ['--set', v]);
    ok(
      await helm([
        'install',
        this.name,
        chartDir,
        '--namespace',
        this.namespace,
        ...set,
        '--wait',
        '--timeout',
        '90s',
      ]),
      'helm install',
    );
    for (const component of COMPONENTS) {
      this.kubeconfigs[component] = await tokenKubeconfig(
        this.namespace,
        `${this.name}-streamspace-${component}`,
      );
    }
  }

  async uninstall(): Promise<void> {
    await Promise.all(this.services.map((s) => s.stop()));
    await this.nats?.stop();
    await helm(['uninstall', this.name, '--namespace', this.namespace, '--wait']);
    if (this.namespace) await deleteNamespace(this.namespace);
  }

  /**
   * The real service, with only its own token and the chart's settings (its ConfigMap, with
   * loopback instead of 0.0.0.0). `extra` adds what the chart leaves to the cluster (WATCH_NAMESPACE
   * for a test that must not watch every namespace of the shared cluster).
   */
  async start(component: Component, extra: Record<string, string> = {}): Promise<ServiceProcess> {
    const config = await admin.core.readNamespacedConfigMap({
      namespace: this.namespace,
      name: `${this.name}-streamspace-${component}`,
    });
    // The in-cluster watcher URL the metrics service probes does not resolve here.
    const { HTTP_HOST: _host, HTTP_PORT: _port, WATCHER_READY_URL: _url, ...env } = config.data ?? {};
    // The key of activity tokens, from the Secret the chart created, where the pod would mount it.
    if (env.ACTIVITY_SESSION_KEY_FILE) {
      const secret = await admin.core.readNamespacedSecret({
        namespace: this.namespace,
        name: `${this.name}-streamspace-activity-key`,
      });
      env.ACTIVITY_SESSION_KEY_FILE = join(workdir, `${this.name}-activity-key`);
      writeFileSync(env.ACTIVITY_SESSION_KEY_FILE, Buffer.from(secret.data?.key ?? '', 'base64'));
    }
    const service = new ServiceProcess(component, {
      ...env,
      KUBECONFIG: this.kubeconfigs[component],
      NATS_URL: this.nats?.url ?? '',
      LOG_LEVEL: 'info',
      ...extra,
    });
    this.services.push(service);
    await service.waitReady(30_000);
    return service;
  }
}

/** A user's session through its life: running (with its URL), hibernated, terminated; the home stays. */
async function sessionLifecycle(namespace: string, name: string, user: string): Promise<string | undefined> {
  const { custom } = admin;
  await createSession(namespace, name, { user, template: 'firefox', state: 'running', persistentHome: true });
  const url = (await waitSessionPhase(namespace, name, 'Running')).url;
  await setSessionState(namespace, name, 'hibernated');
  await waitSessionPhase(namespace, name, 'Hibernated');
  await setSessionState(namespace, name, 'terminated');
  await waitSessionPhase(namespace, name, 'Terminated');
  await waitSessionChildrenGone(namespace, name);
  const claim = await admin.core.readNamespacedPersistentVolumeClaim({
    namespace,
    name: homeClaimName(user),
  });
  expect(claim.metadata?.name).toBe(homeClaimName(user));
  const template = (await custom.getNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'templates',
    name: 'firefox',
  })) as {
    status?: { valid?: boolean };
  };
  expect(template.status?.valid).toBe(true);
  return url;
}

describe('least-privilege RBAC, cluster scope (ClusterRoles)', () => {
  const release = new Release('rbac', []);
  let elsewhere: string;

  beforeAll(async () => {
    // Sessions live in a namespace of their own (the chart refuses the release namespace); the
    // catalog goes there.
    elsewhere = await createNamespace('rbac-other');
    await release.install([`sessionNamespaces={${elsewhere}}`]);
  });

  afterAll(async () => {
    await release.uninstall();
    if (elsewhere) await deleteNamespace(elsewhere);
  });

  for (const component of COMPONENTS) {
    it(`${component}: may do exactly its job, in any namespace, and nothing more`, async () => {
      const kubeconfig = release.kubeconfigs[component];
      expect(await decisions(kubeconfig, ALLOWED[component], elsewhere)).toEqual(
        everything(ALLOWED[component], true),
      );
      expect(await decisions(kubeconfig, FORBIDDEN[component], elsewhere)).toEqual(
        everything(FORBIDDEN[component], false),
      );
      // The token really is the ServiceAccount's: whoami answers with its name.
      const whoami = await kubectl([
        'auth',
        'whoami',
        '--kubeconfig',
        kubeconfig,
        '-o',
        'jsonpath={.status.userInfo.username}',
      ]);
      expect(whoami.stdout).toBe(
        `system:serviceaccount:${release.namespace}:${release.name}-streamspace-${component}`,
      );
    });
  }

  it('the real services, each with only its own token and the chart’s settings, run a session in another namespace', async () => {
    const scope = { WATCH_NAMESPACE: elsewhere };
    const running = [
      await release.start('watcher', scope),
      await release.start('reconciler', scope),
      await release.start('idle-reaper', scope),
    ];
    // The chart's default ingress domain, host pattern and TLS reached the reconciler. Plain user
    // names: the chart's default auth.annotationValidation refuses '@' (desktop-auth.test.ts).
    expect(await sessionLifecycle(elsewhere, 'rbac-desk', 'rita')).toBe(
      `https://rbac-desk.${elsewhere}.streamspace.example.com/`,
    );
    for (const service of running) expectNoRefusals(service);
  });

  it('the real metrics service, with only its own token, reads the cluster and serves /metrics', async () => {
    const metrics = await release.start('metrics', { WATCH_NAMESPACE: elsewhere });
    const { status, body } = await metrics.get('/metrics');
    expect(status).toBe(200);
    expect(body).toContain('streamspace_');
    expectNoRefusals(metrics);
  });
});

describe('least-privilege RBAC, namespaces scope (Roles)', () => {
  const release = new Release('rbac-ns', ['rbac.scope=namespaces', 'ingress.domain=team.example.org']);
  /** The two namespaces that host Sessions. */
  let desks: string;
  let moreDesks: string;
  let other: string;

  beforeAll(async () => {
    desks = await createNamespace('rbac-ns-desks');
    moreDesks = await createNamespace('rbac-ns-more');
    other = await createNamespace('rbac-ns-other');
    await release.install([`sessionNamespaces={${desks},${moreDesks}}`]);
  });

  afterAll(async () => {
    await release.uninstall();
    for (const namespace of [desks, moreDesks, other]) if (namespace) await deleteNamespace(namespace);
  });

  it('gives each service its verbs in the session namespaces only: not in its own, not in another, not cluster-wide', async () => {
    const clusterRoles = await kubectl([
      'get',
      'clusterroles',
      '-o',
      'name',
      '-l',
      `app.kubernetes.io/instance=${release.name},app.kubernetes.io/component`,
    ]);
    expect(clusterRoles.stdout.trim()).toBe('');
    for (const component of COMPONENTS) {
      const kubeconfig = release.kubeconfigs[component];
      for (const namespace of [desks, moreDesks])
        expect(await decisions(kubeconfig, ALLOWED[component], namespace)).toEqual(
          everything(ALLOWED[component], true),
        );
      // Not even in the release namespace: the services read nothing there through the API.
      for (const elsewhere of [other, release.namespace])
        expect(await decisions(kubeconfig, ALLOWED[component], elsewhere)).toEqual(
          everything(ALLOWED[component], false),
        );
      expect(await decisions(kubeconfig, FORBIDDEN[component], desks)).toEqual(
        everything(FORBIDDEN[component], false),
      );
      const clusterWide = ALLOWED[component].filter((s) => s.startsWith('list ') || s.startsWith('watch '));
      expect(await decisions(kubeconfig, clusterWide, undefined)).toEqual(everything(clusterWide, false));
    }
  });

  it('the real services, with namespaced tokens and the chart’s settings alone, run sessions in both their namespaces', async () => {
    // No WATCH_NAMESPACE added here: the chart sets it in namespaces scope (both namespaces, each
    // listed and watched by itself: no cluster-wide list is allowed).
    const running = [
      await release.start('watcher'),
      await release.start('reconciler'),
      await release.start('idle-reaper'),
      await release.start('metrics'),
    ];
    for (const namespace of [desks, moreDesks])
      expect(await sessionLifecycle(namespace, 'team-desk', 'tom')).toBe(
        `https://team-desk.${namespace}.team.example.org/`,
      );
    for (const service of running) expectNoRefusals(service);
  });
});
