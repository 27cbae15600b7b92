// What the idle reaper's memory holds per Session: the heap that N Sessions take in IdleReaper,
// read from Session JSON as the shared-state watch delivers it, with the real code (pnpm run
// build first). Run it with the reaper's V8 flags (the chart's idleReaper.nodeArgs):
//
//   node --expose-gc --no-opt --optimize-for-size bench/reaper-session-memory.mjs <sessions> <owned|foreign|adopt>
//
// owned: this replica decides them (deadlines scheduled); foreign: another replica owns them and
// this one only holds their facts, to adopt them at once should the owner die; adopt: this
// replica owns every second one and then adopts the others (the other replica died), and what is
// measured is the heap the adoption adds, with the status.lastActivity writer beside the reaper.
import { Registry } from 'prom-client';

const repo = new URL('..', import.meta.url).pathname;
const { readTrackedSession } = await import(`${repo}services/idle-reaper/dist/session-facts.js`);
const { IdleReaper } = await import(`${repo}services/idle-reaper/dist/idle-reaper.js`);
const { createReaperMetrics } = await import(`${repo}services/idle-reaper/dist/reaper-metrics.js`);
const { LastActivityWriter } = await import(`${repo}services/idle-reaper/dist/last-activity-writer.js`);
const { createLogger } = await import(`${repo}packages/shared/dist/index.js`);

const sessions = Number(process.argv[2] ?? 50_000);
const mode = process.argv[3] ?? 'owned';
if (!globalThis.gc) throw new Error('run with --expose-gc');

// A Session as the watcher stores it in the shared state (the fields the bench's Sessions have).
const now = Date.now();
const inputs = Array.from({ length: sessions }, (_, i) =>
  JSON.stringify({
    apiVersion: 'stream.streamspace.io/v1alpha1',
    kind: 'Session',
    metadata: {
      name: `bench-session-${i}`,
      namespace: 'bench-reaper-ab12cd',
      uid: crypto.randomUUID(),
      resourceVersion: String(100_000 + i),
      creationTimestamp: new Date(now - 1e6).toISOString(),
      generation: 1,
    },
    spec: { user: 'user', template: 'template', state: 'running', idleTimeout: '60s' },
    status: {
      phase: 'Running',
      lastActivity: new Date(now - i).toISOString(),
      conditions: [
        { type: 'Ready', status: 'True', lastTransitionTime: new Date(now - 1e5).toISOString(), reason: 'PodReady' },
      ],
    },
  }),
);
const metrics = createReaperMetrics(new Registry());
const log = createLogger('bench', 'silent');
// Every Session reported moments ago, after the status.lastActivity it shows: a write is planned.
const activity = (key) => (key ? now - 5_000 : undefined);
let adoptAll = false;
const owns = (key) =>
  mode === 'owned' || (mode === 'adopt' && (adoptAll || Number(key.slice(key.lastIndexOf('-') + 1)) % 2 === 0));
const statusWriter = new LastActivityWriter({
  intervalMs: 10 * 60_000,
  latest: activity,
  session: (key) => reaper.owned(key),
  write: async () => undefined,
  metrics,
  log,
});
const reaper = new IdleReaper({
  defaults: { idleTimeoutMs: 30 * 60_000, maxSessionDurationMs: 8 * 3600_000 },
  activityOf: mode === 'adopt' ? activity : () => undefined,
  issue: async () => undefined,
  metrics,
  log,
  commandRetryMs: 30_000,
  owns,
  ...(mode === 'adopt' ? { onSessionChange: (key) => statusWriter.notify(key), defer: (work) => work() } : {}),
});
gc();
gc();
const before = process.memoryUsage().heapUsed;
for (const input of inputs) reaper.upsert(readTrackedSession(JSON.parse(input)));
gc();
gc();
const after = process.memoryUsage().heapUsed;
let adoption = {};
if (mode === 'adopt') {
  reaper.markSessionsSynced();
  reaper.markActivityLoaded();
  adoptAll = true;
  const { adopted } = reaper.reassign({ memberLeft: true });
  gc();
  gc();
  const added = process.memoryUsage().heapUsed - after;
  adoption = { adopted, adoptionMiB: Number((added / 2 ** 20).toFixed(2)), bytesPerAdopted: Math.round(added / adopted) };
}
console.log(
  JSON.stringify({
    sessions,
    mode,
    heapMiB: Number(((after - before) / 2 ** 20).toFixed(2)),
    bytesPerSession: Math.round((after - before) / sessions),
    ...adoption,
  }),
);
reaper.stop();
statusWriter.stop();
