import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { API_GROUP, API_VERSION } from '@streamspace/shared';
import { expect, it, onTestFinished } from 'vitest';
import {
  deployedEnv,
  deployedNodeOptions,
  eventually,
  installCrds,
  kube,
  repo,
  ServiceProcess,
} from '../test/integration/harness.js';
import { sessionObject, templateObject } from '../test/integration/fixtures.js';
import { parseMetrics } from '../test/integration/metrics-scrape.js';
import { startPrivateNats } from '../test/integration/private-nats.js';
import { procCpuSeconds, procStatus } from './process-cost.mjs';

/**
 * The watcher's memory against the number of Sessions, without a full pipeline run (issue 13: the
 * watcher peaked at 118.8 MiB at 10,000 Sessions, run T2). BENCH_SESSIONS Sessions in
 * BENCH_NAMESPACES namespaces are created once, through the real pipeline (the watcher and three
 * workers), and kept (namespaces labelled streamspace.io/watcher-bench=<sessions>x<namespaces>);
 * every run after that only starts a watcher against them, as a restart or a new replica does:
 * all its watches list at once, then it watches, with a resync inside the window
 * (RESYNC_INTERVAL, default 1m here) and watches that end every WATCH_TIMEOUT (default 1m here).
 * It samples the watcher's resident memory, its V8 heap spaces and its CPU for
 * BENCH_WATCHER_SECONDS (default 180), and writes .bench/watcher-memory.json.
 *
 *   STREAMSPACE_NODES=40 scripts/cluster up
 *   BENCH_SESSIONS=3000 BENCH_NAMESPACES=10 npx vitest run --project bench bench/watcher-memory.bench-run.ts
 *
 * The watcher runs as the chart deploys it: its nodeArgs, NODE_OPTIONS and the environment the chart
 * gives it (harness.ts deployedEnv: its list settings, extraEnv). BENCH_WATCHER_NODE_ARGS
 * (space-separated) replaces the chart's watcher.nodeArgs; BENCH_WATCHER_ENV ('A=1,B=2') adds to
 * the watcher's environment, over the chart's. BENCH_POPULATE_ONLY=1 only creates the objects
 * (no measurement: run it niced, outside the bench lock). Delete the namespaces to start over.
 */

const N = Number(process.env.BENCH_SESSIONS ?? 3000);
const NAMESPACES = Number(process.env.BENCH_NAMESPACES ?? 10);
const SECONDS = Number(process.env.BENCH_WATCHER_SECONDS ?? 180);
const WATCHER_NODE_ARGS = process.env.BENCH_WATCHER_NODE_ARGS?.split(' ').filter(Boolean);
const WATCHER_ENV = Object.fromEntries(
  (process.env.BENCH_WATCHER_ENV ?? '')
    .split(',')
    .filter(Boolean)
    .map((pair) => pair.split('=', 2) as [string, string]),
);
const LABEL = 'streamspace.io/watcher-bench';
const MiB = 1024 * 1024;

/** A service's environment here: the chart's NODE_OPTIONS (its own nodeArgs come on top), the namespaces, a NATS. */
function serviceEnv(namespaces: string[], natsUrl: string): Record<string, string> {
  const options = deployedNodeOptions();
  return {
    ...(options ? { NODE_OPTIONS: options } : {}),
    LOG_LEVEL: 'info',
    WATCH_NAMESPACE: namespaces.join(','),
    NATS_URL: natsUrl,
  };
}

async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

/** Resident memory by kind, from /proc/<pid>/smaps_rollup (kB → MiB). */
function smapsRollup(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').split('\n')) {
    const match = /^(\w+):\s+(\d+) kB/.exec(line);
    if (match) out[match[1] as string] = Math.round((Number(match[2]) / 1024) * 10) / 10;
  }
  return out;
}

/** Each Session's phase in a namespace. */
async function sessionPhases(namespace: string): Promise<(string | undefined)[]> {
  const list = (await kube().custom.listNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
  })) as { items: { status?: { phase?: string } }[] };
  return list.items.map((s) => s.status?.phase);
}

