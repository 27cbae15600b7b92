import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { homeClaimName } from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deployedValues,
  createNamespace,
  deleteNamespace,
  eventually,
  freePort,
  installCrds,
  kube,
  repo,
  VALUES_KEY,
} from './harness.js';
import { COMPONENTS, chartDir, helm, type K8sObject, objects, ok, type RunResult, run } from './helm.js';
import { parseMetrics } from './metrics-scrape.js';
import { type Engine, type PodContainer, podContainer, serviceHosts, volumeFiles } from './pod-container.js';
import { type PrivateNats, startPrivateNats } from './private-nats.js';
import {
  createSession,
  setSessionState,
  waitSessionChildrenGone,
  waitSessionPhase,
} from './session-steps.js';

/**
 * The image we ship, built and run for real: scripts/images builds it from the repository's
 * Dockerfile (Docker, or podman where no Docker engine answers), and each of the four services
 * runs as a container of it with exactly what the chart renders for its pod — command and args,
 * environment, V8 flags, read-only root filesystem, non-root user, dropped capabilities, the
 * memory limit, its volumes and a token of its own ServiceAccount (the chart's RBAC) mounted where
 * Kubernetes mounts it — against the test's cluster and NATS, with host networking. A Session
 * then goes through its life, and every container's probes and /metrics answer.
 *
 * A broken COPY, a file missing from the runtime stage, a wrong ENTRYPOINT, a write to the
 * read-only root filesystem, a user that cannot read its token, a heap over the memory limit:
 * each fails here.
 */

type Component = (typeof COMPONENTS)[number];

const IMAGE = 'localhost/streamspace';
const TAG = 'test';
const admin = kube();
const workdir = mkdtempSync(join(tmpdir(), 'streamspace-image-'));
const release = `img-${randomBytes(2).toString('hex')}`;

let engine: Engine;
let engineEnv: NodeJS.ProcessEnv = process.env;
let nats: PrivateNats | undefined;
let namespace = '';
/** Where the Sessions live: never the release namespace (the chart refuses it). */
let desks = '';
let installed = false;
const containers = {} as Record<Component, PodContainer & { name: string }>;

const engineRun = (args: string[]): Promise<RunResult> => run(engine, args, engineEnv);

/** Runs a command in a throwaway container of the image (no network), and returns its output. */
async function inImage(command: string, ...args: string[]): Promise<string> {
  const image = `${IMAGE}:${TAG}`;
  return ok(
    await engineRun(['run', '--rm', '--network', 'none', '--entrypoint', command, image, ...args]),
    `${command} in the image`,
  );
}

async function logsOf(name: string): Promise<string> {
  const { stdout, stderr } = await engineRun(['logs', '--tail', '40', name]);
  return `${stdout}${stderr}`;
}

