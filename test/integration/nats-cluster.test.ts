import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JetStreamManager } from '@nats-io/jetstream';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import * as k8s from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, BUCKETS, STREAMS, subjects } from '@streamspace/shared';
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
import { Scrape } from './metrics-scrape.js';
import { type NatsCluster, type NatsClusterServer, startNatsCluster } from './nats-cluster.js';
import { startRestartableNats } from './private-nats.js';
import { createFirefoxTemplate } from './session-steps.js';
import { type DesiredState, type SessionObject, sessionViolations } from './session-convergence.js';

/**
 * The control plane on a three-server JetStream cluster (issue 15): a watcher, two reconcilers,
 * the idle reaper and the metrics service, each as its own NATS user with the list of all three
 * servers, while a driver keeps ~100 Sessions churning (created, hibernated, woken, terminated,
 * activity reported for the running ones). Three faults, one after the other on one cluster:
 *   1. SIGKILL of the server leading the work stream, restarted 10 s later;
 *   2. a rolling restart of all three servers, one at a time;
 *   3. one server stopped for a minute; the Sessions must converge while it is still down.
 * After each, every Session converges (nothing lost) and nothing is pending; over the whole run
 * no child is created twice and no Session's status ever goes back to an older generation
 * (nothing applied twice or late), observed through watches of the test's own. How long each
 * service was not ready (polling /readyz) is printed for each fault.
 */

const k = kube();
const SESSIONS = 100;
const MAX_SESSIONS = 2 * SESSIONS;
const OPS_PER_SECOND = 4;
// Generous: on the shared 2-core machine (load 20+) 100 creations took up to a minute to converge.
const SETTLE_BOUND_MS = 150_000;
const PARTITION_MS = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let namespace: string;
let cluster: NatsCluster;
let nc: NatsConnection;
let jsm: JetStreamManager;
const services: { key: string; process: ServiceProcess }[] = [];
const stopFollowing: (() => void)[] = [];

const api = { custom: k.custom, apps: k.apps, core: k.core, net: k.networking };
const sessions = { group: API_GROUP, version: API_VERSION, plural: 'sessions' };

/** What the driver last wrote for each Session. */
const desired = new Map<string, DesiredState>();
/** Violations seen by the watches: a child created twice, a status gone back to an older generation. */
const watchViolations: string[] = [];
/** Distinct uids of each child Deployment, by name: more than one means it was created again. */
const deploymentUids = new Map<string, Set<string>>();

function svc(
  key: string,
  service: string,
  identity: string,
  extra: Record<string, string> = {},
): ServiceProcess {
  const process = new ServiceProcess(service, {
    ...cluster.as(identity),
    WATCH_NAMESPACE: namespace,
    LOG_LEVEL: 'info',
    ...extra,
  });
  services.push({ key, process });
  return process;
}

/** Follows a collection with a watch of the test's own, restarted whenever it ends. */
function follow(path: string, onEvent: (type: string, object: Record<string, unknown>) => void): () => void {
  const watch = new k8s.Watch(k.kc);
  let stopped = false;
  let request: AbortController | undefined;
  const start = () => {
    if (stopped) return;
    watch
      .watch(path, {}, onEvent, () => {
        if (!stopped) setTimeout(start, 200);
      })
      .then((r) => {
        request = r;
      })
      .catch(() => setTimeout(start, 500));
  };
  start();
  return () => {
    stopped = true;
    request?.abort();
  };
}

/** The time each service spent not ready (its /readyz not 200), by the phase it happened in. */
class NotReadyClock {
  readonly byPhase = new Map<string, Map<string, number>>();
  phase = 'start';
  private running = true;
  private readonly loop: Promise<void>;

  constructor(private readonly everyMs = 250) {
    this.loop = this.poll();
  }

