import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  API_GROUP,
  API_VERSION,
  DEFAULT_WORK_PARTITIONS,
  objectKey,
  partitionOf,
  STREAMS,
  sessionChildName,
} from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  installCrds,
  kube,
  ServiceProcess,
} from './harness.js';
import { type RestartableNats, startRestartableNats } from './private-nats.js';
import { overlaps, readIntervals } from './reconcile-intervals.js';
import { createFirefoxTemplate } from './session-steps.js';

/**
 * One writer per key, proven under faults: a watcher and three reconcilers, each as its own NATS
 * user, on a nats-server of the test's own; a stream of spec changes to a set of Sessions while
 * two workers are SIGKILLed (and replaced) and nats-server is restarted. Each worker writes its
 * reconciles' start and end times per key to a file of its own (RECONCILE_INTERVALS_FILE); the
 * test proves from those that no key was ever reconciled by two workers at once, measures how
 * long a killed worker's partitions waited for another worker, and checks that every change
 * converged.
 */

const k = kube();
const PARTITIONS = DEFAULT_WORK_PARTITIONS;
const PIN_TIMEOUT_MS = 5_000;
const DRIVE_MS = 30_000;
let namespace: string;
let nats: RestartableNats;
let dir: string;
const workers: { process: ServiceProcess; file: string }[] = [];
const everyWorker: { process: ServiceProcess; file: string }[] = [];
let watcher: ServiceProcess;

function newWorker(): { process: ServiceProcess; file: string } {
  const file = join(dir, `worker-${everyWorker.length}.jsonl`);
  const worker = {
    file,
    process: new ServiceProcess('reconciler', {
      ...nats.as('reconciler'),
      WATCH_NAMESPACE: namespace,
      INGRESS_DOMAIN: 'desktops.test',
      LOG_LEVEL: 'info',
      RECONCILE_INTERVALS_FILE: file,
    }),
  };
  workers.push(worker);
  everyWorker.push(worker);
  return worker;
}

const sessions = (name?: string) => ({
  group: API_GROUP,
  version: API_VERSION,
  namespace,
  plural: 'sessions',
  ...(name ? { name } : {}),
});

async function setState(name: string, state: 'running' | 'hibernated'): Promise<void> {
  await k.custom.patchNamespacedCustomObject({
    ...sessions(name),
    name,
    body: [{ op: 'replace', path: '/spec/state', value: state }],
  });
}

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('one-writer');
  dir = mkdtempSync(join(tmpdir(), 'streamspace-one-writer-'));
  nats = await startRestartableNats({ authenticated: true });
  watcher = new ServiceProcess('watcher', {
    ...nats.as('watcher'),
    WATCH_NAMESPACE: namespace,
    RESYNC_INTERVAL: '20s',
    WORK_PARTITIONS: String(PARTITIONS),
    PIN_TIMEOUT: `${PIN_TIMEOUT_MS / 1000}s`,
    LOG_LEVEL: 'info',
  });
  for (let i = 0; i < 3; i++) newWorker();
  await Promise.all([watcher, ...workers.map((w) => w.process)].map((p) => p.waitReady(60_000)));
  await createFirefoxTemplate(namespace);
}, 120_000);

