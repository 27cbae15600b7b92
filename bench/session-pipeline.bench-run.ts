import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  API_GROUP,
  API_VERSION,
  FIELD_MANAGER,
  STREAMS,
  sessionChildName,
} from '@streamspace/shared';
import { expect, it, onTestFinished } from 'vitest';
import {
  createNamespace,
  deleteNamespace,
  deployedNodeOptions,
  installCrds,
  kube,
  repo,
  ServiceProcess,
} from '../test/integration/harness.js';
import { startPrivateNats } from '../test/integration/private-nats.js';

/**
 * Issue 3's numbers: N Sessions (BENCH_SESSIONS, default 1000) through the real pipeline on the
 * local KWOK cluster — apply → Running (p50/p99), hibernate and wake latency (p99), each
 * service's peak RSS, errors — and the same object writes made directly with
 * @kubernetes/client-node as a baseline. Run with `pnpm bench`; results go to .bench/.
 */

// A KWOK node takes 110 pods, like a kubelet: run with STREAMSPACE_NODES >= N / 100 (see BENCHMARKS.md).
const N = Number(process.env.BENCH_SESSIONS ?? 1000);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

function peakRss(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

/**
 * Watches Sessions and records when each first reaches a phase after a mark. The API server ends
 * watches when it likes: the clock lists again (recording what reached the phase meanwhile, at
 * the time of the list — a restart can only make a latency look longer) and watches on.
 */
class PhaseClock {
  private readonly reached = new Map<string, number>();
  private request: { abort(): void } | undefined;
  private stopped = false;
  private readonly api: k8s.CustomObjectsApi;
  restarts = 0;
  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly namespace: string,
  ) {
    this.api = kc.makeApiClient(k8s.CustomObjectsApi);
  }
  expect(phase: string): void {
    this.phase = phase;
    this.reached.clear();
  }
  private phase = '';
  private see(object: { metadata?: { name?: string }; status?: { phase?: string } }): void {
    const name = object.metadata?.name;
    if (name && object.status?.phase === this.phase && !this.reached.has(name))
      this.reached.set(name, performance.now());
  }
  async start(): Promise<void> {
    const list = await this.api.listNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace: this.namespace,
      plural: 'sessions',
    });
    for (const item of list.items ?? []) this.see(item);
    const watch = new k8s.Watch(this.kc);
    this.request = await watch.watch(
      `/apis/${API_GROUP}/${API_VERSION}/namespaces/${this.namespace}/sessions`,
      { resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
      (_type, object: { metadata: { name: string }; status?: { phase?: string } }) => this.see(object),
      () => this.restart(),
    );
  }
  private restart(): void {
    if (this.stopped) return;
    this.restarts++;
    const again = () =>
      this.start().catch(() => {
        if (!this.stopped) setTimeout(again, 500);
      });
    setTimeout(again, 100);
  }
  stop(): void {
    this.stopped = true;
    this.request?.abort();
  }
  /**
   * Waits until every name reached the phase. A wait for a few Sessions also reads them every
   * 100 ms, so a watch that stalls without ending cannot inflate a single change's latency.
   */
  async waitAll(names: string[], timeoutMs: number): Promise<Map<string, number>> {
    const deadline = performance.now() + timeoutMs;
    const poll = names.length <= 5;
    while (names.some((n) => !this.reached.has(n))) {
      if (poll) {
        await Promise.all(
          names.map(async (name) =>
            this.see(
              await this.api.getNamespacedCustomObject({
                group: API_GROUP,
                version: API_VERSION,
                namespace: this.namespace,
                plural: 'sessions',
                name,
              }),
            ),
          ),
        );
        if (names.every((n) => this.reached.has(n))) break;
      }
      if (performance.now() > deadline)
        throw new Error(
          `${names.filter((n) => !this.reached.has(n)).length} sessions never reached ${this.phase}`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
    return new Map(this.reached);
  }
}

it(`runs ${N} sessions through the pipeline`, async () => {
  const k = kube();
  await installCrds();
  const namespace = await createNamespace('bench');
  const baselineNamespace = await createNamespace('bench-direct');
  const template = {
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: 'Template',
    metadata: { name: 'firefox', namespace },
    spec: {
      displayName: 'Firefox',
      baseImage: 'lscr.io/linuxserver/firefox:latest',
      ports: [{ name: 'http', containerPort: 3000, protocol: 'TCP' }],
      vnc: { enabled: true, port: 3000, protocol: 'websocket' },
      shmSize: '1Gi',
    },
  };
  await k.custom.createNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'templates',
    body: template,
  });

  // A NATS of its own: the run measures this pipeline, not a backlog left by others on the shared one.
  const nats = await startPrivateNats();
  const nodeOptions = deployedNodeOptions();
  const env = {
    LOG_LEVEL: 'info',
    WATCH_NAMESPACE: namespace,
    NATS_URL: nats.url,
    ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
  };
  const watcher = new ServiceProcess('watcher', env);
  const workers = Array.from({ length: WORKERS }, () => new ServiceProcess('reconciler', env));
  // A failed run must not leave its services running into the next one.
  onTestFinished(async () => {
    await Promise.all([watcher, ...workers].map((s) => s.stop()));
    await nats.stop();
  });
  await Promise.all([watcher, ...workers].map((s) => s.waitReady(60_000)));

  const clock = new PhaseClock(k.kc, namespace);
  await clock.start();
  const names = Array.from({ length: N }, (_, i) => `bench-${i}`);
  const errors: string[] = [];

  // 1. apply → Running
  clock.expect('Running');
  const applied = new Map<string, number>();
  const startCreate = performance.now();
  await pool(names, CONCURRENCY, async (name) => {
    applied.set(name, performance.now());
    await k.custom
      .createNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace,
        plural: 'sessions',
        body: {
          apiVersion: `${API_GROUP}/${API_VERSION}`,
          kind: 'Session',
          metadata: { name },
          spec: { user: `${name}@example.com`, template: 'firefox' },
        },
      })
      .catch((e: Error) => errors.push(`create ${name}: ${e.message}`));
  });
  const running = await clock.waitAll(names, 20 * 60_000);
  const pipelineSeconds = (Math.max(...running.values()) - startCreate) / 1000;
  const startLatency = names.map((n) => (running.get(n) as number) - (applied.get(n) as number));

  // 2. hibernate → Hibernated (replicas 0, pod gone)
  const patchState = async (state: string, marks: Map<string, number>, targets = names) =>
    pool(targets, CONCURRENCY, async (name) => {
      marks.set(name, performance.now());
      await k.custom
        .patchNamespacedCustomObject(
          {
            group: API_GROUP,
            version: API_VERSION,
            namespace,
            plural: 'sessions',
            name,
            body: { spec: { state } },
          },
          k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
        )
        .catch((e: Error) => errors.push(`${state} ${name}: ${e.message}`));
    });
  clock.expect('Hibernated');
  const hibernateMarks = new Map<string, number>();
  await patchState('hibernated', hibernateMarks);
  const hibernated = await clock.waitAll(names, 10 * 60_000);
  const hibernateLatency = names.map(
    (n) => (hibernated.get(n) as number) - (hibernateMarks.get(n) as number),
  );
  const replicas = await k.apps.listNamespacedDeployment({ namespace });
  const scaledToZero = replicas.items.filter((d) => d.spec?.replicas === 0).length;

  // 3. wake → Running
  clock.expect('Running');
  const wakeMarks = new Map<string, number>();
  await patchState('running', wakeMarks);
  const woken = await clock.waitAll(names, 10 * 60_000);
  const wakeLatency = names.map((n) => (woken.get(n) as number) - (wakeMarks.get(n) as number));

  // 4. One change at a time against N running sessions at rest: what a single user waits for.
  // The bursts leave a tail (Deployment and Pod status updates, each a work item) after the last
  // phase is reached; measured from there, the first single change would time that tail.
  const settleStart = performance.now();
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  for (let idleSince = 0; ; ) {
    // A workqueue stream keeps an item until a worker acknowledges it, whichever partition it is in.
    const idle = (await jsm.streams.info(STREAMS.work)).state.messages === 0;
    if (!idle) idleSince = 0;
    else if (idleSince === 0) idleSince = performance.now();
    else if (performance.now() - idleSince >= 2_000) break;
    if (performance.now() - settleStart > 5 * 60_000) throw new Error('the work queue never emptied');
    await new Promise((r) => setTimeout(r, 200));
  }
  await nc.close();
  const settleSeconds = (performance.now() - settleStart) / 1000;
  const singleChanges: { state: 'hibernated' | 'running'; at: string; ms: number }[] = [];
  const SINGLE = Math.min(Number(process.env.BENCH_SINGLE ?? 50), N);
  for (const name of names.slice(0, SINGLE)) {
    for (const [state, phase] of [
      ['hibernated', 'Hibernated'],
      ['running', 'Running'],
    ] as const) {
      clock.expect(phase);
      const marks = new Map<string, number>();
      await patchState(state, marks, [name]);
      const reached = await clock.waitAll([name], 60_000);
      const ms = (reached.get(name) as number) - (marks.get(name) as number);
      singleChanges.push({ state, at: new Date(Date.now() - ms).toISOString(), ms });
    }
  }
  clock.stop();
  const single = {
    hibernate: singleChanges.filter((c) => c.state === 'hibernated').map((c) => c.ms),
    wake: singleChanges.filter((c) => c.state === 'running').map((c) => c.ms),
  };

  const rss = { watcher: peakRss(watcher.pid), reconcilers: workers.map((w) => peakRss(w.pid)) };
  const metrics = await Promise.all(workers.map((w) => w.get('/metrics')));
  const reconcileErrors = metrics
    .map((m) =>
      [
        ...m.body.matchAll(
          /streamspace_reconciler_reconciles_total\{kind="\w+",result="(?:error|dead_lettered)"\} (\d+)/g,
        ),
      ].reduce((a, x) => a + Number(x[1]), 0),
    )
    .reduce((a, b) => a + b, 0);
  const reconciles = metrics
    .map((m) =>
      [
        ...m.body.matchAll(/streamspace_reconciler_reconciles_total\{kind="\w+",result="success"\} (\d+)/g),
      ].reduce((a, x) => a + Number(x[1]), 0),
    )
    .reduce((a, b) => a + b, 0);
  await Promise.all([watcher, ...workers].map((s) => s.stop()));
  await nats.stop();

  // 4. Baseline: the same writes (Session, Deployment, Service, Ingress, Session status) made
  //    directly with @kubernetes/client-node, same concurrency, no pipeline in between.
  const objects = k8s.KubernetesObjectApi.makeApiClient(k.kc);
  const apply = (o: k8s.KubernetesObject) =>
    objects.patch(o, undefined, undefined, FIELD_MANAGER, true, k8s.PatchStrategy.ServerSideApply);
  await k.custom.createNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace: baselineNamespace,
    plural: 'templates',
    body: { ...template, metadata: { name: 'firefox', namespace: baselineNamespace } },
  });
  const startDirect = performance.now();
  await pool(names, CONCURRENCY, async (name) => {
    const child = sessionChildName(name);
    const labels = { app: child };
    try {
      await k.custom.createNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace: baselineNamespace,
        plural: 'sessions',
        body: {
          apiVersion: `${API_GROUP}/${API_VERSION}`,
          kind: 'Session',
          metadata: { name },
          spec: { user: `${name}@example.com`, template: 'firefox' },
        },
      });
      await apply({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: child, namespace: baselineNamespace },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: { containers: [{ name: 'desktop', image: 'lscr.io/linuxserver/firefox:latest' }] },
          },
        },
      } as k8s.KubernetesObject);
      await apply({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: child, namespace: baselineNamespace },
        spec: { selector: labels, ports: [{ port: 3000 }] },
      } as k8s.KubernetesObject);
      await apply({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'Ingress',
        metadata: { name: child, namespace: baselineNamespace },
        spec: {
          rules: [
            {
              host: `${name}.bench`,
              http: {
                paths: [
                  {
                    path: '/',
                    pathType: 'Prefix',
                    backend: { service: { name: child, port: { number: 3000 } } },
                  },
                ],
              },
            },
          ],
        },
      } as k8s.KubernetesObject);
      await k.custom.patchNamespacedCustomObjectStatus(
        {
          group: API_GROUP,
          version: API_VERSION,
          namespace: baselineNamespace,
          plural: 'sessions',
          name,
          body: { status: { phase: 'Running' } },
        },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
    } catch (e) {
      errors.push(`direct ${name}: ${(e as Error).message}`);
    }
  });
  const directSeconds = (performance.now() - startDirect) / 1000;

  const result = {
    sessions: N,
    workers: WORKERS,
    clientConcurrency: CONCURRENCY,
    startToRunningMs: {
      p50: percentile(startLatency, 50),
      p90: percentile(startLatency, 90),
      p99: percentile(startLatency, 99),
    },
    hibernateMs: { p50: percentile(hibernateLatency, 50), p99: percentile(hibernateLatency, 99) },
    wakeMs: { p50: percentile(wakeLatency, 50), p99: percentile(wakeLatency, 99) },
    singleChange: {
      changes: single.hibernate.length,
      hibernateMs: {
        p50: percentile(single.hibernate, 50),
        p99: percentile(single.hibernate, 99),
        max: Math.max(...single.hibernate),
      },
      wakeMs: {
        p50: percentile(single.wake, 50),
        p99: percentile(single.wake, 99),
        max: Math.max(...single.wake),
      },
    },
    scaledToZero,
    pipelineSeconds,
    pipelineSessionsPerSecond: N / pipelineSeconds,
    directSeconds,
    directSessionsPerSecond: N / directSeconds,
    throughputRatio: N / pipelineSeconds / (N / directSeconds),
    peakRssMiB: { watcher: rss.watcher / 2 ** 20, reconcilers: rss.reconcilers.map((r) => r / 2 ** 20) },
    reconciles,
    reconcileErrors,
    clientErrors: errors.length,
    firstErrors: errors.slice(0, 5),
    nodeOptions,
    phaseWatchRestarts: clock.restarts,
    settleSecondsBeforeSingleChanges: settleSeconds,
    // To tell a slow single change's cause: when it was made, and when the watcher resynced.
    slowestSingleChanges: singleChanges
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 3)
      .map((c) => ({ ...c, ms: Math.round(c.ms) })),
    watcherResyncs: watcher.logs
      .filter((line) => line.includes('resync: announcing'))
      .map((line) => {
        const entry = JSON.parse(line) as { time?: string; objects?: number; spreadMs?: number };
        return {
          at: new Date(entry.time ?? 0).toISOString(),
          objects: entry.objects,
          spreadMs: entry.spreadMs,
        };
      }),
    measuredAt: new Date().toISOString(),
  };
  mkdirSync(`${repo}/.bench`, { recursive: true });
  writeFileSync(`${repo}/.bench/session-pipeline.json`, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
  await deleteNamespace(namespace);
  await deleteNamespace(baselineNamespace);
  expect(errors).toEqual([]);
  expect(scaledToZero).toBe(N);
});
