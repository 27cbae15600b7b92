import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';

const run = promisify(execFile);
export const repo = fileURLToPath(new URL('../..', import.meta.url));

let chartValues: Record<string, unknown> | undefined;

/** The chart's default values (deploy/helm/streamspace/values.yaml), read once. */
export function deployedValues(): Record<string, unknown> {
  chartValues ??= parseYaml(readFileSync(`${repo}/deploy/helm/streamspace/values.yaml`, 'utf8')) as Record<
    string,
    unknown
  >;
  return chartValues;
}

/**
 * The V8 flags the chart runs every service with (values.yaml `nodeOptions`), so benchmarks
 * measure what is deployed. BENCH_NODE_OPTIONS overrides them ('' for Node's defaults).
 */
export function deployedNodeOptions(): string {
  if (process.env.BENCH_NODE_OPTIONS !== undefined) return process.env.BENCH_NODE_OPTIONS;
  const options = deployedValues().nodeOptions;
  if (typeof options !== 'string')
    throw new Error('deploy/helm/streamspace/values.yaml has no nodeOptions line');
  return options.trim();
}

/** The chart's values key of each service. */
export const VALUES_KEY: Record<string, string> = {
  watcher: 'watcher',
  reconciler: 'reconciler',
  'idle-reaper': 'idleReaper',
  metrics: 'metrics',
};

/**
 * The V8 flags the chart puts on a service's node command line (`<service>.nodeArgs`, else the
 * global `nodeArgs`), so tests and benchmarks run each service as it is deployed.
 */
export function deployedNodeArgs(service: string): string[] {
  const values = deployedValues();
  const own = values[VALUES_KEY[service] ?? service] as { nodeArgs?: unknown } | undefined;
  const args = (typeof own === 'object' && own?.nodeArgs) || values.nodeArgs;
  return typeof args === 'string' ? args.split(' ').filter(Boolean) : [];
}

/**
 * The environment the chart gives a service that tests and benchmarks must run it with to run it
 * as deployed, beside its nodeArgs: every service's `extraEnv` entries that carry a value, and the
 * watcher's list settings (`watcher.list`: the page size and pages at once, on which its memory at
 * a start against many objects depends; BENCHMARKS.md, X1–X6). The rest of the chart's ConfigMap
 * names the cluster it runs in, which each test sets itself.
 */
export function deployedEnv(service: string): Record<string, string> {
  const own = deployedValues()[VALUES_KEY[service] ?? service] as
    | { extraEnv?: { name?: unknown; value?: unknown }[]; list?: { pageSize?: unknown; concurrency?: unknown } }
    | undefined;
  const env: Record<string, string> = {};
  if (service === 'watcher' && own?.list) {
    if (own.list.pageSize !== undefined) env.LIST_PAGE_SIZE = String(own.list.pageSize);
    if (own.list.concurrency !== undefined) env.LIST_CONCURRENCY = String(own.list.concurrency);
  }
  for (const entry of own?.extraEnv ?? [])
    if (typeof entry.name === 'string' && entry.value !== undefined) env[entry.name] = String(entry.value);
  return env;
}

/** A loopback port free right now (for a server a test starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Clients for the local control plane that global-setup started. */
export function kube() {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG as string);
  return {
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    apps: kc.makeApiClient(k8s.AppsV1Api),
    networking: kc.makeApiClient(k8s.NetworkingV1Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    coordination: kc.makeApiClient(k8s.CoordinationV1Api),
    objects: k8s.KubernetesObjectApi.makeApiClient(kc),
  };
}

/**
 * Follows the Sessions of a namespace with a watch of the test's own, calling `onSession` with each
 * one it sees, and starts the watch again whenever it ends: the API server can refuse it (429)
 * while it starts up, and a watch that never ran left every wait on what it sees to time out.
 * Returns the function that stops it.
 */
export async function followSessions<T extends { metadata: { name: string } }>(
  kc: k8s.KubeConfig,
  path: string,
  onSession: (session: T) => void,
): Promise<() => void> {
  let stopped = false;
  let controller: AbortController | undefined;
  const again = () => void setTimeout(() => void follow(), 500);
  const follow = async (): Promise<void> => {
    if (stopped) return;
    controller = await new k8s.Watch(kc)
      .watch(path, {}, (_type: string, object: T) => onSession(object), again)
      .catch(() => {
        again();
        return undefined;
      });
  };
  await follow();
  return () => {
    stopped = true;
    controller?.abort();
  };
}