async function get(component: Component, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${containers[component].port}${path}`);
  return { status: response.status, body: await response.text() };
}

/** The value of one metric (summed over its label sets) a container serves on /metrics. */
async function metric(component: Component, name: string): Promise<number> {
  const { status, body } = await get(component, '/metrics');
  expect(status).toBe(200);
  const samples = parseMetrics(body).filter((s) => s.name === name);
  if (samples.length === 0) throw new Error(`${component} serves no ${name}`);
  return samples.reduce((sum, s) => sum + s.value, 0);
}

/** A token of the ServiceAccount (TokenRequest API), laid out as the kubelet mounts it. */
async function serviceAccountDir(serviceAccount: string): Promise<string> {
  const request = await admin.core.createNamespacedServiceAccountToken({
    namespace,
    name: serviceAccount,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = request.status?.token;
  if (!token) throw new Error(`no token for ServiceAccount ${serviceAccount}`);
  const cluster = admin.kc.getCurrentCluster() as k8s.Cluster;
  const ca = cluster.caData
    ? Buffer.from(cluster.caData, 'base64').toString()
    : readFileSync(cluster.caFile as string, 'utf8');
  const dir = join(workdir, `sa-${serviceAccount}`);
  mkdirSync(dir, { recursive: true });
  // Root-owned and world-readable, as the kubelet projects them (defaultMode 0644).
  for (const [file, content] of Object.entries({ token, 'ca.crt': ca, namespace })) {
    writeFileSync(join(dir, file), content);
    chmodSync(join(dir, file), 0o644);
  }
  chmodSync(dir, 0o755);
  return dir;
}

function engineSettings(): void {
  engine = execFileSync(`${repo}/scripts/images`, ['engine'], { encoding: 'utf8' }).trim() as Engine;
  const exports = execFileSync(`${repo}/scripts/images`, ['env'], { encoding: 'utf8' });
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const match of exports.matchAll(/^export (\w+)='([^']*)'$/gm))
    env[match[1] as string] = match[2] as string;
  engineEnv = env;
}

/** The chart's values for this release: one namespace for Sessions, our image, our NATS, free ports. */
async function releaseValues(): Promise<string[]> {
  const values = [
    'rbac.scope=namespaces',
    `sessionNamespaces={${desks}}`,
    `image.repository=${IMAGE}`,
    `image.tag=${TAG}`,
    'image.pullPolicy=Never',
    `nats.url=${nats?.url}`,
  ];
  // Host networking: each service's port must be free on this machine.
  for (const component of COMPONENTS) values.push(`${VALUES_KEY[component]}.port=${await freePort()}`);
  // A chart that refuses to render without NATS authentication takes nats.insecure=true for a
  // test NATS without users (this one listens on loopback only).
  const natsValues = deployedValues().nats as Record<string, unknown> | undefined;
  if (natsValues && 'insecure' in natsValues) values.push('nats.insecure=true');
  return values;
}

async function startContainer(component: Component, rendered: K8sObject[]): Promise<void> {
  const deployment = rendered.find(
    (o) =>
      o.kind === 'Deployment' &&
      o.spec.template.metadata.labels?.['app.kubernetes.io/component'] === component,
  );
  if (!deployment) throw new Error(`the chart renders no Deployment for ${component}`);
  const pod = deployment.spec.template.spec;
  const name = `${release}-${component}`;
  // Secrets the pod references (none with the values above; read from the cluster when there are).
  const secretNames = new Set<string>();
  for (const c of pod.containers)
    for (const e of [...(c.env ?? []), ...(c.envFrom ?? [])]) {
      const ref = e.valueFrom?.secretKeyRef?.name ?? e.secretRef?.name;
      if (ref) secretNames.add(ref);
    }
  for (const v of pod.volumes ?? []) if (v.secret) secretNames.add(v.secret.secretName);
  const secrets: Record<string, Record<string, string>> = {};
  for (const secretName of secretNames) {
    const secret = await admin.core.readNamespacedSecret({ namespace, name: secretName });
    secrets[secretName] = Object.fromEntries(
      Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
    );
  }
  const server = new URL((admin.kc.getCurrentCluster() as k8s.Cluster).server);
  const inputs = {
    engine,
    rendered,
    secrets,
    serviceAccountDir: await serviceAccountDir(pod.serviceAccountName),
    apiServer: { host: server.hostname, port: server.port || '443' },
    volumeDirs: {} as Record<string, string>,
    name,
    hosts: serviceHosts(rendered, namespace),
  };
  for (const volume of pod.volumes ?? []) {
    if (!volume.secret && !volume.configMap) continue;
    const dir = join(workdir, `${name}-${volume.name}`);
    mkdirSync(dir, { recursive: true });
    for (const [file, content] of Object.entries(volumeFiles(volume, inputs))) {
      writeFileSync(join(dir, file), content);
      chmodSync(join(dir, file), 0o644);
    }
    inputs.volumeDirs[volume.name] = dir;
  }
  const container = podContainer(deployment, inputs);
  containers[component] = { ...container, name };
  ok(await engineRun(['run', '--detach', ...container.args]), `${engine} run ${component}`);
  await eventually(
    async () => {
      const state = await engineRun(['inspect', '--format', '{{.State.Running}}', name]);
      if (state.stdout.trim() !== 'true')
        throw new Error(`${component} is not running:\n${await logsOf(name)}`);
      const { status, body } = await get(component, container.readinessPath);
      if (status !== 200) throw new Error(`${component} not ready: ${body}`);
    },
    60_000,
    250,
  );
}

beforeAll(async () => {
  engineSettings();
  // The image, from the repository's Dockerfile (layers cached: seconds when nothing changed).
  execFileSync(`${repo}/scripts/images`, ['build'], {
    env: { ...process.env, IMAGE, TAG },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  await installCrds();
  nats = await startPrivateNats();
  namespace = await createNamespace('image');
  desks = await createNamespace('image-desks');
  const set = (await releaseValues()).flatMap((v) => ['--set', v]);
  // The chart's ServiceAccounts, RBAC (namespace scope), ConfigMaps and catalog, installed for
  // real; its Deployments' pods are KWOK's, the containers below stand in for them.
  ok(
    await helm([
      'install',
      release,
      chartDir,
      '--namespace',
      namespace,
      ...set,
      '--wait',
      '--timeout',
      '90s',
    ]),
    'helm install',
  );
  installed = true;
  const rendered = objects(
    ok(await helm(['template', release, chartDir, '--namespace', namespace, ...set]), 'helm template'),
  );
  for (const component of COMPONENTS) await startContainer(component, rendered);
});

afterAll(async () => {
  for (const { name } of Object.values(containers)) await engineRun(['rm', '--force', name]);
  await nats?.stop();
  if (installed) await helm(['uninstall', release, '--namespace', namespace, '--wait']);
  if (namespace) await deleteNamespace(namespace);
  if (desks) await deleteNamespace(desks);
  rmSync(workdir, { recursive: true, force: true });
});

describe('the image, built from the Dockerfile', () => {
  it('carries the OCI labels, runs as uid 1000, and holds production dependencies only, with their SBOM', async () => {
    const image = `${IMAGE}:${TAG}`;
    const labels = JSON.parse(
      ok(await engineRun(['image', 'inspect', '--format', '{{json .Config.Labels}}', image]), 'inspect'),
    ) as Record<string, string>;
    expect(labels['org.opencontainers.image.revision']).toBe(
      execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repo, encoding: 'utf8' }).trim(),
    );
    expect(labels['org.opencontainers.image.version']).toBe(TAG);
    expect(labels['org.opencontainers.image.source']).toMatch(/^https:\/\//);
    expect(labels['org.opencontainers.image.licenses']).toBe('Apache-2.0');
    expect(
      ok(await engineRun(['image', 'inspect', '--format', '{{.Config.User}}', image]), 'inspect').trim(),
    ).toBe('1000:1000');
    const listing = await inImage('ls', '/app/node_modules/.pnpm');
    expect(listing).toMatch(/^@nats-io\+nats-core@/m);
    for (const devOnly of ['typescript@', 'vitest@', '@biomejs+', '@kubernetes+client-node@'])
      expect(listing, devOnly).not.toContain(devOnly);
    const sbom = JSON.parse(await inImage('cat', '/app/sbom.cdx.json')) as {
      bomFormat: string;
      components: { name: string; version: string; purl?: string }[];
    };
    expect(sbom.bomFormat).toBe('CycloneDX');
    const purls = sbom.components.map((c) => c.purl ?? '');
    expect(purls).toContain(
      `pkg:npm/%40nats-io/nats-core@${JSON.parse(readFileSync(`${repo}/node_modules/@nats-io/nats-core/package.json`, 'utf8')).version}`,
    );
    expect(purls.filter((p) => p.includes('kubernetes/client-node') || p.includes('typescript'))).toEqual([]);
  });
});

describe('the four services, each a container with the settings the chart renders', () => {
  for (const component of COMPONENTS) {
    it(`${component}: runs as the non-root user, with no capabilities, no privilege escalation, a read-only root and the memory limit`, async () => {
      const { name, uid, memoryLimitBytes } = containers[component];
      // The service's own process (PID 1), as the kernel sees it.
      const status = ok(await engineRun(['exec', name, 'cat', '/proc/1/status']), 'exec');
      const field = (key: string) => new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim();
      expect(field('Uid')?.split(/\s+/)[0]).toBe(String(uid));
      expect(field('CapEff')).toBe('0000000000000000');
      expect(field('CapBnd')).toBe('0000000000000000');
      expect(field('NoNewPrivs')).toBe('1');
      const write = await engineRun(['exec', '--user', '0', name, 'touch', '/probe']);
      expect(write.code).not.toBe(0);
      expect(write.stderr).toMatch(/Read-only file system/);
      // The pod's emptyDir at /tmp is the one writable place.
      expect((await engineRun(['exec', name, 'touch', '/tmp/probe'])).code).toBe(0);
      expect(memoryLimitBytes).toBeGreaterThan(0);
      // The limit the kernel enforces on the container's cgroup (v2, or v1's memory controller).
      const cgroupLimit = ok(
        await engineRun([
          'exec',
          name,
          'sh',
          '-c',
          'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes',
        ]),
        'cgroup memory limit',
      );
      expect(Number(cgroupLimit.trim())).toBe(memoryLimitBytes);
      // The token it authenticates with is the one mounted where Kubernetes mounts it; the
      // metrics service reads only NATS and gets none.
      const read = await engineRun(['exec', name, 'cat', '/var/run/secrets/kubernetes.io/serviceaccount/token']);
      if (component === 'metrics') expect(read.code).not.toBe(0);
      else expect(ok(read, 'token').split('.')).toHaveLength(3);
    });
  }

  it('take a Session through running → hibernated → running → terminated, in the cluster', async () => {
    const session = 'img-desk';
    // A plain name: the chart's default sign-in (ingress-nginx annotation validation) refuses '@'.
    const user = 'ivy';
    const { apps, core, networking } = admin;
    const selector = `stream.streamspace.io/session=${session}`;
    const phase = (want: string) => waitSessionPhase(desks, session, want, 60_000);
    const setState = (state: string) => setSessionState(desks, session, state);
    const desktop = async () => {
      const list = await apps.listNamespacedDeployment({ namespace: desks, labelSelector: selector });
      expect(list.items).toHaveLength(1);
      return list.items[0] as k8s.V1Deployment;
    };

    await createSession(desks, session, {
      user,
      template: 'firefox',
      state: 'running',
      persistentHome: true,
    });
    const running = await phase('Running');
    // The chart's defaults: hosts carry the namespace, and TLS is on.
    expect(running.url).toBe(`https://${session}.${desks}.streamspace.example.com/`);
    expect((await desktop()).spec?.replicas).toBe(1);
    expect(
      (await core.listNamespacedService({ namespace: desks, labelSelector: selector })).items,
    ).toHaveLength(1);
    expect(
      (await networking.listNamespacedIngress({ namespace: desks, labelSelector: selector })).items,
    ).toHaveLength(1);
    // The idle reaper (its own container) follows the session.
    await eventually(async () =>
      expect(await metric('idle-reaper', 'streamspace_reaper_tracked_sessions')).toBe(1),
    );

    await setState('hibernated');
    await phase('Hibernated');
    expect((await desktop()).spec?.replicas).toBe(0);

    await setState('running');
    await phase('Running');
    await eventually(async () => expect((await desktop()).status?.availableReplicas).toBe(1));

    await setState('terminated');
    await phase('Terminated');
    await waitSessionChildrenGone(desks, session);
    // The user's home outlives the session.
    const claim = await core.readNamespacedPersistentVolumeClaim({
      namespace: desks,
      name: homeClaimName(user),
    });
    expect(claim.metadata?.name).toBe(homeClaimName(user));

    // Each service's own account of what it did, on its /metrics.
    expect(await metric('watcher', 'streamspace_watcher_work_items_published_total')).toBeGreaterThanOrEqual(
      4,
    );
    expect(await metric('reconciler', 'streamspace_reconciler_reconciles_total')).toBeGreaterThanOrEqual(4);
    await eventually(async () => {
      expect(await metric('metrics', 'streamspace_session_hibernations_total')).toBe(1);
      expect(await metric('metrics', 'streamspace_session_terminations_total')).toBe(1);
    });
  }, 300_000);

  for (const component of COMPONENTS) {
    it(`${component}: answers its probes and serves /metrics`, async () => {
      const { readinessPath, livenessPath } = containers[component];
      expect((await get(component, readinessPath)).status).toBe(200);
      expect((await get(component, livenessPath)).status).toBe(200);
      const { status, body } = await get(component, '/metrics');
      expect(status).toBe(200);
      const prefix = component === 'idle-reaper' ? 'streamspace_reaper_' : `streamspace_${component}_`;
      expect(parseMetrics(body).some((s) => s.name.startsWith(prefix))).toBe(true);
      // Node's own process metrics: the service's resident memory stays inside the limit.
      const rss = parseMetrics(body).find((s) => s.name === 'process_resident_memory_bytes');
      expect(rss?.value).toBeGreaterThan(0);
      expect(rss?.value).toBeLessThan(containers[component].memoryLimitBytes as number);
    });
  }

  it('stop gracefully on SIGTERM within the pod’s grace period, as when Kubernetes stops them', async () => {
    for (const component of COMPONENTS) {
      const { name } = containers[component];
      ok(await engineRun(['stop', name]), `${engine} stop ${component}`);
      const exit = ok(
        await engineRun(['inspect', '--format', '{{.State.ExitCode}}', name]),
        'inspect',
      ).trim();
      expect(exit, `${component}:\n${await logsOf(name)}`).toBe('0');
    }
  }, 200_000);
});