  private async poll(): Promise<void> {
    let last = Date.now();
    while (this.running) {
      await sleep(this.everyMs);
      const now = Date.now();
      const elapsed = now - last;
      last = now;
      const phase = this.byPhase.get(this.phase) ?? new Map<string, number>();
      this.byPhase.set(this.phase, phase);
      await Promise.all(
        services.map(async ({ key, process }) => {
          if (!process.running) return;
          const ready = await fetch(`http://127.0.0.1:${process.port}/readyz`, {
            signal: AbortSignal.timeout(1_000),
          })
            .then((r) => r.status === 200)
            .catch(() => false);
          phase.set(key, (phase.get(key) ?? 0) + (ready ? 0 : elapsed));
        }),
      );
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  report(): string {
    const keys = services.map((s) => s.key);
    const lines = [`[nats-cluster] seconds not ready (polled /readyz every ${this.everyMs} ms):`];
    lines.push(`  ${'phase'.padEnd(22)}${keys.map((k) => k.padStart(13)).join('')}`);
    for (const [phase, times] of this.byPhase)
      lines.push(
        `  ${phase.padEnd(22)}${keys.map((k) => ((times.get(k) ?? 0) / 1000).toFixed(1).padStart(13)).join('')}`,
      );
    return lines.join('\n');
  }
}

/** Creates, hibernates, wakes and terminates Sessions at OPS_PER_SECOND, keeping ~SESSIONS alive. */
class Driver {
  private created = 0;
  private readonly busy = new Set<string>();
  private readonly inflight = new Set<Promise<void>>();
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  ops = 0;

  private track(name: string, p: Promise<void>): Promise<void> {
    this.busy.add(name);
    const q = p.finally(() => {
      this.busy.delete(name);
      this.inflight.delete(q);
    });
    this.inflight.add(q);
    return q;
  }

  create(): Promise<void> {
    const name = `s-${String(this.created++).padStart(3, '0')}`;
    desired.set(name, 'running');
    return this.track(
      name,
      retry(() =>
        k.custom
          .createNamespacedCustomObject({
            ...sessions,
            namespace,
            body: sessionObject(namespace, name, `user-${name}`, 'firefox'),
          })
          .catch((error: { code?: number }) => {
            if (error.code !== 409) throw error;
          }),
      ),
    );
  }

  private step(): void {
    const alive = [...desired].filter(([, s]) => s !== 'terminated').length;
    if (alive < SESSIONS && this.created < MAX_SESSIONS) {
      void this.create();
      return;
    }
    const candidates = [...desired].filter(([n, s]) => s !== 'terminated' && !this.busy.has(n));
    if (candidates.length === 0) return;
    const [name, state] = candidates[Math.floor(Math.random() * candidates.length)] as [string, DesiredState];
    const next: DesiredState =
      Math.random() < 0.12 ? 'terminated' : state === 'running' ? 'hibernated' : 'running';
    desired.set(name, next);
    this.ops++;
    void this.track(
      name,
      retry(() =>
        k.custom.patchNamespacedCustomObject({
          ...sessions,
          namespace,
          name,
          body: [{ op: 'replace', path: '/spec/state', value: next }],
        }),
      ),
    );
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        this.step();
        await sleep(1000 / OPS_PER_SECOND);
      }
    })();
  }

  /** Stops making changes and waits for the ones under way to be written. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await Promise.all([...this.inflight]);
  }
}

/** Retries a write until the API server takes it (a create that got through earlier counts). */
function retry<T>(fn: () => Promise<T>): Promise<T> {
  return eventually(fn, 60_000, 300);
}

/** Reports activity for every running Session every 3 s, as an activity reporter does. */
function reportActivity(): () => void {
  let running = true;
  void (async () => {
    while (running) {
      for (const [name, state] of desired)
        if (state === 'running') nc.publish(subjects.activity(namespace, name));
      await sleep(3_000);
    }
  })();
  return () => {
    running = false;
  };
}

async function sumOf(key: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  let total = 0;
  for (const s of services.filter((s) => s.key.startsWith(key) && s.process.running))
    total += (await Scrape.of(s.process)).sum(name, labels);
  return total;
}

const driver = new Driver();
let clock: NotReadyClock;
let stopActivity: () => void = () => undefined;

/** Stops the driver and waits until every Session converged and no work item is pending. */
async function settle(label: string): Promise<number> {
  await driver.stop();
  const t0 = Date.now();
  let violations: string[] = [];
  while (Date.now() - t0 < SETTLE_BOUND_MS) {
    violations = await sessionViolations(api, namespace, desired);
    if (violations.length === 0) {
      const work = await jsm.streams.info(STREAMS.work).catch((e: Error) => e);
      if (work instanceof Error) violations.push(`work stream info: ${work.message}`);
      else if (work.state.messages !== 0)
        violations.push(`work stream: ${work.state.messages} items not acknowledged`);
    }
    if (violations.length === 0) break;
    await sleep(1_000);
  }
  const ms = Date.now() - t0;
  if (violations.length > 0) {
    // Every service's whole log, for the one who reads the failure.
    const dir = mkdtempSync(join(tmpdir(), 'streamspace-nats-cluster-logs-'));
    for (const { key, process } of services) writeFileSync(join(dir, `${key}.log`), process.logs.join('\n'));
    console.log(`[nats-cluster] ${label}: not converged; the services' logs are in ${dir}`);
  }
  expect(violations.slice(0, 20), `${label}: not converged within ${SETTLE_BOUND_MS / 1000}s`).toEqual([]);
  console.log(
    `[nats-cluster] ${label}: ${desired.size} sessions converged ${(ms / 1000).toFixed(1)}s after the driver stopped`,
  );
  return ms;
}