export async function kubectl(
  args: string[],
  input?: string,
): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    const child = spawn('kubectl', args, { env: process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (code) => resolve({ stdout, stderr, code: code ?? -1 }));
    child.stdin.end(input ?? '');
  });
}

export async function installCrds(): Promise<void> {
  await run('kubectl', ['apply', '--server-side', '--force-conflicts', '-f', `${repo}/crds/`], {
    env: process.env,
  });
  await run('kubectl', ['wait', '--for=condition=Established', '--timeout=60s', '-f', `${repo}/crds/`], {
    env: process.env,
  });
}

/** A namespace of its own for each test file, so files never see each other's objects. */
export async function createNamespace(prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  const { core } = kube();
  await core.createNamespace({ body: { metadata: { name, labels: { 'streamspace.io/test': 'true' } } } });
  // Pods are admitted only once the namespace's default ServiceAccount exists; a ReplicaSet that
  // tries earlier backs off for seconds. Tests start when the namespace can run pods.
  await eventually(
    () => core.readNamespacedServiceAccount({ namespace: name, name: 'default' }),
    30_000,
    100,
  );
  return name;
}

export async function deleteNamespace(name: string): Promise<void> {
  await kube()
    .core.deleteNamespace({ name })
    .catch(() => undefined);
}

/** Polls `check` until it stops throwing, or fails with its last error after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs = 30_000,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      return await check();
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw last instanceof Error ? last : new Error(String(last));
}

/** One of our services, run as a real process from its built output. */
export class ServiceProcess {
  /** Every service started in this test file and not yet seen to exit (see service-cleanup.ts). */
  static readonly started = new Set<ServiceProcess>();

  /**
   * Stops (SIGKILL) what a test file left running and says which: a service that outlives its
   * file would keep consuming the shared NATS's work partitions with its own settings and take
   * part in the next file's reconciles.
   */
  static async stopLeftovers(): Promise<string[]> {
    const left = [...ServiceProcess.started].filter((s) => s.running);
    await Promise.all(left.map((s) => s.kill()));
    ServiceProcess.started.clear();
    return left.map((s) => `${s.service} (pid ${s.pid})`);
  }

  readonly logs: string[] = [];
  port = 0;
  private readonly child: ChildProcess;
  private readonly exited: Promise<number | null>;

  constructor(
    readonly service: string,
    env: Record<string, string> = {},
    readonly nodeArgs: string[] = deployedNodeArgs(service),
  ) {
    this.child = spawn(process.execPath, [...nodeArgs, `${repo}/services/${service}/dist/main.js`], {
      env: { ...process.env, HTTP_PORT: '0', LOG_LEVEL: 'debug', ...deployedEnv(service), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffer = '';
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        this.logs.push(line);
        const match = /"address":"[^"]*:(\d+)"/.exec(line);
        if (match && this.port === 0) this.port = Number(match[1]);
        newline = buffer.indexOf('\n');
      }
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        ServiceProcess.started.delete(this);
        resolve(code);
      }),
    );
    ServiceProcess.started.add(this);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async get(path: string): Promise<{ status: number; body: string }> {
    const response = await fetch(`http://127.0.0.1:${this.port}${path}`);
    return { status: response.status, body: await response.text() };
  }

  async waitReady(timeoutMs = 30_000): Promise<void> {
    await eventually(async () => {
      if (!this.running) throw new Error(`${this.service} exited:\n${this.logs.slice(-20).join('\n')}`);
      if (this.port === 0) throw new Error(`${this.service} has not bound its HTTP port yet`);
      const { status, body } = await this.get('/readyz');
      if (status !== 200) throw new Error(`${this.service} not ready: ${body}`);
    }, timeoutMs);
  }

  /** SIGTERM and wait for a graceful exit. */
  async stop(): Promise<number | null> {
    if (this.running) this.child.kill('SIGTERM');
    return this.exited;
  }

  /** SIGKILL: no chance to clean up, as when a node dies. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  waitExit(): Promise<number | null> {
    return this.exited;
  }
}
