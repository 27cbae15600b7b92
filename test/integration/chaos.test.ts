import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import * as k8s from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, STREAMS } from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionObject } from './fixtures.js';
import { eventually, repo, ServiceProcess } from './harness.js';
import { type PrivateCluster, startPrivateCluster } from './private-cluster.js';
import { type RestartableNats, startRestartableNats } from './private-nats.js';
import { type DesiredState as State, type SessionObject as Obj, sessionViolations } from './session-convergence.js';
import { createFirefoxTemplate } from './session-steps.js';

/**
 * Chaos (issue 7): a seeded driver creates N Sessions and hibernates, wakes and terminates them at
 * random while processes die around it — reconciler workers SIGKILLed and replaced, the watcher
 * and the idle-reaper restarted, nats-server restarted and stopped for a while (JetStream keeps
 * its store), kube-apiserver restarted. It runs on a cluster and a nats-server of its own, so the
 * shared ones are never disturbed. Afterwards every Session must reach its desired state within
 * CONVERGENCE_BOUND_MS, with exactly the children that state calls for, no work item left
 * unacknowledged, and every service ready.
 *
 * CHAOS_SEED replays a run's choices (which session, which transition, which worker dies); the
 * fault schedule itself is fixed. CHAOS_SESSIONS (100) and CHAOS_NATS_OUTAGE_MS (20 000) tune it.
 */

const SEED = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const N = Number(process.env.CHAOS_SESSIONS ?? 100);
const NATS_OUTAGE_MS = Number(process.env.CHAOS_NATS_OUTAGE_MS ?? 20_000);
/** Faults after the NATS outage move by how much longer than 10 s it lasts. */
const SHIFT_MS = NATS_OUTAGE_MS - 10_000;
const CHAOS_MS = 56_000 + SHIFT_MS;
const OPS_PER_SECOND = 6;
const CONVERGENCE_BOUND_MS = 60_000;
const namespace = 'chaos';
const plural = 'sessions';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rng = mulberry32(SEED);
const pick = <T>(items: T[]): T => items[Math.floor(rng() * items.length)] as T;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let cluster: PrivateCluster;
let nats: RestartableNats;
let api: { custom: k8s.CustomObjectsApi; apps: k8s.AppsV1Api; core: k8s.CoreV1Api; net: k8s.NetworkingV1Api };
const reconcilers: ServiceProcess[] = [];
let watcher: ServiceProcess;
let reaper: ServiceProcess;
let metrics: ServiceProcess;
/** Every process this test started, killed or not, for the logs on failure. */
const all: ServiceProcess[] = [];
/** Processes this test killed or stopped on purpose; any other exit is a violation. */
const stoppedOnPurpose = new Set<ServiceProcess>();

function svc(name: string, extra: Record<string, string> = {}): ServiceProcess {
  const p = new ServiceProcess(name, {
    KUBECONFIG: cluster.kubeconfig,
    NATS_URL: nats.url,
    WATCH_NAMESPACE: namespace,
    LOG_LEVEL: 'info',
    ...extra,
  });
  all.push(p);
  return p;
}
const newReconciler = () => {
  const p = svc('reconciler', { INGRESS_DOMAIN: 'desktops.test' });
  reconcilers.push(p);
  return p;
};
const newWatcher = () => svc('watcher', { RESYNC_INTERVAL: '10s' });
const newReaper = () => svc('idle-reaper');
const live = () => [...reconcilers, watcher, reaper, metrics].filter((p) => p.running);

