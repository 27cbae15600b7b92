// The metrics service's peak RSS at N Sessions, without a Kubernetes cluster: a nats-server of its
// own (scripts/toolchain's), the shared state and the events stream written as the watcher writes
// them, and the real service (services/metrics/dist, pnpm run build first) run as the chart runs
// it (its NODE_OPTIONS and metrics.nodeArgs, or the node flags given after `--`). Three phases,
// with a scrape of /metrics every 2 s throughout (as a bench sampler and Prometheus do):
//   create: every Session stored Pending and announced (`added`), RATE a second;
//   running: every Session stored Running and announced (`modified`), RATE a second;
//   resync: every Session stored and announced again (`resync`), RATE a second (the watcher's
//   periodic resync does this at RESYNC_RATE, 20 a second spread over at most 90 s).
// Prints the service's VmHWM (peak RSS) and VmRSS after each phase, its V8 heap at the end and
// its CPU time over the run.
//
//   node bench/metrics-service-memory.mjs <sessions> [rate] [-- node flags...]
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { jetstream } from '@nats-io/jetstream';
import { parse } from 'yaml';
import { startOwnNatsServer } from './own-nats-server.mjs';

const repo = new URL('..', import.meta.url).pathname;
const shared = await import(`${repo}packages/shared/dist/index.js`);

const dashes = process.argv.indexOf('--');
const positional = process.argv.slice(2, dashes < 0 ? undefined : dashes);
const sessions = Number(positional[0] ?? 10_000);
const rate = Number(positional[1] ?? 1_000);
const values = parse(readFileSync(`${repo}deploy/helm/streamspace/values.yaml`, 'utf8'));
const nodeArgs =
  dashes >= 0
    ? process.argv.slice(dashes + 1)
    : String(values.metrics?.nodeArgs || values.nodeArgs || '')
        .split(' ')
        .filter(Boolean);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const natsPort = 17589;
const nats = await startOwnNatsServer(natsPort, 'metrics-service-memory');
const { nc } = nats;
await shared.ensureStreams(nc);
const kv = await shared.openStateBucket(nc);
const js = jetstream(nc);

const namespace = 'bench-8d450a';
const sample = JSON.parse(readFileSync(`${repo}bench/watcher-cache-samples/session.json`, 'utf8'));
await kv.put(
  shared.stateKey('template', namespace, 'firefox'),
  JSON.stringify({
    apiVersion: 'stream.streamspace.io/v1alpha1',
    kind: 'Template',
    metadata: { name: 'firefox', namespace, uid: crypto.randomUUID(), resourceVersion: '1' },
    spec: { displayName: 'Firefox', baseImage: 'lscr.io/linuxserver/firefox:latest' },
  }),
);
const uids = Array.from({ length: sessions }, () => crypto.randomUUID());
let resourceVersion = 100_000;
/** Session i as the watcher stores it: the sample with its own name, uid and version. */
function session(i, phase) {
  const name = `bench-${i}`;
  const object = structuredClone(sample);
  object.metadata = { ...object.metadata, name, namespace, uid: uids[i], resourceVersion: String(++resourceVersion) };
  object.spec.user = `${name}@example.com`;
  if (phase === 'Pending') {
    object.status = {
      phase: 'Pending',
      conditions: [
        { type: 'Ready', status: 'False', reason: 'Starting', message: 'waiting for the pod', lastTransitionTime: new Date().toISOString(), observedGeneration: 1 },
      ],
    };
  } else {
    object.status.podName = `ss-${name}-6b4585f67-6mf7t`;
    object.status.url = `http://${name}.${namespace}.streamspace.localhost/`;
    object.status.conditions[0].lastTransitionTime = new Date().toISOString();
  }
  return object;
}
async function announce(type, phase) {
  const started = performance.now();
  for (let i = 0; i < sessions; i++) {
    const object = session(i, phase);
    const { name } = object.metadata;
    // Stored before announced, as the watcher does.
    await kv.put(shared.stateKey('session', namespace, name), JSON.stringify(object));
    await js.publish(
      shared.subjects.event('session', namespace, name),
      JSON.stringify({
        type,
        kind: 'session',
        namespace,
        name,
        uid: object.metadata.uid,
        resourceVersion: object.metadata.resourceVersion,
        generation: 1,
        observedAt: new Date().toISOString(),
        object,
      }),
    );
    const ahead = (i + 1) * (1000 / rate) - (performance.now() - started);
    if (ahead > 0) await sleep(ahead);
  }
}

const service = spawn(process.execPath, [...nodeArgs, `${repo}services/metrics/dist/main.js`], {
  env: {
    ...process.env,
    NODE_OPTIONS: values.nodeOptions,
    NATS_URL: `nats://127.0.0.1:${natsPort}`,
    WATCH_NAMESPACE: namespace,
    HTTP_PORT: '0',
    LOG_LEVEL: 'warn',
  },
  stdio: ['ignore', 'ignore', 'pipe'],
});
service.stderr.on('data', (chunk) => process.stderr.write(chunk));
// The port it bound: its listening socket.
let port;
for (let attempt = 0; !port && attempt < 100; attempt++) {
  await sleep(200);
  const line = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' })
    .split('\n')
    .find((l) => l.includes(`pid=${service.pid},`));
  port = line && Number(/:(\d+)\s/.exec(line)?.[1]);
}
if (!port) throw new Error('the metrics service did not listen');
const get = async (path) => {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: await response.text() };
};
for (let attempt = 0; (await get('/readyz').catch(() => ({ status: 0 }))).status !== 200; attempt++) {
  if (attempt > 150) throw new Error('the metrics service did not become ready');
  await sleep(200);
}
let scraping = true;
const scrapes = (async () => {
  while (scraping) {
    await get('/metrics').catch(() => undefined);
    await sleep(2_000);
  }
})();
const memory = () => {
  const text = readFileSync(`/proc/${service.pid}/status`, 'utf8');
  const mib = (field) => Number((Number(new RegExp(`${field}:\\s+(\\d+)`).exec(text)?.[1]) / 1024).toFixed(1));
  return { hwmMiB: mib('VmHWM'), rssMiB: mib('VmRSS') };
};
const phases = { ready: memory() };
await announce('added', 'Pending');
await sleep(4_000);
phases.create = memory();
await announce('modified', 'Running');
await sleep(4_000);
phases.running = memory();
await announce('resync', 'Running');
await sleep(4_000);
phases.resync = memory();
scraping = false;
await scrapes;
// Its CPU time over the whole run (utime + stime, clock ticks of 1/100 s).
const stat = readFileSync(`/proc/${service.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
const cpuSeconds = (Number(stat[11]) + Number(stat[12])) / 100;
const metrics = (await get('/metrics')).body;
const figure = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
const running = /streamspace_sessions\{phase="Running",template="firefox"\} (\d+)/.exec(metrics)?.[1];
console.log(
  JSON.stringify({
    sessions,
    rate,
    nodeOptions: values.nodeOptions,
    nodeArgs: nodeArgs.join(' '),
    phases,
    runningCounted: Number(running),
    cpuSeconds,
    heapUsedMiB: Number((figure('nodejs_heap_size_used_bytes') / 2 ** 20).toFixed(1)),
    heapTotalMiB: Number((figure('nodejs_heap_size_total_bytes') / 2 ** 20).toFixed(1)),
  }),
);
service.kill('SIGTERM');
await new Promise((resolve) => service.once('exit', resolve));
await nats.stop();
process.exit(0);