async function leaderOf(stream: string): Promise<NatsClusterServer> {
  const info = await retry(() => jsm.streams.info(stream));
  const server = cluster.servers.find((s) => s.name === info.cluster?.leader);
  if (!server) throw new Error(`${stream} has no leader among ${cluster.servers.map((s) => s.name)}`);
  return server;
}

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('nats-cluster');
  cluster = await startNatsCluster(3);
  nc = await cluster.admin();
  jsm = await jetstreamManager(nc);
  await createFirefoxTemplate(namespace);
  svc('watcher', 'watcher', 'watcher');
  for (const i of [1, 2])
    svc(`reconciler-${i}`, 'reconciler', 'reconciler', { INGRESS_DOMAIN: 'desktops.test' });
  svc('idle-reaper', 'idle-reaper', 'idle-reaper');
  svc('metrics', 'metrics', 'metrics');
  await Promise.all(services.map((s) => s.process.waitReady(90_000)));
  clock = new NotReadyClock();

  stopFollowing.push(
    follow(`/apis/apps/v1/namespaces/${namespace}/deployments`, (_type, object) => {
      const metadata = object.metadata as { name: string; uid: string };
      const uids = deploymentUids.get(metadata.name) ?? new Set<string>();
      uids.add(metadata.uid);
      deploymentUids.set(metadata.name, uids);
    }),
  );
  // A Session's status must never describe an older generation than it did before: a late or
  // repeated work item applied on stale state would write one.
  const newest = new Map<string, number>();
  stopFollowing.push(
    follow(`/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace}/sessions`, (_type, object) => {
      const session = object as unknown as SessionObject;
      const observed = session.status?.observedGeneration;
      if (observed === undefined) return;
      const before = newest.get(session.metadata.name) ?? 0;
      if (observed < before)
        watchViolations.push(
          `${session.metadata.name}: status went back from generation ${before} to ${observed}`,
        );
      newest.set(session.metadata.name, Math.max(before, observed));
    }),
  );

  // The streams were declared with three replicas, since the server is part of a cluster.
  for (const stream of [
    STREAMS.events,
    STREAMS.work,
    STREAMS.commands,
    `KV_${BUCKETS.state}`,
    `KV_${BUCKETS.activity}`,
    `KV_${BUCKETS.reaperMembers}`,
  ]) {
    const info = await jsm.streams.info(stream);
    expect(info.config.num_replicas, stream).toBe(3);
  }
  expect((await jsm.consumers.info(STREAMS.work, 'reconciler-p0')).config.num_replicas).toBe(3);

  const initial: Promise<void>[] = [];
  for (let i = 0; i < SESSIONS; i++) initial.push(driver.create());
  await Promise.all(initial);
  stopActivity = reportActivity();
  await settle('100 sessions created');
}, 360_000);

afterAll(async () => {
  stopActivity();
  await driver.stop();
  if (clock) {
    await clock.stop();
    console.log(clock.report());
  }
  for (const stop of stopFollowing) stop();
  await Promise.all(services.map((s) => s.process.kill()));
  await nc?.close();
  await cluster?.dispose();
  if (namespace) await deleteNamespace(namespace);
});