/** The namespaces holding the objects, created and filled through the pipeline when missing. */
async function populate(): Promise<string[]> {
  const k = kube();
  const tag = `${N}x${NAMESPACES}`;
  const existing = await k.core.listNamespace({ labelSelector: `${LABEL}=${tag}` });
  const names = existing.items.map((ns) => ns.metadata?.name as string).sort();
  const sessionsIn = async (namespaces: string[]) => {
    let running = 0;
    for (const namespace of namespaces)
      running += (await sessionPhases(namespace)).filter((p) => p === 'Running').length;
    return running;
  };
  // Reused as they are: the objects they hold are counted beside each run's figures.
  if (names.length === NAMESPACES) return names;
  if (names.length > 0) throw new Error(`namespaces ${names.join(' ')} hold a partial set: delete them`);
  await installCrds();
  const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `wbench-${N}-${i}`);
  for (const name of namespaces) {
    await k.core.createNamespace({ body: { metadata: { name, labels: { [LABEL]: tag } } } });
    await k.custom.createNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace: name,
      plural: 'templates',
      // Small requests, as the pipeline bench's: the nodes' pod limit is then the only bound.
      body: templateObject(undefined, 'firefox', {
        defaultResources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '2', memory: '4Gi' } },
      }),
    });
  }
  // Pods are admitted once each namespace's default ServiceAccount exists.
  for (const namespace of namespaces)
    await eventually(() => k.core.readNamespacedServiceAccount({ namespace, name: 'default' }), 30_000, 100);
  const nats = await startPrivateNats();
  const env = serviceEnv(namespaces, nats.url);
  const services = [
    new ServiceProcess('watcher', env),
    ...Array.from({ length: 3 }, () => new ServiceProcess('reconciler', env)),
  ];
  try {
    await Promise.all(services.map((s) => s.waitReady(60_000)));
    await pool(
      Array.from({ length: N }, (_, i) => i),
      50,
      async (i) => {
        await k.custom.createNamespacedCustomObject({
          group: API_GROUP,
          version: API_VERSION,
          namespace: namespaces[i % NAMESPACES] as string,
          plural: 'sessions',
          body: sessionObject(undefined, `bench-${i}`, `bench-${i}@example.com`, 'firefox', {
            idleTimeout: '0',
          }),
        });
      },
    );
    // Niced, beside other work, the pipeline may be slower than N * 300 ms (50 minutes at 10,000;
    // 2,000 took 9 min 15 s in W5). The bound only catches a stuck pipeline.
    const deadline = Date.now() + Math.max(20 * 60_000, N * 600);
    while ((await sessionsIn(namespaces)) < N) {
      if (Date.now() > deadline) throw new Error('not all Sessions became Running in time');
      await new Promise((r) => setTimeout(r, 10_000));
    }
  } finally {
    await Promise.all(services.map((s) => s.stop()));
    await nats.stop();
  }
  return namespaces;
}

/** What the watcher will list: the objects of each kind in the namespaces, read before it starts. */
async function countObjects(namespaces: string[]): Promise<Record<string, number>> {
  const k = kube();
  const counts: Record<string, number> = {};
  const add = (kind: string, n: number) => {
    counts[kind] = (counts[kind] ?? 0) + n;
  };
  for (const namespace of namespaces) {
    const phases = await sessionPhases(namespace);
    add('sessions', phases.length);
    add('sessionsRunning', phases.filter((p) => p === 'Running').length);
    add('deployments', (await k.apps.listNamespacedDeployment({ namespace })).items.length);
    add('pods', (await k.core.listNamespacedPod({ namespace })).items.length);
    add('services', (await k.core.listNamespacedService({ namespace })).items.length);
    add('ingresses', (await k.networking.listNamespacedIngress({ namespace })).items.length);
    add('networkpolicies', (await k.networking.listNamespacedNetworkPolicy({ namespace })).items.length);
  }
  return counts;
}

// A populate of 10,000 niced may run past the bench project's hour (creation, then N * 600 ms for Running).
const TIMEOUT = process.env.BENCH_POPULATE_ONLY === '1' ? 4 * 3_600_000 : 3_600_000;

