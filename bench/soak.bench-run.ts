import { mkdirSync, writeFileSync } from 'node:fs';
import { API_GROUP, API_VERSION } from '@streamspace/shared';
import { expect, it } from 'vitest';
import { sessionObject } from '../test/integration/fixtures.js';
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
import { createFirefoxTemplate } from '../test/integration/session-steps.js';
import { procStatus } from './process-cost.mjs';

/**
 * Issue 7's soak: SOAK_MINUTES (60) of churn at SOAK_RATE (20) changes/s — Sessions created,
 * hibernated, woken, terminated and deleted at random over a pool of SOAK_POOL (200) names — on
 * the local cluster with the real services (watcher, 2 reconciler workers, idle-reaper, metrics;
 * a private nats-server). Every 10 s each service's RSS (VmRSS) is sampled; after a warm-up of
 * SOAK_WARMUP_S (60) seconds the slope of RSS over time (least squares, MB/hour) is reported per
 * service. Run with `pnpm soak`; the result goes to .bench/soak.json.
 */

const MINUTES = Number(process.env.SOAK_MINUTES ?? 60);
const RATE = Number(process.env.SOAK_RATE ?? 20);
const POOL = Number(process.env.SOAK_POOL ?? 200);
const WARMUP_S = Number(process.env.SOAK_WARMUP_S ?? 60);
const SAMPLE_MS = 10_000;
const MAX_INFLIGHT = 100;
const plural = 'sessions';
type State = 'running' | 'hibernated' | 'terminated';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssMb(pid: number | undefined): number {
  return procStatus(pid, 'VmRSS') / 2 ** 20;
}

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