describe('the control plane on a three-server NATS cluster', () => {
  it('loses and doubles nothing when the server leading the work stream is SIGKILLed and restarted', async () => {
    clock.phase = 'leader SIGKILL';
    driver.start();
    await sleep(3_000);
    const leader = await leaderOf(STREAMS.work);
    await leader.kill();
    console.log(`[nats-cluster] SIGKILL ${leader.name}, leader of ${STREAMS.work}`);
    await sleep(10_000);
    await leader.start();
    await cluster.waitCurrent(jsm);
    await sleep(3_000);
    await settle('leader SIGKILL');
    expect(await leaderOf(STREAMS.work)).toBeDefined();
  }, 300_000);

  it('loses and doubles nothing across a rolling restart of all three servers', async () => {
    clock.phase = 'rolling restart';
    driver.start();
    for (const server of cluster.servers) {
      await server.stop();
      await server.start();
      // The next server goes only once every stream has all its replicas again, as a rolling
      // update of a StatefulSet waits for the pod's readiness.
      await cluster.waitCurrent(jsm);
    }
    await settle('rolling restart');
  }, 300_000);

  it('keeps serving with one server down for a minute, and catches it up when it returns', async () => {
    clock.phase = 'one server down';
    const reportsBefore = await sumOf('idle-reaper', 'streamspace_reaper_activity_reports_total', {
      source: 'nats',
      result: 'accepted',
    });
    const down = await leaderOf(`KV_${BUCKETS.state}`);
    await down.stop();
    const downAt = Date.now();
    console.log(
      `[nats-cluster] stopped ${down.name}, leader of KV_${BUCKETS.state}, for ${PARTITION_MS / 1000}s`,
    );
    driver.start();
    await sleep(20_000);
    // The other two serve: every change made while it is away converges before it returns.
    await settle('while one server is down');
    expect(down.running).toBe(false);
    const reportsDuring = await sumOf('idle-reaper', 'streamspace_reaper_activity_reports_total', {
      source: 'nats',
      result: 'accepted',
    });
    expect(reportsDuring, 'activity reports taken while one server was down').toBeGreaterThan(reportsBefore);
    await sleep(Math.max(0, PARTITION_MS - (Date.now() - downAt)));
    clock.phase = 'server back';
    driver.start();
    await down.start();
    await cluster.waitCurrent(jsm);
    await sleep(3_000);
    await settle('after the server returned');
  }, 480_000);

  it('keeps a watcher whose replica count NATS refuses not ready, saying which setting to change', async () => {
    // More copies than the cluster has servers.
    const tooMany = new ServiceProcess('watcher', {
      ...cluster.as('watcher'),
      WATCH_NAMESPACE: namespace,
      NATS_REPLICAS: '5',
    });
    // Three copies on a single server.
    const single = await startRestartableNats();
    const notClustered = new ServiceProcess('watcher', {
      NATS_URL: single.url,
      WATCH_NAMESPACE: namespace,
      NATS_REPLICAS: '3',
    });
    const refused = [tooMany, notClustered];
    try {
      for (const [watcher, says] of [
        [tooMany, /cannot place 5 copies.*NATS_REPLICAS/],
        [notClustered, /not part of a cluster.*NATS_REPLICAS=1/],
      ] as const) {
        await eventually(async () => {
          const { status, body } = await watcher.get('/readyz');
          expect(status).toBe(503);
          expect(JSON.parse(body).checks.jetstream.reason).toMatch(says);
          const errors = (await Scrape.of(watcher)).value('streamspace_watcher_topology_errors_total', {
            reason: 'replicas_refused',
          });
          expect(errors).toBeGreaterThan(0);
        }, 30_000);
      }
      // Nothing was changed: the streams keep their three copies.
      expect((await jsm.streams.info(STREAMS.work)).config.num_replicas).toBe(3);
    } finally {
      await Promise.all(refused.map((p) => p.kill()));
      await single.dispose();
    }
  });

  it('never created a child twice, never applied a stale status, dead-lettered and dropped nothing', async () => {
    const recreated = [...deploymentUids]
      .filter(([, uids]) => uids.size > 1)
      .map(([name, uids]) => `${name}: ${uids.size} uids`);
    expect(recreated, 'Deployments created more than once').toEqual([]);
    expect(deploymentUids.size, 'Deployments seen by the watch').toBeGreaterThanOrEqual(SESSIONS);
    expect(watchViolations).toEqual([]);
    const deadLetters = await jsm.streams.info(STREAMS.deadLetter);
    expect(deadLetters.state.messages, 'dead letters').toBe(0);
    expect(await sumOf('watcher', 'streamspace_watcher_publications_dropped_total')).toBe(0);
    expect(
      await sumOf('reconciler', 'streamspace_reconciler_reconciles_total', { result: 'dead_lettered' }),
    ).toBe(0);
    // Nothing else changed a Session's desired state: the reaper decided nothing (activity kept them all).
    expect(await sumOf('idle-reaper', 'streamspace_reaper_decisions_total')).toBe(0);
    // No service exited by itself.
    expect(services.filter((s) => !s.process.running).map((s) => s.key)).toEqual([]);
    console.log(`[nats-cluster] ${desired.size} sessions, ${driver.ops} transitions`);
  });
});
