// What the metrics service's memory holds per Session: the heap that N Sessions take in its
// Session view (the shared-state watch, parsed as metrics-service.ts parses it), in its transition
// tracker (seeded with them, as at start-up), and in prom-client after a scrape — built with the
// real code (pnpm run build first), from Session JSON as the watcher stores it in the shared state
// (the bench's Sessions: each its own user). Run it with the metrics service's V8 flags:
//
//   node --expose-gc bench/metrics-session-memory.mjs <sessions> <user-label: on|off>
import { Registry } from 'prom-client';

const repo = new URL('..', import.meta.url).pathname;
const { SharedStateView } = await import(`${repo}packages/shared/dist/index.js`);
const { parseSessionSnapshot, sessionViewKey } = await import(`${repo}services/metrics/dist/session-snapshot.js`);
const { TransitionTracker } = await import(`${repo}services/metrics/dist/transition-tracker.js`);
const { createSessionMetrics } = await import(`${repo}services/metrics/dist/session-metrics.js`);

const sessions = Number(process.argv[2] ?? 10_000);
const userLabel = (process.argv[3] ?? 'off') === 'on';
if (!globalThis.gc) throw new Error('run with --expose-gc');

const namespace = 'bench-pipeline-ab12cd';
const now = Date.now();
const utf8 = new TextEncoder();
const entries = Array.from({ length: sessions }, (_, i) => {
  const name = `bench-${i}`;
  return {
    key: `session.${namespace}.${name}`,
    operation: 'PUT',
    isUpdate: false,
    delta: sessions - 1 - i,
    value: utf8.encode(
      JSON.stringify({
        apiVersion: 'stream.streamspace.io/v1alpha1',
        kind: 'Session',
        metadata: {
          name,
          namespace,
          uid: crypto.randomUUID(),
          resourceVersion: String(1_000_000 + i),
          creationTimestamp: new Date(now - 1e6).toISOString(),
          generation: 1,
        },
        spec: { user: `${name}@example.com`, template: 'firefox', state: 'running' },
        status: {
          phase: 'Running',
          podName: `ss-${name}-6d4cf56db6-x7k2p`,
          url: `https://ss-${name}.desktops.example.com/`,
          observedGeneration: 1,
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              reason: 'PodReady',
              message: 'the session pod is ready',
              lastTransitionTime: new Date(now - 1e5).toISOString(),
              observedGeneration: 1,
            },
          ],
        },
      }),
    ),
  };
});

// A bucket whose watch delivers every entry, then waits: what a KV watch does.
let delivered;
const caughtUp = new Promise((resolve) => {
  delivered = resolve;
});
const bucket = {
  async keys() {
    const keys = (async function* () {
      yield entries[0]?.key;
    })();
    keys.stop = () => undefined;
    return keys;
  },
  async watch() {
    let stopped;
    const stop = new Promise((resolve) => {
      stopped = resolve;
    });
    const watch = (async function* () {
      yield* entries;
      delivered();
      await stop;
    })();
    watch.stop = () => stopped();
    return watch;
  },
};

const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const mib = (bytes) => Number((bytes / 2 ** 20).toFixed(2));

const start = heap();
const view = new SharedStateView({
  bucket: async () => bucket,
  kind: 'session',
  // As metrics-service.ts has it (a build without sessionViewKey keeps every entry key as well).
  ...(sessionViewKey ? { keyOf: sessionViewKey } : {}),
  parse: (raw) => {
    const parsed = parseSessionSnapshot(raw);
    if (!parsed.ok) return parsed;
    return { ok: true, key: `${parsed.snapshot.namespace}/${parsed.snapshot.name}`, value: parsed.snapshot };
  },
});
const controller = new AbortController();
const running = view.run(controller.signal);
await caughtUp;
await view.whenSynced();
// Drop the input before measuring: the view holds what it parsed, not the entries.
entries.length = 0;
const afterView = heap();

const tracker = new TransitionTracker();
tracker.seed(view.values(), Date.now());
const afterTracker = heap();

const registry = new Registry();
createSessionMetrics(registry, {
  sessions: () => view.values(),
  templates: () => ['firefox'],
  synced: () => view.synced,
  userLabel,
  now: Date.now,
});
const text = await registry.metrics();
const afterScrape = heap();

console.log(
  JSON.stringify({
    sessions,
    userLabel,
    viewMiB: mib(afterView - start),
    trackerMiB: mib(afterTracker - afterView),
    promClientAfterScrapeMiB: mib(afterScrape - afterTracker),
    totalMiB: mib(afterScrape - start),
    bytesPerSession: Math.round((afterScrape - start) / sessions),
    scrapeBytes: text.length,
  }),
);
controller.abort();
await running;