it(`measures the watcher's memory at ${N} Sessions`, { timeout: TIMEOUT }, async () => {
  const namespaces = await populate();
  // Filling the cluster is no measurement: it may run niced, outside the bench lock, by itself.
  if (process.env.BENCH_POPULATE_ONLY === '1') return;
  const objects = await countObjects(namespaces);
  const nats = await startPrivateNats();
  const env = {
    ...serviceEnv(namespaces, nats.url),
    WATCH_TIMEOUT: '1m',
    RESYNC_INTERVAL: '1m',
    ...WATCHER_ENV,
  };
  const loadAtStart = loadavg();
  const startedAt = new Date().toISOString();
  const watcher = WATCHER_NODE_ARGS
    ? new ServiceProcess('watcher', env, WATCHER_NODE_ARGS)
    : new ServiceProcess('watcher', env);
  onTestFinished(async () => {
    await watcher.stop();
    await nats.stop();
  });
  const pid = watcher.pid as number;
  const samples: { t: number; rssMiB: number }[] = [];
  const heap: { t: number; spaces: Record<string, { used: number; size: number }> }[] = [];
  const t0 = performance.now();
  let readyAt: number | undefined;
  let peakSmaps: Record<string, number> = {};
  let peakRss = 0;
  void watcher.waitReady(600_000).then(() => {
    readyAt = (performance.now() - t0) / 1000;
  });
  let lastHeapRead = 0;
  while (performance.now() - t0 < SECONDS * 1000) {
    await new Promise((r) => setTimeout(r, 250));
    if (!watcher.running) {
      // What it did until then is a result too (a watcher out of heap at its start, BENCHMARKS.md W8).
      const peak = Math.max(...samples.map((s) => s.rssMiB));
      const exited = {
        sessions: N,
        namespaces: NAMESPACES,
        objects,
        startedAt,
        loadAtStart,
        exitedAfterSeconds: Math.round(performance.now() - t0) / 1000,
        peakRssMiBSampled: Math.round(peak * 10) / 10,
        peakAtSeconds: samples.find((s) => s.rssMiB === peak)?.t,
        smapsAtPeak: peakSmaps,
        lastHeap: heap.at(-1),
        rssEvery1s: samples
          .filter((_, i) => i % 4 === 0)
          .map((s) => `${s.t}:${Math.round(s.rssMiB * 10) / 10}`),
        logs: watcher.logs.slice(-20),
      };
      mkdirSync(`${repo}/.bench`, { recursive: true });
      writeFileSync(`${repo}/.bench/watcher-memory.json`, JSON.stringify(exited, null, 2));
      throw new Error(`the watcher exited:\n${watcher.logs.slice(-20).join('\n')}`);
    }
    const rss = procStatus(pid, 'VmRSS');
    const t = Math.round(performance.now() - t0) / 1000;
    samples.push({ t, rssMiB: rss / MiB });
    if (rss > peakRss) {
      peakRss = rss;
      peakSmaps = smapsRollup(pid);
    }
    if (watcher.port !== 0 && performance.now() - lastHeapRead > 2_000) {
      lastHeapRead = performance.now();
      const spaces: Record<string, { used: number; size: number }> = {};
      for (const { name, labels, value } of parseMetrics((await watcher.get('/metrics')).body)) {
        const space = labels.space as string;
        if (name === 'nodejs_heap_space_size_used_bytes')
          spaces[space] = { ...spaces[space], used: value / MiB } as never;
        if (name === 'nodejs_heap_space_size_total_bytes')
          spaces[space] = { ...spaces[space], size: value / MiB } as never;
      }
      heap.push({ t, spaces });
    }
  }
  expect(readyAt, 'the watcher became ready').toBeDefined();
  const after = (from: number) => samples.filter((s) => s.t >= from).map((s) => s.rssMiB);
  const steady = after(SECONDS - 60);
  const round = (x: number) => Math.round(x * 10) / 10;
  const restarts: Record<string, number> = {};
  const resyncs: Record<string, number> = {};
  const stateWrites: Record<string, number> = {};
  for (const { name, labels, value } of parseMetrics((await watcher.get('/metrics')).body)) {
    if (name === 'streamspace_watcher_state_writes_total') stateWrites[labels.op as string] = value;
    if (name === 'streamspace_watcher_watch_restarts_total')
      restarts[`${labels.kind} ${labels.reason}`] = value;
    if (name === 'streamspace_watcher_resyncs_total') resyncs[labels.trigger as string] = value;
  }
  const lastHeap = heap.at(-1)?.spaces ?? {};
  const result = {
    sessions: N,
    namespaces: NAMESPACES,
    objects,
    startedAt,
    loadAtStart,
    loadAtEnd: loadavg(),
    nodeArgs: watcher.nodeArgs,
    env: { ...deployedEnv('watcher'), ...WATCHER_ENV },
    readySeconds: readyAt,
    peakRssMiB: round(procStatus(pid, 'VmHWM') / MiB),
    peakAtSeconds: samples.find((s) => s.rssMiB === peakRss / MiB)?.t,
    steadyRssMiB: { min: round(Math.min(...steady)), max: round(Math.max(...steady)) },
    cpuSeconds: procCpuSeconds(pid),
    smapsAtPeak: peakSmaps,
    smapsAtEnd: smapsRollup(pid),
    heapAtEnd: Object.fromEntries(
      Object.entries(lastHeap).map(([space, { used, size }]) => [space, `${round(used)} / ${round(size)}`]),
    ),
    heapPeakTotalMiB: round(
      Math.max(...heap.map((h) => Object.values(h.spaces).reduce((sum, s) => sum + (s.size ?? 0), 0))),
    ),
    restarts,
    resyncs,
    stateWrites,
    rssEvery5s: samples.filter((_, i) => i % 20 === 0).map((s) => `${s.t}:${round(s.rssMiB)}`),
  };
  mkdirSync(`${repo}/.bench`, { recursive: true });
  writeFileSync(`${repo}/.bench/watcher-memory.json`, JSON.stringify(result, null, 2));
  console.log(JSON.stringify(result, null, 2));
});