afterAll(async () => {
  await Promise.all([watcher, ...everyWorker.map((w) => w.process)].map((p) => p?.kill()));
  await nats?.dispose();
  if (namespace) await deleteNamespace(namespace);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('one writer per key', () => {
  it('never reconciles a key on two workers at once through SIGKILLs and a NATS restart, fails over within seconds, and converges', async () => {
    // Every partition gets Sessions of its own, so every worker's partitions have work.
    const perPartition = new Map<number, string[]>();
    for (let i = 0; [...perPartition.values()].filter((l) => l.length >= 2).length < PARTITIONS; i++) {
      const name = `ow-${i}`;
      const p = partitionOf(objectKey('session', namespace, name), PARTITIONS);
      perPartition.set(p, [...(perPartition.get(p) ?? []), name].slice(0, 2));
    }
    const chosen = [...perPartition.values()].flat();
    const desired = new Map<string, 'running' | 'hibernated'>();
    for (const name of chosen) {
      await k.custom.createNamespacedCustomObject({
        ...sessions(),
        body: sessionObject(namespace, name, `user-${name}`, 'firefox'),
      });
      desired.set(name, 'running');
    }

    const started = Date.now();
    const killedAt = new Map<string, number>();
    const kills: { at: number; file: string }[] = [];
    let natsBackAt = 0;
    let natsDownAt = 0;
    /** Kills the worker that reconciled most in the last 3 s (it surely holds partitions), and starts a replacement. */
    const killBusiest = async () => {
      const recent = (w: { file: string }) =>
        readIntervals([w.file], () => Date.now()).filter((i) => i.start > Date.now() - 3_000).length;
      const busiest = [...workers].sort((a, b) => recent(b) - recent(a))[0] as (typeof workers)[number];
      await busiest.process.kill();
      const at = Date.now();
      killedAt.set(busiest.file, at);
      kills.push({ at, file: busiest.file });
      workers.splice(workers.indexOf(busiest), 1);
      newWorker();
    };

    /** The partitions each worker reconciled in, of the reconciles that started in [from, to). */
    const partitionsByWorker = (intervals: ReturnType<typeof readIntervals>, from: number, to: number) => {
      const served = new Map<string, Set<number>>();
      for (const i of intervals.filter((i) => i.start > from && i.start < to))
        served.set(i.worker, (served.get(i.worker) ?? new Set()).add(i.partition));
      return served;
    };
    /** The live workers share the partitions as the spread check below wants, over the last 4 s. */
    const spread = () => {
      const now = Date.now();
      const served = partitionsByWorker(
        readIntervals(
          workers.map((w) => w.file),
          () => now,
        ),
        now - 4_000,
        now,
      );
      return served.size === 3 && [...served.values()].every((p) => p.size <= Math.ceil(PARTITIONS / 3) + 1);
    };

    // Changes go on until 8 s after the last fault, so its failover has work to show.
    let faultsEndedAt = Number.POSITIVE_INFINITY;
    const faults = (async () => {
      try {
        await injectFaults();
      } finally {
        // Also when a fault fails: the changes stop, and `await faults` below reports it.
        faultsEndedAt = Date.now();
      }
    })();
    async function injectFaults(): Promise<void> {
      await new Promise((r) => setTimeout(r, 6_000));
      // The first kill waits until the workers have spread the partitions (each gives back what is
      // over its fair share), a condition rather than a time: in a CI run of 2026-12-01 it
      // took longer than the 6 s above (a worker still on 6 of 12 when it was killed). Bounded: a
      // spread that never comes is still killed into, and fails the spread check below.
      const spreadBy = Date.now() + 30_000;
      while (!spread() && Date.now() < spreadBy) await new Promise((r) => setTimeout(r, 200));
      await killBusiest();
      await new Promise((r) => setTimeout(r, 8_000));
      natsDownAt = Date.now();
      await nats.restart();
      natsBackAt = Date.now();
      await new Promise((r) => setTimeout(r, 8_000));
      await killBusiest();
    }
    let changes = 0;
    while (Date.now() - started < DRIVE_MS || Date.now() < faultsEndedAt + 8_000) {
      const name = chosen[changes % chosen.length] as string;
      const next = desired.get(name) === 'running' ? 'hibernated' : 'running';
      try {
        await setState(name, next);
        desired.set(name, next);
        changes++;
      } catch (error) {
        console.log(`[one-writer] change of ${name} failed: ${(error as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 60));
    }
    await faults;

    // Convergence: every Session in its last desired state, its Deployment scaled to match.
    await eventually(
      async () => {
        for (const [name, state] of desired) {
          const s = (await k.custom.getNamespacedCustomObject({ ...sessions(), name })) as {
            status?: { phase?: string };
          };
          expect(s.status?.phase, name).toBe(state === 'running' ? 'Running' : 'Hibernated');
          const deployment = await k.apps.readNamespacedDeployment({
            namespace,
            name: sessionChildName(name),
          });
          expect(deployment.spec?.replicas, name).toBe(state === 'running' ? 1 : 0);
        }
      },
      120_000,
      500,
    );
    const nc = await connect({ servers: nats.url, ...userOf(nats.as('admin')) });
    const jsm = await jetstreamManager(nc);
    await eventually(
      async () => expect((await jsm.streams.info(STREAMS.work)).state.messages).toBe(0),
      60_000,
    );
    await nc.close();

    // Exclusivity, from the workers' own records.
    const intervals = readIntervals(
      everyWorker.map((w) => w.file),
      (file) => killedAt.get(file),
    );
    const results = new Map<string, number>();
    for (const i of intervals) results.set(i.result, (results.get(i.result) ?? 0) + 1);
    console.log(
      `[one-writer] ${changes} changes to ${chosen.length} Sessions; ${intervals.length} reconciles by ${new Set(intervals.map((i) => i.worker)).size} workers: ${JSON.stringify(Object.fromEntries(results))}`,
    );
    expect(overlaps(intervals)).toEqual([]);
    expect(intervals.length).toBeGreaterThan(changes / 2);
    expect(new Set(intervals.map((i) => i.worker)).size).toBeGreaterThanOrEqual(4);

    // Spread: before the first kill, the partitions were shared by all three workers (they give
    // back what is over their fair share), not held by whichever started first.
    const firstKill = kills[0]?.at ?? 0;
    const servedBy = partitionsByWorker(intervals, firstKill - 4_000, firstKill);
    console.log(
      `[one-writer] partitions served per worker in the 4 s before the first SIGKILL: ${[...servedBy.values()].map((p) => p.size).join(', ')}`,
    );
    expect(servedBy.size).toBe(3);
    for (const partitions of servedBy.values())
      expect(partitions.size).toBeLessThanOrEqual(Math.ceil(PARTITIONS / 3) + 1);

    // Failover: for each partition the killed worker served, how long until another worker reconciled in it.
    for (const kill of kills) {
      const victim = readIntervals([kill.file], (file) => killedAt.get(file));
      const served = new Set(victim.filter((i) => i.start > kill.at - 5_000).map((i) => i.partition));
      expect(served.size).toBeGreaterThan(0);
      const waits = [...served].map((partition) => {
        const first = intervals
          .filter((i) => i.partition === partition && i.start > kill.at && !victim.includes(i))
          .sort((a, b) => a.start - b.start)[0];
        return first ? first.start - kill.at : Number.POSITIVE_INFINITY;
      });
      const failover = Math.max(...waits);
      console.log(
        `[one-writer] SIGKILL at +${((kill.at - started) / 1000).toFixed(1)}s: its ${served.size} partitions taken over within ${(failover / 1000).toFixed(2)}s (pin timeout ${PIN_TIMEOUT_MS / 1000}s)`,
      );
      // The pin timeout, one pull's lifetime and a margin for a loaded 2-core machine.
      expect(failover).toBeLessThan(PIN_TIMEOUT_MS + 5_000);
    }
    const afterRestart = intervals.filter((i) => i.start > natsBackAt).sort((a, b) => a.start - b.start)[0];
    expect(afterRestart).toBeDefined();
    console.log(
      `[one-writer] nats-server down ${((natsBackAt - natsDownAt) / 1000).toFixed(1)}s; first reconcile ${(((afterRestart?.start ?? 0) - natsBackAt) / 1000).toFixed(2)}s after it was back`,
    );
  }, 300_000);
});

function userOf(env: { NATS_USER?: string; NATS_PASSWORD?: string }) {
  return env.NATS_USER ? { user: env.NATS_USER, pass: env.NATS_PASSWORD as string } : {};
}