it(
  `soak: ${MINUTES} min of churn at ${RATE} changes/s`,
  async () => {
    await installCrds();
    const namespace = await createNamespace('soak');
    const nats = await startPrivateNats();
    const k = kube();
    const nodeOptions = deployedNodeOptions();
    const env = {
      WATCH_NAMESPACE: namespace,
      NATS_URL: nats.url,
      LOG_LEVEL: 'info',
      ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
    };
    const services: Record<string, ServiceProcess> = {
      watcher: new ServiceProcess('watcher', { ...env, RESYNC_INTERVAL: '5m' }),
      'reconciler-1': new ServiceProcess('reconciler', { ...env, INGRESS_DOMAIN: 'soak.test' }),
      'reconciler-2': new ServiceProcess('reconciler', { ...env, INGRESS_DOMAIN: 'soak.test' }),
      'idle-reaper': new ServiceProcess('idle-reaper', env),
      metrics: new ServiceProcess('metrics', env),
    };
    const samples: { t: number; rssMb: Record<string, number> }[] = [];
    const counts = { create: 0, hibernate: 0, wake: 0, terminate: 0, delete: 0, errors: 0, skipped: 0 };
    /** Driver requests that failed, by operation and HTTP status (the services' own errors are not these). */
    const errorReasons: Record<string, number> = {};
    try {
      await Promise.all(Object.values(services).map((s) => s.waitReady(60_000)));
      await createFirefoxTemplate(namespace);

      // What the driver believes each slot holds; it moves one step per change.
      const slots = new Map<string, State>();
      const busy = new Set<string>();
      let inflight = 0;
      const change = async (name: string): Promise<void> => {
        const state = slots.get(name);
        const ref = { group: API_GROUP, version: API_VERSION, namespace, plural, name };
        if (state === undefined) {
          await k.custom.createNamespacedCustomObject({
            ...ref,
            body: sessionObject(namespace, name, `u${name.slice(1)}`, 'firefox'),
          });
          slots.set(name, 'running');
          counts.create++;
        } else if (state === 'terminated') {
          await k.custom.deleteNamespacedCustomObject(ref);
          slots.delete(name);
          counts.delete++;
        } else {
          const next: State =
            Math.random() < 0.25 ? 'terminated' : state === 'running' ? 'hibernated' : 'running';
          const s = (await k.custom.getNamespacedCustomObject(ref)) as { spec: { state: State } };
          s.spec.state = next;
          await k.custom.replaceNamespacedCustomObject({ ...ref, body: s });
          slots.set(name, next);
          counts[next === 'terminated' ? 'terminate' : next === 'running' ? 'wake' : 'hibernate']++;
        }
      };

      const start = Date.now();
      const end = start + MINUTES * 60_000;
      const sampler = (async () => {
        while (Date.now() < end) {
          const rss: Record<string, number> = {};
          for (const [name, s] of Object.entries(services)) {
            rss[name] = s.running ? rssMb(s.pid) : Number.NaN;
            // The harness keeps every log line; only the recent ones matter here.
            if (s.logs.length > 2_000) s.logs.splice(0, s.logs.length - 500);
          }
          samples.push({ t: (Date.now() - start) / 1000, rssMb: rss });
          await sleep(Math.min(SAMPLE_MS, Math.max(0, end - Date.now())));
        }
      })();
      let n = 0;
      while (Date.now() < end) {
        const due = start + (n * 1000) / RATE;
        if (due > Date.now()) await sleep(due - Date.now());
        n++;
        let name = `s${Math.floor(Math.random() * POOL)}`;
        for (let tries = 0; busy.has(name) && tries < 10; tries++)
          name = `s${Math.floor(Math.random() * POOL)}`;
        if (busy.has(name) || inflight >= MAX_INFLIGHT) {
          counts.skipped++;
          continue;
        }
        busy.add(name);
        inflight++;
        change(name)
          .catch((error: { code?: unknown; message?: string }) => {
            counts.errors++;
            // What failed and how: the HTTP status for API errors (409: a conflict or a name still
            // being deleted), the message otherwise.
            const why =
              typeof error.code === 'number' ? `HTTP ${error.code}` : String(error.message).slice(0, 80);
            const op = slots.has(name) ? 'change' : 'create';
            errorReasons[`${op}: ${why}`] = (errorReasons[`${op}: ${why}`] ?? 0) + 1;
          })
          .finally(() => {
            busy.delete(name);
            inflight--;
          });
      }
      await sampler;
      while (inflight > 0) await sleep(100);
      const elapsedS = (Date.now() - start) / 1000;

      const result = {
        startedAt: new Date(start).toISOString(),
        minutes: MINUTES,
        elapsedS: Math.round(elapsedS),
        targetRate: RATE,
        achievedRate: Number(
          (
            (counts.create + counts.hibernate + counts.wake + counts.terminate + counts.delete) /
            elapsedS
          ).toFixed(2),
        ),
        pool: POOL,
        warmupS: WARMUP_S,
        nodeOptions,
        counts,
        errorReasons,
        services: Object.entries(services).map(([name, s]) => {
          const series = samples.map((p) => [p.t, p.rssMb[name] ?? Number.NaN] as [number, number]);
          const steady = series.filter(([t, y]) => t >= WARMUP_S && Number.isFinite(y));
          const values = series.map(([, y]) => y).filter(Number.isFinite);
          return {
            service: name,
            alive: s.running,
            samples: steady.length,
            rssFirstMb: Number((values[0] ?? Number.NaN).toFixed(1)),
            rssLastMb: Number((values.at(-1) ?? Number.NaN).toFixed(1)),
            rssMaxMb: Number(Math.max(...values).toFixed(1)),
            slopeMbPerHour: Number((slope(steady.map(([t, y]) => [t / 3600, y])) || 0).toFixed(1)),
          };
        }),
        samples,
      };
      console.log(
        [
          `soak: ${result.elapsedS}s at ${result.achievedRate} changes/s (target ${RATE}); ${JSON.stringify(counts)}; driver errors ${JSON.stringify(errorReasons)}`,
          'service        alive  first MB  last MB  max MB  slope MB/h (after warm-up, n samples)',
          ...result.services.map(
            (s) =>
              `${s.service.padEnd(14)} ${String(s.alive).padEnd(6)} ${String(s.rssFirstMb).padStart(8)} ${String(s.rssLastMb).padStart(8)} ${String(s.rssMaxMb).padStart(7)}  ${String(s.slopeMbPerHour).padStart(9)} (n=${s.samples})`,
          ),
        ].join('\n'),
      );
      mkdirSync(`${repo}/.bench`, { recursive: true });
      writeFileSync(`${repo}/.bench/soak.json`, `${JSON.stringify(result, null, 2)}\n`);
      expect(result.services.filter((s) => !s.alive).map((s) => s.service)).toEqual([]);
    } finally {
      await Promise.all(Object.values(services).map((s) => s.stop()));
      await nats.stop();
      await deleteNamespace(namespace);
    }
  },
  (MINUTES + 10) * 60_000,
);
