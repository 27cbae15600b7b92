import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { reaperEnvSchema } from '../../services/idle-reaper/src/reaper-config.js';
import { createNamespace, deleteNamespace, eventually, installCrds, kube, kubectl, repo } from './harness.js';
import {
  COMPONENTS,
  chartDir,
  find,
  helm,
  helmBinary,
  type K8sObject,
  NATS_AUTH_VALUES,
  objects,
  ok,
  run,
  template,
} from './helm.js';

/**
 * The Helm chart (deploy/helm/streamspace) on the real control plane: lint, render, install
 * (every workload Available — KWOK runs the pods without their images), upgrade with changed
 * values, uninstall. Also: the chart's copies of crds/ and the catalog, and the plain manifests,
 * are in step with their sources.
 */

const k = kube();

/** Where a service's own source lives (the chart's variables must be read there or in packages/shared). */
function sourceOf(component: string): string {
  return component === 'shared' ? `${repo}/packages/shared/src` : `${repo}/services/${component}/src`;
}

describe('the chart, rendered', () => {
  beforeAll(() => {
    helmBinary();
  });

  it('passes helm lint, with the default values and with every option turned on', async () => {
    ok(await helm(['lint', chartDir, '--strict', '--set', NATS_AUTH_VALUES]), 'helm lint');
    ok(
      await helm([
        'lint',
        chartDir,
        '--strict',
        '--set',
        'rbac.scope=namespaces,sessionNamespaces={desktops},reconciler.autoscaling.enabled=true,reconciler.autoscaling.targetMemoryUtilizationPercentage=80',
        '--set',
        'metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true,metrics.grafanaDashboard.enabled=true,metrics.userLabel=true,nats.existingSecret=nats-auth,nats.secretKeys.user=user,nats.secretKeys.password=password,nats.sharedCredentials=true',
        '--set',
        'nats.tls.existingSecret=nats-tls,nats.tls.certKey=tls.crt,nats.tls.keyKey=tls.key,idleReaper.activityToken.existingSecret=activity',
        '--set',
        'networkPolicy.activityFrom[0].namespaceSelector.matchLabels.streamspace=sessions,networkPolicy.apiServer.cidrs={10.0.0.1/32}',
      ]),
      'helm lint (all options)',
    );
  });

  it('rejects values that cannot work, with a message naming them', async () => {
    const bad = await helm(['template', 'ss', chartDir, '--set', 'rbac.scope=everywhere']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/rbac\/scope|rbac.scope/);
    const badDuration = await helm([
      'template',
      'ss',
      chartDir,
      '--set',
      'sessions.startupDeadline=5 minutes',
    ]);
    expect(badDuration.stderr).toMatch(/startupDeadline/);
    // Values the services would refuse at start (a watch timeout or the reaper's flush interval of
    // 0, which is also its restart grace; no executors): the chart says so first, naming the value.
    for (const [set, value, name] of [
      ['--set-string', 'watcher.watch.answerTimeout=0', 'answerTimeout'],
      ['--set-string', 'idleReaper.activityFlushInterval=0', 'activityFlushInterval'],
      ['--set', 'idleReaper.executorConcurrency=0', 'executorConcurrency'],
      // Durations in the right form but below the shortest their service takes.
      ['--set-string', 'idleReaper.memberTtl=0s', 'idleReaper.memberTtl=0s is too short: it must be at least 1s'],
      ['--set-string', 'idleReaper.activityFlushInterval=99ms', 'at least 100ms'],
      ['--set-string', 'reconciler.pinTimeout=2s999ms', 'reconciler.pinTimeout=2s999ms is too short'],
      ['--set-string', 'watcher.resyncInterval=500ms', 'at least 1s (or 0 to turn it off)'],
      ['--set-string', 'watcher.watch.timeout=0s', 'watcher.watch.timeout'],
    ] as const) {
      const refused = await helm(['template', 'ss', chartDir, '--set', NATS_AUTH_VALUES, set, value]);
      expect(refused.code, value).not.toBe(0);
      expect(refused.stderr, value).toMatch(name);
    }
    // The shortest each takes, and 0 where it turns the setting off, render.
    const shortest = await template(
      [],
      [
        '--set-string',
        'idleReaper.memberTtl=1s,idleReaper.activityFlushInterval=100ms,reconciler.pinTimeout=3s,watcher.resyncInterval=0,watcher.eventsMaxAge=0s,watcher.watch.timeout=1s',
      ],
    );
    expect(find(shortest, 'ConfigMap', '-idle-reaper').data.REAPER_MEMBER_TTL).toBe('1s');
    expect(find(shortest, 'ConfigMap', '-watcher').data).toMatchObject({ PIN_TIMEOUT: '3s', RESYNC_INTERVAL: '0' });
    const orphanKey = await helm(['template', 'ss', chartDir, '--set', 'nats.secretKeys.creds=nats.creds']);
    expect(orphanKey.stderr).toContain('set nats.existingSecret too');
  });

  it('refuses to install without NATS authentication unless nats.insecure is set, and shares one credential only on request', async () => {
    const open = await helm(['template', 'ss', chartDir]);
    expect(open.code).not.toBe(0);
    expect(open.stderr).toMatch(
      /NATS authentication is not configured for the (watcher|reconciler|idle-reaper|metrics)/,
    );
    expect(open.stderr).toMatch(/nats\.auth\.existingSecret/);
    expect(open.stderr).toMatch(/nats\.insecure=true/);
    const shared = await helm([
      'template',
      'ss',
      chartDir,
      '--set',
      'nats.existingSecret=nats-auth,nats.secretKeys.user=user,nats.secretKeys.password=password',
    ]);
    expect(shared.code).not.toBe(0);
    expect(shared.stderr).toMatch(/one shared NATS credential.*nats\.sharedCredentials=true/);
    // Explicitly insecure: it renders, and no service is given NATS credentials.
    const insecure = objects(
      ok(await helm(['template', 'ss', chartDir, '--set', 'nats.insecure=true']), 'insecure'),
    );
    for (const component of COMPONENTS) {
      const env = find(insecure, 'Deployment', `-${component}`).spec.template.spec.containers[0].env;
      expect(env.map((e: { name: string }) => e.name)).not.toContain('NATS_USER');
    }
    // The services switched off (scripts/up runs them as processes): nothing to authenticate.
    ok(
      await helm([
        'template',
        'ss',
        chartDir,
        '--set',
        'watcher.enabled=false,reconciler.enabled=false,idleReaper.enabled=false,metrics.enabled=false',
      ]),
      'no services',
    );
  });

  it('gives each service its own NATS user from nats.auth (password or creds file)', async () => {
    const rendered = await template([
      'nats.auth.existingSecret=nats-users,nats.auth.metrics.credsKey=metrics.creds',
      'nats.auth.reconciler.existingSecret=reconciler-nats',
    ]);
    const envOf = (component: string) =>
      Object.fromEntries(
        find(rendered, 'Deployment', `-${component}`).spec.template.spec.containers[0].env.map(
          (e: { name: string; value?: string; valueFrom?: unknown }) => [e.name, e.value ?? e.valueFrom],
        ),
      );
    expect(envOf('watcher')).toMatchObject({
      NATS_USER: 'streamspace-watcher',
      NATS_PASSWORD: { secretKeyRef: { name: 'nats-users', key: 'watcher' } },
    });
    expect(envOf('reconciler')).toMatchObject({
      NATS_USER: 'streamspace-reconciler',
      NATS_PASSWORD: { secretKeyRef: { name: 'reconciler-nats', key: 'reconciler' } },
    });
    expect(envOf('idle-reaper')).toMatchObject({
      NATS_USER: 'streamspace-idle-reaper',
      NATS_PASSWORD: { secretKeyRef: { name: 'nats-users', key: 'idle-reaper' } },
    });
    const metrics = envOf('metrics');
    expect(metrics).toMatchObject({ NATS_CREDS_FILE: '/etc/streamspace/nats-creds/metrics.creds' });
    expect(metrics.NATS_USER).toBeUndefined();
    const metricsPod = find(rendered, 'Deployment', '-metrics').spec.template.spec;
    expect(metricsPod.volumes).toContainEqual(
      expect.objectContaining({
        name: 'nats-creds',
        secret: expect.objectContaining({
          secretName: 'nats-users',
          items: [{ key: 'metrics.creds', path: 'metrics.creds' }],
        }),
      }),
    );
    // The watcher declares the partition consumers, so it is given their number and pin timeout.
    expect(find(rendered, 'ConfigMap', '-watcher').data.WORK_PARTITIONS).toBe('12');
    expect(find(rendered, 'ConfigMap', '-watcher').data.PIN_TIMEOUT).toBe('5s');
  });

  it('renders four hardened services within the resource budget, with probes', async () => {
    const rendered = await template(['sessionNamespaces={desktops}']);
    for (const component of COMPONENTS) {
      const deployment = find(rendered, 'Deployment', `-${component}`);
      const pod = deployment.spec.template.spec;
      const [container] = pod.containers;
      expect(container.args).toEqual([component]);
      expect(pod.serviceAccountName).toBe(deployment.metadata.name);
      expect(pod.securityContext).toMatchObject({
        runAsNonRoot: true,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(container.securityContext).toMatchObject({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
      // The plan's budget: under 100m CPU and 100 MB memory per service — except the watcher,
      // which holds every object in memory (values.yaml, BENCHMARKS.md) and gets a heap to match.
      if (component === 'watcher') {
        expect(container.resources.requests).toEqual({ cpu: '50m', memory: '128Mi' });
        expect(container.resources.limits.memory).toBe('192Mi');
        expect(container.command).toContain('--max-old-space-size=144');
      } else {
        expect(container.resources.requests).toEqual({ cpu: '50m', memory: '64Mi' });
        expect(container.resources.limits.memory).toBe('100Mi');
      }
      expect(deployment.spec.template.metadata.annotations).toMatchObject({
        'prometheus.io/scrape': 'true',
        'prometheus.io/path': '/metrics',
      });
      const config = find(rendered, 'ConfigMap', `-${component}`);
      expect(config.data.HTTP_HOST).toBe('0.0.0.0');
      expect(container.ports[0].containerPort).toBe(Number(config.data.HTTP_PORT));
      find(rendered, 'PodDisruptionBudget', `-${component}`);
      find(rendered, 'Service', `-${component}`);
      find(rendered, 'ServiceAccount', `-${component}`);
      // Metrics reads nothing of the API server (its gauges come from the shared state on NATS).
      const rules = find(rendered, 'ClusterRole', `-${component}`).rules;
      if (component === 'metrics') expect(rules).toEqual([]);
      else expect(rules.length).toBeGreaterThan(0);
      expect(find(rendered, 'ClusterRoleBinding', `-${component}`).subjects).toEqual([
        { kind: 'ServiceAccount', name: deployment.metadata.name, namespace: 'streamspace' },
      ]);
    }
    expect(rendered.filter((o) => o.kind === 'Template')).toHaveLength(22);
    // The catalog goes where Sessions live, never beside the control plane.
    expect(
      rendered.filter((o) => o.kind === 'Template').every((o) => o.metadata.namespace === 'desktops'),
    ).toBe(true);
    const policy = find(rendered, 'NetworkPolicy', 'ss-streamspace');
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(policy.spec.ingress[0].ports).toEqual([{ protocol: 'TCP', port: 'http' }]);
    expect(rendered.some((o) => o.kind === 'HorizontalPodAutoscaler' || o.kind === 'ServiceMonitor')).toBe(
      false,
    );
  });

  it('puts nodeArgs on the node command line of the image: the idle reaper, the workers and metrics without the optimizing compiler, the watcher with a larger heap', async () => {
    // The command replaces the image's ENTRYPOINT, so it must name the same script.
    const entrypoint = JSON.parse(
      /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(`${repo}/Dockerfile`, 'utf8'))?.[1] ?? '[]',
    ) as string[];
    expect(entrypoint).toEqual(['node', '/app/entrypoint.mjs']);
    const command = (rendered: Awaited<ReturnType<typeof template>>, component: string) =>
      find(rendered, 'Deployment', `-${component}`).spec.template.spec.containers[0].command;

    const defaults = await template();
    // The idle reaper, the workers and metrics run without the optimizing compiler; the watcher
    // keeps it, with its heap raised past nodeOptions' (command-line flags win over NODE_OPTIONS).
    const withoutOptimizer = [
      'node',
      '--max-semi-space-size=1',
      '--no-opt',
      '--optimize-for-size',
      '--no-expose-wasm',
      '/app/entrypoint.mjs',
    ];
    expect(command(defaults, 'metrics')).toEqual(withoutOptimizer);
    // The workers, the idle reaper and the watcher also run with one V8 background thread (less
    // memory at peak).
    expect(command(defaults, 'idle-reaper')).toEqual([
      ...withoutOptimizer.slice(0, -1),
      '--v8-pool-size=1',
      '/app/entrypoint.mjs',
    ]);
    // The workers and the watcher also drop compiled code unused since the last full collection.
    const flushUnused = ['--bytecode-old-age=1', '--flush-baseline-code'];
    expect(command(defaults, 'reconciler')).toEqual([
      ...withoutOptimizer.slice(0, -1),
      '--v8-pool-size=1',
      ...flushUnused,
      '/app/entrypoint.mjs',
    ]);
    expect(command(defaults, 'watcher')).toEqual([
      'node',
      '--max-old-space-size=144',
      '--max-semi-space-size=1',
      '--optimize-for-size',
      '--no-expose-wasm',
      '--v8-pool-size=1',
      ...flushUnused,
      '/app/entrypoint.mjs',
    ]);

    const changed = await template([
      'nodeArgs=--max-lazy',
      'idleReaper.nodeArgs=--stack-size=900 --lite-mode',
      'metrics.nodeArgs=',
    ]);
    expect(command(changed, 'idle-reaper')).toEqual([
      'node',
      '--stack-size=900',
      '--lite-mode',
      '/app/entrypoint.mjs',
    ]);
    // The global nodeArgs reach a service without its own (metrics' emptied).
    expect(command(changed, 'metrics')).toEqual(['node', '--max-lazy', '/app/entrypoint.mjs']);
  });

  it('ships the alerts and the dashboard of deploy/monitoring on request', async () => {
    const rendered = await template([
      'metrics.prometheusRule.enabled=true,metrics.grafanaDashboard.enabled=true',
    ]);
    const rule = find(rendered, 'PrometheusRule', 'ss-streamspace');
    const rules = parse(readFileSync(`${repo}/deploy/monitoring/prometheus-rules.yaml`, 'utf8')) as {
      groups: unknown[];
    };
    expect(rule.spec).toEqual({ groups: rules.groups });
    const dashboard = find(rendered, 'ConfigMap', '-dashboard');
    expect(dashboard.metadata.labels?.grafana_dashboard).toBe('1');
    const json = JSON.parse(
      (dashboard.data as Record<string, string>)['streamspace-dashboard.json'] as string,
    );
    expect(json).toEqual(
      JSON.parse(readFileSync(`${repo}/deploy/monitoring/grafana/streamspace-dashboard.json`, 'utf8')),
    );
    const plain = await template();
    expect(plain.some((o) => o.kind === 'PrometheusRule' || o.metadata.name.endsWith('-dashboard'))).toBe(
      false,
    );
  });

  it('secures desktops by default (sign-in, TLS, a NetworkPolicy each, a capability allow-list), each one a value', async () => {
    const data = (rendered: K8sObject[]) =>
      find(rendered, 'ConfigMap', '-reconciler').data as Record<string, string>;
    const defaults = data(await template());
    expect(defaults).toMatchObject({
      INGRESS_TLS: 'true',
      AUTH_URL: 'http://oauth2-proxy.oauth2-proxy.svc.cluster.local/oauth2/auth',
      AUTH_SIGNIN_URL: 'https://auth.streamspace.example.com/oauth2/start',
      AUTH_RESPONSE_HEADERS: 'X-Auth-Request-User,X-Auth-Request-Email,X-Forwarded-User,X-Forwarded-Email',
      AUTH_ANNOTATION_VALIDATION: 'true',
      DESKTOP_NETWORK_POLICY: 'true',
      DESKTOP_ALLOWED_CAPABILITIES: 'CHOWN,DAC_OVERRIDE,FOWNER,KILL,SETGID,SETUID',
    });
    expect(JSON.parse(defaults.DESKTOP_INGRESS_FROM as string)).toEqual([
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } },
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'ingress-nginx' } },
      },
    ]);
    const changed = data(
      await template(
        [
          'auth.adminUsers={ops@example.com,root@example.com},auth.signinUrl=https://login.example.com/oauth2/start',
          'auth.annotationValidation=false',
          'ingress.tls.clusterIssuer=letsencrypt',
        ],
        ['--set-json', 'desktops.allowedCapabilities=[]'],
      ),
    );
    expect(changed).toMatchObject({
      AUTH_ADMIN_USERS: 'ops@example.com,root@example.com',
      AUTH_ANNOTATION_VALIDATION: 'false',
      AUTH_SIGNIN_URL: 'https://login.example.com/oauth2/start',
      INGRESS_CLUSTER_ISSUER: 'letsencrypt',
      DESKTOP_ALLOWED_CAPABILITIES: 'none',
    });
    // NATS authentication is given, so the refusal under test is the one about the admin users.
    const refused = await helm([
      'template',
      'ss',
      chartDir,
      '--set',
      NATS_AUTH_VALUES,
      '--set',
      'auth.adminUsers={ops@example.com}',
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(
      'auth.adminUsers: "ops@example.com" cannot be written into an ingress-nginx auth-url',
    );
    const open = data(
      await template(['auth.enabled=false,ingress.tls.enabled=false,desktops.networkPolicy.enabled=false']),
    );
    expect(open.AUTH_URL).toBeUndefined();
    expect(open.INGRESS_TLS).toBe('false');
    expect(open.DESKTOP_NETWORK_POLICY).toBe('false');
    expect(open.DESKTOP_INGRESS_FROM).toBeUndefined();
    // The reconciler may write the per-session NetworkPolicy (it reads it from the shared state,
    // which the watcher fills from its own watch of NetworkPolicies).
    const role = find(await template(), 'ClusterRole', '-reconciler') as unknown as {
      rules: { resources: string[]; verbs: string[] }[];
    };
    expect(role.rules.find((r) => r.resources.includes('networkpolicies'))?.verbs).toEqual([
      'create',
      'patch',
      'delete',
    ]);
    const watcher = find(await template(), 'ClusterRole', '-watcher') as unknown as {
      rules: { resources: string[]; verbs: string[] }[];
    };
    expect(watcher.rules.find((r) => r.resources.includes('networkpolicies'))?.verbs).toEqual([
      'list',
      'watch',
    ]);
  });

  it('maps every platform setting onto the variables the services read', async () => {
    const rendered = await template(
      [
        'ingress.domain=desktops.example.org,ingress.className=nginx,ingress.tlsSecret=wildcard-tls',
        'home.storageClass=cephfs,home.size=20Gi,home.accessMode=ReadWriteOnce',
        'sessions.defaultIdleTimeout=45m,sessions.defaultMaxDuration=12h,sessions.startupDeadline=3m',
        'metrics.userLabel=true,idleReaper.activityToken.existingSecret=activity,logLevel=debug',
        'watcher.watch.timeout=10m,watcher.watch.silenceTimeout=11m,watcher.watch.answerTimeout=3m',
        'watcher.list.pageSize=250,watcher.list.concurrency=1,nats.replicas=3',
        'idleReaper.lastActivityWriteInterval=5m,idleReaper.activityFlushInterval=10s,idleReaper.memberTtl=3s',
        'idleReaper.executorConcurrency=64,idleReaper.kubeMaxConnections=24',
      ],
      // --set reads {a,b} as a list; the host pattern is a literal string.
      ['--set-literal', 'ingress.hostPattern={session}.{namespace}.desktops.{domain}'],
    );
    const data = (component: string) =>
      find(rendered, 'ConfigMap', `-${component}`).data as Record<string, string>;
    expect(data('reconciler')).toMatchObject({
      INGRESS_DOMAIN: 'desktops.example.org',
      INGRESS_HOST_PATTERN: '{session}.{namespace}.desktops.{domain}',
      INGRESS_CLASS: 'nginx',
      INGRESS_TLS_SECRET: 'wildcard-tls',
      HOME_STORAGE_CLASS: 'cephfs',
      HOME_STORAGE_SIZE: '20Gi',
      HOME_ACCESS_MODE: 'ReadWriteOnce',
      STARTUP_DEADLINE: '3m',
      LOG_LEVEL: 'debug',
    });
    expect(data('idle-reaper')).toMatchObject({
      DEFAULT_IDLE_TIMEOUT: '45m',
      DEFAULT_MAX_SESSION_DURATION: '12h',
      ACTIVITY_TOKEN_FILE: '/etc/streamspace/activity-token/token',
      LAST_ACTIVITY_WRITE_INTERVAL: '5m',
      ACTIVITY_FLUSH_INTERVAL: '10s',
      REAPER_MEMBER_TTL: '3s',
      EXECUTOR_CONCURRENCY: '64',
      KUBE_MAX_CONNECTIONS: '24',
    });
    expect(data('metrics')).toMatchObject({ METRICS_USER_LABEL: 'true' });
    expect(data('watcher')).toMatchObject({
      RESYNC_INTERVAL: '30m',
      EVENTS_MAX_AGE: '24h',
      WATCH_TIMEOUT: '10m',
      WATCH_SILENCE_TIMEOUT: '11m',
      WATCH_ANSWER_TIMEOUT: '3m',
      LIST_PAGE_SIZE: '250',
      LIST_CONCURRENCY: '1',
      NATS_REPLICAS: '3',
    });
    expect(data('watcher').WATCH_NAMESPACE).toBeUndefined();
    // The watcher alone declares the topology, so the replica count is its setting only (by
    // default it asks the server).
    for (const component of COMPONENTS.filter((c) => c !== 'watcher'))
      expect(data(component).NATS_REPLICAS, component).toBeUndefined();
    const defaults = await template();
    expect(find(defaults, 'ConfigMap', '-watcher').data).toMatchObject({ NATS_REPLICAS: 'auto' });
    // The reaper's scale settings default in the chart to what the reaper itself defaults to.
    const reaperDefaults = find(defaults, 'ConfigMap', '-idle-reaper').data as Record<string, string>;
    const reaperChart = reaperEnvSchema.parse(reaperDefaults);
    const reaperOwn = reaperEnvSchema.parse({});
    for (const name of [
      'LAST_ACTIVITY_WRITE_INTERVAL',
      'ACTIVITY_FLUSH_INTERVAL',
      'REAPER_MEMBER_TTL',
      'EXECUTOR_CONCURRENCY',
      'KUBE_MAX_CONNECTIONS',
    ] as const) {
      expect(reaperDefaults[name], name).toBeDefined();
      expect(reaperChart[name], name).toBe(reaperOwn[name]);
    }
    const badReplicas = await helm([
      'template',
      'ss',
      chartDir,
      '--set',
      `${NATS_AUTH_VALUES},nats.replicas=7`,
    ]);
    expect(badReplicas.code).not.toBe(0);
    expect(badReplicas.stderr).toMatch(/replicas/);

    // Every variable the chart sets is read by the service it is given to.
    for (const component of COMPONENTS) {
      const deployment = find(rendered, 'Deployment', `-${component}`);
      const names = [
        ...Object.keys(data(component)),
        ...deployment.spec.template.spec.containers[0].env.map((e: { name: string }) => e.name),
      ];
      const source = (await run('sh', ['-c', `cat ${sourceOf(component)}/*.ts ${sourceOf('shared')}/*.ts`]))
        .stdout;
      const unread = names.filter(
        (name) => name !== 'NODE_OPTIONS' && !new RegExp(`\\b${name}\\b`).test(source),
      );
      expect(unread, `${component} does not read these variables the chart sets`).toEqual([]);
    }
  });

  it('switches to namespaced Roles, NATS secrets and TLS, autoscaling and a ServiceMonitor on request', async () => {
    const rendered = await template([
      'rbac.scope=namespaces,sessionNamespaces={desktops},catalog.exclude={blender,kdenlive}',
      'reconciler.autoscaling.enabled=true,metrics.serviceMonitor.enabled=true,metrics.serviceMonitor.labels.release=prom',
      'nats.existingSecret=nats-auth,nats.secretKeys.url=url,nats.secretKeys.creds=nats.creds,nats.sharedCredentials=true,nats.auth.existingSecret=',
      'nats.tls.existingSecret=nats-tls,nats.tls.certKey=tls.crt,nats.tls.keyKey=tls.key',
    ]);
    expect(rendered.some((o) => o.kind === 'ClusterRole' && o.metadata.name.includes('-watcher'))).toBe(
      false,
    );
    for (const component of COMPONENTS) {
      const role = find(rendered, 'Role', `-${component}`);
      expect(role.metadata.namespace).toBe('desktops');
      expect(find(rendered, 'RoleBinding', `-${component}`).metadata.namespace).toBe('desktops');
      expect(find(rendered, 'ConfigMap', `-${component}`).data.WATCH_NAMESPACE).toBe('desktops');
      const container = find(rendered, 'Deployment', `-${component}`).spec.template.spec.containers[0];
      const env = Object.fromEntries(
        container.env.map((e: { name: string; value?: string; valueFrom?: unknown }) => [
          e.name,
          e.value ?? e.valueFrom,
        ]),
      );
      expect(env).toMatchObject({
        NATS_URL: { secretKeyRef: { name: 'nats-auth', key: 'url' } },
        NATS_CREDS_FILE: '/etc/streamspace/nats-creds/nats.creds',
        NATS_TLS_CA: '/etc/streamspace/nats-tls/ca.crt',
        NATS_TLS_CERT: '/etc/streamspace/nats-tls/tls.crt',
        NATS_TLS_KEY: '/etc/streamspace/nats-tls/tls.key',
      });
      expect(container.volumeMounts.map((m: { mountPath: string }) => m.mountPath)).toEqual(
        expect.arrayContaining(['/etc/streamspace/nats-creds', '/etc/streamspace/nats-tls']),
      );
    }
    const templates = rendered.filter((o) => o.kind === 'Template');
    expect(templates).toHaveLength(20);
    expect(templates.every((t) => t.metadata.namespace === 'desktops')).toBe(true);
    expect(find(rendered, 'Deployment', '-reconciler').spec.replicas).toBeUndefined();
    expect(find(rendered, 'HorizontalPodAutoscaler', '-reconciler').spec).toMatchObject({
      minReplicas: 2,
      maxReplicas: 10,
    });
    expect(find(rendered, 'ServiceMonitor', 'ss-streamspace').metadata.labels?.release).toBe('prom');
  });

  it('documents every value in docs/deploy.md', () => {
    const documented = new Set(
      [...readFileSync(`${repo}/docs/deploy.md`, 'utf8').matchAll(/`([^`\s]+)`/g)].map((m) => m[1]),
    );
    const services = new Set(['watcher', 'reconciler', 'idleReaper', 'metrics']);
    const leaves = (value: unknown, path: string[]): string[][] =>
      value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0
        ? Object.entries(value).flatMap(([k, v]) => leaves(v, [...path, k]))
        : [path];
    const undocumented = leaves(parse(readFileSync(`${chartDir}/values.yaml`, 'utf8')), [])
      .filter((path) => {
        const candidates = path.map((_, i) => path.slice(0, i + 1).join('.'));
        if (services.has(path[0] as string))
          candidates.push(`<service>.${path.slice(1).join('.')}`, path.slice(1).join('.'));
        return !candidates.some((c) => documented.has(c));
      })
      .map((path) => path.join('.'));
    expect(undocumented).toEqual([]);
  });

  it('carries exact copies of crds/ and the catalog, and the plain manifests are a fresh render', async () => {
    ok(await run(`${repo}/scripts/sync-chart`, ['--check']), 'scripts/sync-chart --check');
    ok(await run(`${repo}/scripts/render-manifests`, ['--check']), 'scripts/render-manifests --check');
    const manifests = objects(readFileSync(`${repo}/deploy/manifests/streamspace.yaml`, 'utf8'));
    expect(manifests.filter((o) => o.kind === 'CustomResourceDefinition')).toHaveLength(2);
    expect(manifests.filter((o) => o.kind === 'Deployment')).toHaveLength(4);
    expect(manifests.some((o) => o.kind === 'Template')).toBe(false);
    const catalog = objects(readFileSync(`${repo}/deploy/manifests/catalog.yaml`, 'utf8'));
    expect(catalog.filter((o) => o.kind === 'Template')).toHaveLength(22);
  });
});

describe('the chart on the real control plane', () => {
  let namespace: string;
  /** Where the users' Sessions (and so the catalog) live: never the release namespace. */
  let sessionNamespace: string;
  const release = `ss-${randomBytes(3).toString('hex')}`;
  const fullname = `${release}-streamspace`;

  beforeAll(async () => {
    helmBinary();
    await installCrds();
    namespace = await createNamespace('helm');
    sessionNamespace = await createNamespace('helm-desktops');
  });

  afterAll(async () => {
    await helm(['uninstall', release, '--namespace', namespace, '--wait']);
    if (namespace) await deleteNamespace(namespace);
    if (sessionNamespace) await deleteNamespace(sessionNamespace);
  });

  async function deploymentsAvailable(): Promise<Record<string, number>> {
    const list = await k.apps.listNamespacedDeployment({
      namespace,
      labelSelector: `app.kubernetes.io/instance=${release}`,
    });
    const available: Record<string, number> = {};
    for (const d of list.items) {
      const condition = d.status?.conditions?.find((c) => c.type === 'Available');
      expect(condition?.status, `${d.metadata?.name} Available`).toBe('True');
      expect(d.status?.availableReplicas, d.metadata?.name).toBe(d.spec?.replicas);
      expect(d.status?.observedGeneration).toBe(d.metadata?.generation);
      expect(d.status?.updatedReplicas, d.metadata?.name).toBe(d.spec?.replicas);
      available[(d.metadata?.name ?? '').slice(fullname.length + 1)] = d.status?.availableReplicas ?? 0;
    }
    return available;
  }

  it('installs, and every workload becomes Available', async () => {
    // Each service's NATS password, where the chart's default nats.auth looks for it.
    ok(
      await kubectl([
        'create',
        'secret',
        'generic',
        'streamspace-nats-users',
        '-n',
        namespace,
        ...['watcher', 'reconciler', 'idle-reaper', 'metrics'].map(
          (id) => `--from-literal=${id}=${randomBytes(12).toString('hex')}`,
        ),
      ]),
      'kubectl create secret',
    );
    ok(
      await helm([
        'install',
        release,
        chartDir,
        '--namespace',
        namespace,
        '--set',
        `sessionNamespaces={${sessionNamespace}}`,
        '--set',
        NATS_AUTH_VALUES,
        '--wait',
        '--timeout',
        '90s',
      ]),
      'helm install',
    );
    expect(await eventually(deploymentsAvailable, 30_000)).toEqual({
      watcher: 2,
      reconciler: 2,
      'idle-reaper': 1,
      metrics: 1,
    });
    const names = await kubectl([
      'get',
      'serviceaccounts,services,configmaps,poddisruptionbudgets,networkpolicies',
      '-n',
      namespace,
      '-o',
      'name',
      '-l',
      `app.kubernetes.io/instance=${release}`,
    ]);
    for (const component of COMPONENTS) {
      expect(names.stdout).toContain(`serviceaccount/${fullname}-${component}`);
      expect(names.stdout).toContain(`poddisruptionbudget.policy/${fullname}-${component}`);
    }
    expect(names.stdout).toContain(`networkpolicy.networking.k8s.io/${fullname}`);
    const catalog = await kubectl(['get', 'templates', '-n', sessionNamespace, '-o', 'name']);
    expect(catalog.stdout.split('\n').filter(Boolean)).toHaveLength(22);
    expect((await kubectl(['get', 'templates', '-n', namespace, '-o', 'name'])).stdout.trim()).toBe('');
    const roles = await kubectl([
      'get',
      'clusterroles,clusterrolebindings',
      '-o',
      'name',
      '-l',
      `app.kubernetes.io/instance=${release}`,
    ]);
    expect(roles.stdout.split('\n').filter(Boolean)).toHaveLength(10);
  });

  it('upgrades with changed values: settings reach the pods, replicas and the catalog follow', async () => {
    const before = await k.apps.readNamespacedDeployment({ namespace, name: `${fullname}-reconciler` });
    const watcherBefore = await k.apps.readNamespacedDeployment({ namespace, name: `${fullname}-watcher` });
    ok(
      await helm([
        'upgrade',
        release,
        chartDir,
        '--namespace',
        namespace,
        '--wait',
        '--timeout',
        '90s',
        '--reuse-values',
        '--set',
        'reconciler.replicas=3,ingress.domain=desktops.example.org,sessions.startupDeadline=2m',
        '--set',
        'catalog.exclude={blender,kdenlive},metrics.enabled=false',
      ]),
      'helm upgrade',
    );
    expect(await eventually(deploymentsAvailable, 30_000)).toEqual({
      watcher: 2,
      reconciler: 3,
      'idle-reaper': 1,
    });
    const config = await k.core.readNamespacedConfigMap({ namespace, name: `${fullname}-reconciler` });
    expect(config.data).toMatchObject({ INGRESS_DOMAIN: 'desktops.example.org', STARTUP_DEADLINE: '2m' });
    const after = await k.apps.readNamespacedDeployment({ namespace, name: `${fullname}-reconciler` });
    // A changed setting rolls the service's pods (checksum/config); an unchanged service is left alone.
    expect(after.spec?.template.metadata?.annotations?.['checksum/config']).not.toBe(
      before.spec?.template.metadata?.annotations?.['checksum/config'],
    );
    const watcherAfter = await k.apps.readNamespacedDeployment({ namespace, name: `${fullname}-watcher` });
    expect(watcherAfter.metadata?.generation).toBe(watcherBefore.metadata?.generation);
    const templates = await kubectl(['get', 'templates', '-n', sessionNamespace, '-o', 'name']);
    expect(templates.stdout.split('\n').filter(Boolean)).toHaveLength(20);
    expect(templates.stdout).not.toContain('/blender');
    const gone = await kubectl(['get', 'deployment', `${fullname}-metrics`, '-n', namespace]);
    expect(gone.code).not.toBe(0);

    ok(
      await helm([
        'upgrade',
        release,
        chartDir,
        '--namespace',
        namespace,
        '--wait',
        '--timeout',
        '90s',
        '--reuse-values',
        '--set',
        'reconciler.autoscaling.enabled=true',
      ]),
      'helm upgrade (HPA)',
    );
    const hpa = await kubectl([
      'get',
      'hpa',
      `${fullname}-reconciler`,
      '-n',
      namespace,
      '-o',
      'jsonpath={.spec.minReplicas}-{.spec.maxReplicas}-{.spec.scaleTargetRef.name}',
    ]);
    expect(hpa.stdout).toBe(`2-10-${fullname}-reconciler`);
    const history = ok(
      await helm(['history', release, '--namespace', namespace, '-o', 'json']),
      'helm history',
    );
    expect((JSON.parse(history) as { status: string }[]).map((h) => h.status)).toEqual([
      'superseded',
      'superseded',
      'deployed',
    ]);
  });

  it('uninstalls everything it installed but the CRDs (and so the users’ Sessions)', async () => {
    ok(
      await helm(['uninstall', release, '--namespace', namespace, '--wait', '--timeout', '60s']),
      'helm uninstall',
    );
    await eventually(async () => {
      const left = await kubectl([
        'get',
        'deployments,services,configmaps,serviceaccounts,templates,pdb,networkpolicies,hpa',
        '-n',
        namespace,
        '-o',
        'name',
        '-l',
        `app.kubernetes.io/instance=${release}`,
      ]);
      expect(left.stdout.trim()).toBe('');
      const catalog = await kubectl(['get', 'templates', '-n', sessionNamespace, '-o', 'name']);
      expect(catalog.stdout.trim()).toBe('');
      const roles = await kubectl([
        'get',
        'clusterroles,clusterrolebindings',
        '-o',
        'name',
        '-l',
        `app.kubernetes.io/instance=${release}`,
      ]);
      expect(roles.stdout.trim()).toBe('');
    });
    const crds = await kubectl([
      'get',
      'crd',
      'sessions.stream.streamspace.io',
      'templates.stream.streamspace.io',
      '-o',
      'name',
    ]);
    expect(crds.stdout.split('\n').filter(Boolean)).toHaveLength(2);
  });
});