async function retry<T>(what: string, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what}: ${(error as Error).message}`);
      await sleep(400);
    }
  }
}

const code = (error: unknown) => (error as { code?: number }).code;

async function createSession(name: string): Promise<void> {
  await retry(`create ${name}`, async () => {
    try {
      await api.custom.createNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace,
        plural,
        body: sessionObject(namespace, name, `user-${name}`, 'firefox'),
      });
    } catch (error) {
      if (code(error) !== 409) throw error; // an earlier attempt got through before the API server died
    }
  });
}

async function setState(name: string, state: State): Promise<void> {
  await retry(`set ${name} ${state}`, async () => {
    const s = (await api.custom.getNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace,
      plural,
      name,
    })) as Obj;
    if (s.spec.state === state) return;
    s.spec.state = state;
    await api.custom.replaceNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace,
      plural,
      name,
      body: s,
    });
  });
}

beforeAll(async () => {
  console.log(`[chaos] seed ${SEED} (replay with CHAOS_SEED=${SEED}), ${N} sessions`);
  await Promise.all([
    startPrivateCluster('chaos').then((c) => {
      cluster = c;
    }),
    startRestartableNats().then((n) => {
      nats = n;
    }),
  ]);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cluster.kubeconfig);
  api = {
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    apps: kc.makeApiClient(k8s.AppsV1Api),
    core: kc.makeApiClient(k8s.CoreV1Api),
    net: kc.makeApiClient(k8s.NetworkingV1Api),
  };
  for (const args of [
    ['apply', '--server-side', '-f', `${repo}/crds/`],
    ['wait', '--for=condition=Established', '--timeout=60s', '-f', `${repo}/crds/`],
    ['create', 'namespace', namespace],
  ]) {
    const r = await cluster.kubectl(args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  }
  await eventually(() => api.core.readNamespacedServiceAccount({ name: 'default', namespace }), 60_000, 250);
  await createFirefoxTemplate(namespace, api.custom);
  watcher = newWatcher();
  reaper = newReaper();
  metrics = svc('metrics');
  for (let i = 0; i < 3; i++) newReconciler();
  await Promise.all(live().map((p) => p.waitReady(60_000)));
}, 180_000);

afterAll(async () => {
  await Promise.all(all.map((p) => p.kill()));
  await nats?.dispose();
  await cluster?.delete();
});

describe('chaos', () => {
  it(`converges after faults (seed ${SEED})`, async () => {
    const desired = new Map<string, State>();
    const busy = new Set<string>();
    const inflight = new Set<Promise<void>>();
    const faults: string[] = [];
    const t0 = Date.now();
    const at = () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`;
    const fault = (text: string) => {
      faults.push(`${at()} ${text}`);
    };
    let created = 0;
    let ops = 0;
    const track = (name: string, p: Promise<void>) => {
      busy.add(name);
      const q = p.finally(() => {
        busy.delete(name);
        inflight.delete(q);
      });
      inflight.add(q);
    };

    // The driver: creations interleaved with random transitions, at OPS_PER_SECOND.
    const driver = (async () => {
      while (Date.now() - t0 < CHAOS_MS) {
        const candidates = [...desired.keys()].filter((n) => !busy.has(n) && desired.get(n) !== 'terminated');
        if (created < N && (rng() < 0.6 || candidates.length === 0)) {
          const name = `s-${String(created++).padStart(3, '0')}`;
          desired.set(name, 'running');
          track(name, createSession(name));
        } else if (candidates.length > 0) {
          const name = pick(candidates);
          const r = rng();
          const next: State =
            desired.get(name) === 'running'
              ? r < 0.75
                ? 'hibernated'
                : 'terminated'
              : r < 0.75
                ? 'running'
                : 'terminated';
          desired.set(name, next);
          ops++;
          track(name, setState(name, next));
        }
        await sleep(1000 / OPS_PER_SECOND);
      }
      while (created < N) {
        const name = `s-${String(created++).padStart(3, '0')}`;
        desired.set(name, 'running');
        track(name, createSession(name));
      }
    })();

    const killReconcilers = async (count: number) => {
      const alive = reconcilers.filter((p) => p.running);
      for (let i = 0; i < count && alive.length > 0; i++) {
        const victim = alive.splice(Math.floor(rng() * alive.length), 1)[0] as ServiceProcess;
        stoppedOnPurpose.add(victim);
        await victim.kill();
        fault(`SIGKILL reconciler pid ${victim.pid}`);
      }
      for (let i = 0; i < count; i++) fault(`start reconciler pid ${newReconciler().pid}`);
    };
    // The fault schedule (ms after the start), fixed; the seed picks the victims.
    const schedule: [number, () => Promise<void>][] = [
      [4_000, () => killReconcilers(1)],
      [
        8_000,
        async () => {
          stoppedOnPurpose.add(watcher);
          await watcher.kill();
          fault('SIGKILL watcher');
          watcher = newWatcher();
          fault(`start watcher pid ${watcher.pid}`);
        },
      ],
      [12_000, () => killReconcilers(1)],
      [
        14_000,
        async () => {
          stoppedOnPurpose.add(reaper);
          await reaper.kill();
          fault('SIGKILL idle-reaper');
          reaper = newReaper();
          fault(`start idle-reaper pid ${reaper.pid}`);
        },
      ],
      [
        17_000,
        async () => {
          fault('restart nats-server (SIGTERM, same port and store dir)');
          await nats.restart();
          fault('nats-server back');
        },
      ],
      [21_000, () => killReconcilers(2)],
      [
        24_000,
        async () => {
          await nats.stop();
          fault(`nats-server stopped for ${NATS_OUTAGE_MS / 1000}s`);
          await sleep(NATS_OUTAGE_MS);
          await nats.start();
          fault('nats-server started again');
        },
      ],
      [38_000, () => killReconcilers(1)],
      [
        44_000,
        async () => {
          stoppedOnPurpose.add(watcher);
          await watcher.stop();
          fault('SIGTERM watcher');
          watcher = newWatcher();
          fault(`start watcher pid ${watcher.pid}`);
        },
      ],
      [
        46_000,
        async () => {
          stoppedOnPurpose.add(reaper);
          await reaper.stop();
          fault('SIGTERM idle-reaper');
          reaper = newReaper();
          fault(`start idle-reaper pid ${reaper.pid}`);
        },
      ],
      [
        36_000,
        async () => {
          fault('SIGKILL kube-apiserver');
          await cluster.restartApiserver();
          fault('kube-apiserver ready again');
        },
      ],
      [52_000, () => killReconcilers(1)],
    ];
    const injector = (async () => {
      const running: Promise<void>[] = [];
      for (const [when, action] of schedule.sort((a, b) => a[0] - b[0])) {
        const wait = t0 + (when > 24_000 ? when + SHIFT_MS : when) - Date.now();
        if (wait > 0) await sleep(wait);
        running.push(action());
      }
      await Promise.all(running);
    })();

    try {
      await Promise.all([driver, injector]);
      await Promise.all([...inflight]);
      const faultsEnd = Date.now();
      fault('faults and driver done');

      // Convergence: every Session in its desired state, the right children, nothing pending.
      const nc = await retry('connect to nats', () => connect({ servers: nats.url }), 30_000);
      const jsm = await jetstreamManager(nc);
      let violations: string[] = [];
      let converged = false;
      while (Date.now() - faultsEnd < CONVERGENCE_BOUND_MS) {
        violations = await sessionViolations(api, namespace, desired);
        if (violations.length === 0) {
          // A workqueue stream keeps an item until a worker acknowledges it: empty means nothing pending on any partition.
          const info = await jsm.streams.info(STREAMS.work).catch((e: Error) => e);
          if (info instanceof Error) violations.push(`work stream info: ${info.message}`);
          else if (info.state.messages !== 0) violations.push(`work stream: ${info.state.messages} items not acknowledged`);
        }
        if (violations.length === 0) {
          converged = true;
          break;
        }
        await sleep(1_000);
      }
      const convergedMs = Date.now() - faultsEnd;
      await nc.close();

      const counts = { running: 0, hibernated: 0, terminated: 0 };
      for (const s of desired.values()) counts[s]++;
      console.log(
        [
          `[chaos] seed ${SEED}: ${N} sessions, ${ops} transitions; final desired ${JSON.stringify(counts)}`,
          '[chaos] faults:',
          ...faults.map((f) => `  ${f}`),
          converged
            ? `[chaos] converged ${(convergedMs / 1000).toFixed(1)}s after the faults stopped (bound ${CONVERGENCE_BOUND_MS / 1000}s)`
            : `[chaos] NOT converged within ${CONVERGENCE_BOUND_MS / 1000}s`,
        ].join('\n'),
      );
      expect(violations.slice(0, 20), `seed ${SEED}: not converged`).toEqual([]);

      // Every service ready again, and none exited unless the test killed it.
      const crashed = all
        .filter((p) => !p.running && !stoppedOnPurpose.has(p))
        .map((p) => `${p.service} ${p.pid}`);
      expect(crashed, `seed ${SEED}: services exited by themselves`).toEqual([]);
      await Promise.all(live().map((p) => p.waitReady(15_000)));
      for (const p of live()) expect((await p.get('/readyz')).status, `${p.service} /readyz`).toBe(200);
    } catch (error) {
      console.log(`[chaos] FAILED with seed ${SEED} (replay: CHAOS_SEED=${SEED})\n${faults.join('\n')}`);
      for (const p of all.filter((q) => !stoppedOnPurpose.has(q)))
        console.log(`--- ${p.service} ${p.pid}\n${p.logs.slice(-15).join('\n')}`);
      throw error;
    }
  }, 175_000);
});
