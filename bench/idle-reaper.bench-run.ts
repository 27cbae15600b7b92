import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import * as k8s from '@kubernetes/client-node';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { ANNOTATIONS, API_GROUP, API_VERSION, BUCKETS, declareTopology, subjects } from '@streamspace/shared';
import { expect, it, onTestFinished } from 'vitest';
import { sessionObject } from '../test/integration/fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  deployedNodeArgs,
  deployedNodeOptions,
  installCrds,
  kube,
  kubectl,
  repo,
  ServiceProcess,
} from '../test/integration/harness.js';
import { MemberSet } from '../services/idle-reaper/src/session-ownership.js';
import { procCpuSeconds, procStatus } from './process-cost.mjs';

/**
 * Issue 4's numbers: the idle reaper tracking N Sessions (BENCH_SESSIONS, default 10,000) with
 * steady activity traffic over NATS, on the local control plane. Sessions are created directly in
 * the API server and marked Running through the status subresource (no reconciler: the reaper
 * only reads spec and status). Every session reports activity every BENCH_REPORT_EVERY; after a
 * steady phase, BENCH_LEAVERS of them stop reporting at staggered moments, and each must be
 * hibernated at its deadline (last report + idleTimeout) while the others keep running.
 *
 * Measured: p50/p90/p99/max delay from each deadline to the spec.state change — when the executor
 * decided (its state-changed-at annotation), when its PATCH returned (its log), and when this
 * process saw the change through a watch — activity reports accepted per second (steady,
 * and at rising offered rates until it no longer keeps up), the reaper's peak RSS (VmHWM), and any
 * wrong hibernation. Run with `pnpm bench:reaper`; the result goes to .bench/idle-reaper.json.
 *
 * API-server writes: each Session is created with a status.lastActivity spread evenly over the
 * last BENCH_STATUS_SPREAD (default: the reaper's status write interval, 10m), as on a cluster
 * that has run for longer than one interval, so the steady phase sees the steady rate of
 * status.lastActivity writes rather than none (all due in 10 minutes) or a burst. Counted twice:
 * the reaper's own counter and the API server's apiserver_request_total for Sessions (writes
 * only; nothing else writes Sessions in the steady phase). The machine's load average is
 * recorded beside the CPU figure, which is the reaper's own CPU time (/proc/<pid>/stat).
 *
 * Sharding (BENCH_REAPER_REPLICAS=2, issue 15): the replicas share the Sessions, each owning a
 * part; BENCH_KILL_AFTER_MS after the first leaver's deadline (in the middle of the decisions)
 * one replica is SIGKILLed, and the other must take its part over and still hibernate every
 * leaver on time, once. Reported per replica: owned Sessions, RSS, peak RSS and CPU in the steady
 * phase; and the takeover time, the decision delays of the killed replica's leavers apart, and
 * doubled decisions (a leaver with more than one Idle Event). The ramp runs with one replica only.
 * A negative BENCH_KILL_AFTER_MS kills it before the decisions start (-40000: while the leavers
 * leave), which measures decisions after a takeover rather than across one.
 */

const N = Number(process.env.BENCH_SESSIONS ?? 10_000);
const IDLE_TIMEOUT_S = Number(process.env.BENCH_IDLE_TIMEOUT_S ?? 60);
const REPORT_EVERY_MS = Number(process.env.BENCH_REPORT_EVERY_MS ?? 10_000);
const LEAVERS = Number(process.env.BENCH_LEAVERS ?? 1_000);
const STEADY_MS = Number(process.env.BENCH_STEADY_MS ?? 60_000);
const RAMP_RATES = (process.env.BENCH_RAMP_RATES ?? '2000,4000,8000,16000').split(',').map(Number);
const RAMP_STEP_MS = Number(process.env.BENCH_RAMP_STEP_MS ?? 10_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
/** The deployed V8 flags (the chart's `nodeOptions`); '' for Node's defaults. */
const REAPER_NODE_OPTIONS = process.env.BENCH_REAPER_NODE_OPTIONS ?? deployedNodeOptions();
/** The deployed node command-line flags (the chart's `idleReaper.nodeArgs`); '' for none. */
const REAPER_NODE_ARGS =
  process.env.BENCH_REAPER_NODE_ARGS?.split(' ').filter(Boolean) ?? deployedNodeArgs('idle-reaper');
const TICK_MS = 100;
const STATUS_SPREAD_MS = Number(process.env.BENCH_STATUS_SPREAD_S ?? 600) * 1000;
const REPLICAS = Number(process.env.BENCH_REAPER_REPLICAS ?? 1);
/** When to kill one replica (with several): this long after the first leaver's deadline. */
const KILL_AFTER_MS = Number(process.env.BENCH_KILL_AFTER_MS ?? 5_000);
/** The replicas' REAPER_MEMBER_TTL (the service's default when unset). */
const MEMBER_TTL = process.env.BENCH_REAPER_MEMBER_TTL;

/** Writes to Sessions (and their status) the API server has served, from its own metrics. */
async function apiServerSessionWrites(): Promise<number> {
  const { stdout } = await kubectl(['get', '--raw', '/metrics']);
  let total = 0;
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    if (!line.includes(`group="${API_GROUP}"`) || !line.includes('resource="sessions"')) continue;
    if (!/verb="(APPLY|PATCH|POST|PUT|DELETE)"/.test(line)) continue;
    total += Number(line.split(' ').at(-1));
  }
  return total;
}

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

/** A metric's value, summed over its matching label sets and over the replicas still running. */
async function counter(
  reapers: ServiceProcess | ServiceProcess[],
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  let total = 0;
  for (const reaper of [reapers].flat()) {
    if (!reaper.running) continue;
    const { body } = await reaper.get('/metrics');
    for (const line of body.split('\n')) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
        total += Number(line.split(' ').at(-1));
    }
  }
  return total;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it(`tracks ${N} sessions with steady activity and hibernates the idle ones on time`, async () => {
  const k = kube();
  await installCrds();
  const namespace = await createNamespace('bench-reaper');
  const nc = await connect({ servers: process.env.NATS_URL as string });
  const errors: string[] = [];
  // What the watcher declares (the reaper only binds), with the watcher's defaults.
  await declareTopology(nc, { activityTtlMs: 24 * 3600_000 });

  // The reaper follows Sessions through the shared state the watcher keeps on NATS.
  const watcher = new ServiceProcess('watcher', { WATCH_NAMESPACE: namespace });
  const reapers = Array.from(
    { length: REPLICAS },
    () =>
      new ServiceProcess(
        'idle-reaper',
        {
          LOG_LEVEL: process.env.BENCH_REAPER_LOG_LEVEL ?? 'info',
          WATCH_NAMESPACE: namespace,
          ...(REAPER_NODE_OPTIONS ? { NODE_OPTIONS: REAPER_NODE_OPTIONS } : {}),
          ...(MEMBER_TTL ? { REAPER_MEMBER_TTL: MEMBER_TTL } : {}),
        },
        REAPER_NODE_ARGS,
      ),
  );
  // The one that stays (the others are killed or stopped first); with one replica, the reaper.
  const reaper = reapers[0] as ServiceProcess;
  // Whatever happens, leave nothing behind: a failed run's Sessions would otherwise go idle and be
  // hibernated by any reaper whose executor picks up their commands.
  let ticker: NodeJS.Timeout | undefined;
  let sampler: NodeJS.Timeout | undefined;
  let loopSampler: NodeJS.Timeout | undefined;
  onTestFinished(async () => {
    clearInterval(ticker);
    clearInterval(sampler);
    clearInterval(loopSampler);
    await Promise.all(reapers.map((r) => r.stop()));
    await watcher.stop();
    mkdirSync(`${repo}/.bench`, { recursive: true });
    for (const [i, r] of reapers.entries())
      writeFileSync(`${repo}/.bench/idle-reaper${i === 0 ? '' : `-${i}`}.log`, `${r.logs.join('\n')}\n`);
    const kv = await new Kvm(nc).open(BUCKETS.activity);
    const keys: string[] = [];
    for await (const key of await kv.keys(`${namespace}.>`)) keys.push(key);
    await pool(keys, 32, async (key) => {
      await kv.purge(key).catch(() => undefined);
    });
    await nc.close();
    await deleteNamespace(namespace);
  });
  // Waited for only once the cleanup above is registered: a watcher left running would keep
  // rewriting the shared state of the next run on this cluster.
  await watcher.waitReady(60_000);
  await Promise.all(reapers.map((r) => r.waitReady(60_000)));
  const rssSamplePeaks = reapers.map(() => 0);
  sampler = setInterval(() => {
    reapers.forEach((r, i) => {
      if (r.running) rssSamplePeaks[i] = Math.max(rssSamplePeaks[i] ?? 0, procStatus(r.pid, 'VmRSS'));
    });
  }, 1_000);
  // Event-loop delay: prom-client's histogram (monitorEventLoopDelay) restarts at each scrape, so
  // its max, read every 2 s, is the longest stall of each window (a deadline timer waits as long).
  const loopStalls: { at: number; replica: number; maxMs: number }[] = [];
  loopSampler = setInterval(() => {
    reapers.forEach((r, replica) => {
      if (!r.running) return;
      void r
        .get('/metrics')
        .then(({ body }) => {
          const line = body.split('\n').find((l) => l.startsWith('nodejs_eventloop_lag_max_seconds '));
          if (line)
            loopStalls.push({ at: Date.now(), replica, maxMs: Number(line.split(' ').at(-1)) * 1000 });
        })
        .catch(() => undefined);
    });
  }, 2_000);
  const loopStallsBetween = (from: number, to: number) => {
    const values = loopStalls.filter((s) => s.at >= from && s.at <= to).map((s) => s.maxMs);
    return { windowsOf2s: values.length, p50: percentile(values, 50), max: Math.max(0, ...values) };
  };

  // Activity traffic: each live session reports once per REPORT_EVERY_MS, spread over ticks.
  const names = Array.from({ length: N }, (_, i) => `s-${i}`);
  const reporting = new Set<string>();
  const lastReport = new Map<string, number>();
  const slots = Math.max(1, Math.round(REPORT_EVERY_MS / TICK_MS));
  let tick = 0;
  let sent = 0;
  /** Longest gap between two reports of one session (this process may be slowed by the load it makes). */
  const maxGap = new Map<string, number>();
  const report = (name: string) => {
    const at = Date.now();
    const previous = lastReport.get(name);
    if (previous !== undefined && reporting.has(name))
      maxGap.set(name, Math.max(maxGap.get(name) ?? 0, at - previous));
    nc.publish(
      subjects.activity(namespace, name),
      JSON.stringify({ namespace, session: name, at: new Date(at).toISOString(), source: 'bench' }),
    );
    lastReport.set(name, at);
    sent++;
  };
  ticker = setInterval(() => {
    const slot = tick++ % slots;
    for (let i = slot; i < N; i += slots) {
      const name = names[i] as string;
      if (reporting.has(name)) report(name);
    }
  }, TICK_MS);

  // 1. N Sessions, Running since now, reporting from the moment they exist.
  const createStart = performance.now();
  await pool(names, CONCURRENCY, async (name) => {
    try {
      await k.custom.createNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace,
        plural: 'sessions',
        body: sessionObject(undefined, name, `${name}@example.com`, 'firefox', {
          state: undefined,
          idleTimeout: `${IDLE_TIMEOUT_S}s`,
          // Within the platform's maximum (24h): '0' would ask beyond it, and each Session would get
          // a LimitApplied Event (10,000 Event writes at start).
          maxSessionDuration: '8h',
        }),
      });
      await k.custom.patchNamespacedCustomObjectStatus(
        {
          group: API_GROUP,
          version: API_VERSION,
          namespace,
          plural: 'sessions',
          name,
          body: {
            status: {
              phase: 'Running',
              conditions: [
                {
                  type: 'Ready',
                  status: 'True',
                  reason: 'PodReady',
                  message: 'bench',
                  lastTransitionTime: new Date().toISOString(),
                },
              ],
              lastActivity: new Date(Date.now() - Math.random() * STATUS_SPREAD_MS).toISOString(),
            },
          },
        },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      report(name);
      reporting.add(name);
    } catch (error) {
      errors.push(`create ${name}: ${(error as Error).message}`);
    }
  });
  const createSeconds = (performance.now() - createStart) / 1000;
  // The reapers have every Session once the watcher has stored them and their KV watches
  // delivered them: each owns its part, and together all of them.
  const trackedNow = () => counter(reapers, 'streamspace_reaper_owned_sessions', {});
  const trackedBy = performance.now() + 180_000;
  while ((await trackedNow()) < N && performance.now() < trackedBy) await sleep(1_000);
  await sleep(5_000);
  const tracked = await trackedNow();

  // 2. Steady traffic.
  const accepted = () =>
    counter(reapers, 'streamspace_reaper_activity_reports_total', { source: 'nats', result: 'accepted' });
  const handled = async () =>
    (
      await Promise.all(
        ['accepted', 'stale', 'clamped_future', 'unknown_session', 'failed', 'malformed'].map((result) =>
          counter(reapers, 'streamspace_reaper_activity_reports_total', { source: 'nats', result }),
        ),
      )
    ).reduce((a, b) => a + b, 0);
  const steadyStart = performance.now();
  const steadyStartedAt = Date.now();
  const [sentBefore, acceptedBefore] = [sent, await accepted()];
  const statusWritten = () =>
    counter(reapers, 'streamspace_reaper_last_activity_writes_total', { result: 'written' });
  const bucketWritten = () =>
    counter(reapers, 'streamspace_reaper_activity_bucket_writes_total', { result: 'written' });
  const [statusBefore, apiBefore, bucketBefore] = [
    await statusWritten(),
    await apiServerSessionWrites(),
    await bucketWritten(),
  ];
  const loadBefore = loadavg();
  const cpuBefore = reapers.map((r) => procCpuSeconds(r.pid));
  await sleep(STEADY_MS);
  const steadySeconds = (performance.now() - steadyStart) / 1000;
  const cpuCoresOf = reapers.map((r, i) => (procCpuSeconds(r.pid) - (cpuBefore[i] ?? 0)) / steadySeconds);
  const steadyCpuCores = cpuCoresOf.reduce((a, b) => a + b, 0);
  const loadAfter = loadavg();
  const apiWritesPerSecond = ((await apiServerSessionWrites()) - apiBefore) / steadySeconds;
  const statusWritesPerSecond = ((await statusWritten()) - statusBefore) / steadySeconds;
  const bucketWritesPerSecond = ((await bucketWritten()) - bucketBefore) / steadySeconds;
  const heapUsed = async (r: ServiceProcess = reaper) => {
    const line = (await r.get('/metrics')).body
      .split('\n')
      .find((l) => l.startsWith('nodejs_heap_size_used_bytes '));
    return Number(line?.split(' ').at(-1)) / 2 ** 20;
  };
  const steady = {
    seconds: steadySeconds,
    reaperRssMiB: procStatus(reaper.pid, 'VmRSS') / 2 ** 20,
    reaperPeakRssMiB: procStatus(reaper.pid, 'VmHWM') / 2 ** 20,
    reaperHeapUsedMiB: await heapUsed(),
    /** The reaper's CPU use in the steady phase, in cores (reports, bucket writes, status writes); all replicas'. */
    reaperCpuCores: steadyCpuCores,
    /** Each replica's Sessions, memory and CPU in the steady phase (one entry with one replica). */
    replicas: await Promise.all(
      reapers.map(async (r, i) => ({
        ownedSessions: await counter(r, 'streamspace_reaper_owned_sessions', {}),
        rssMiB: procStatus(r.pid, 'VmRSS') / 2 ** 20,
        peakRssMiB: procStatus(r.pid, 'VmHWM') / 2 ** 20,
        heapUsedMiB: await heapUsed(r),
        cpuCores: cpuCoresOf[i],
      })),
    ),
    /** The machine's 1/5/15-minute load averages at the start and the end of the steady phase (2 cores, shared). */
    loadAverage: { before: loadBefore, after: loadAfter },
    /** Session writes the API server served (apiserver_request_total), and the reaper's own count. */
    apiServerSessionWritesPerSecond: apiWritesPerSecond,
    statusLastActivityWritesPerSecond: statusWritesPerSecond,
    activityBucketWritesPerSecond: bucketWritesPerSecond,
    /** The longest event-loop stall of each 2 s window of the steady phase (ms), all replicas. */
    eventLoopStallMs: loopStallsBetween(steadyStartedAt, Date.now()),
    offeredPerSecond: (sent - sentBefore) / steadySeconds,
    acceptedPerSecond: ((await accepted()) - acceptedBefore) / steadySeconds,
  };

  // 3. Leavers stop reporting at staggered moments; each must be hibernated at last report +
  //    idleTimeout. A watch (from now) records when this process sees each spec.state change.
  const seenHibernated = new Map<string, { observedAt: number; decidedAt: number }>();
  const { metadata: listMeta } = (await k.custom.listNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
    limit: 1,
  })) as { metadata: { resourceVersion: string } };
  const stateWatch = await new k8s.Watch(k.kc).watch(
    `/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace}/sessions`,
    { resourceVersion: listMeta.resourceVersion },
    (
      _type: string,
      object: { metadata: { name: string; annotations?: Record<string, string> }; spec: { state: string } },
    ) => {
      if (object.spec?.state !== 'hibernated' || seenHibernated.has(object.metadata.name)) return;
      seenHibernated.set(object.metadata.name, {
        observedAt: Date.now(),
        decidedAt: Date.parse(object.metadata.annotations?.[ANNOTATIONS.stateChangedAt] ?? 'NaN'),
      });
    },
    () => undefined,
  );
  const chosen = names.filter((_, i) => i % Math.max(1, Math.floor(N / LEAVERS)) === 0).slice(0, LEAVERS);
  // A Session already hibernated cannot be hibernated at its deadline: on a machine so loaded that
  // this process reported late (see hibernatedBecauseTheBenchReportedLate) some are, before they
  // leave. They are counted apart, not as missed.
  const alreadyHibernated = new Set<string>();
  for (let token: string | undefined; ; ) {
    const page = (await k.custom.listNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace,
      plural: 'sessions',
      limit: 2_000,
      ...(token ? { _continue: token } : {}),
    })) as {
      items: { metadata: { name: string }; spec: { state?: string } }[];
      metadata: { continue?: string };
    };
    for (const s of page.items) if (s.spec.state === 'hibernated') alreadyHibernated.add(s.metadata.name);
    token = page.metadata.continue;
    if (!token) break;
  }
  const leavers = chosen.filter((name) => !alreadyHibernated.has(name));
  const leaveWindowMs = Math.min(30_000, REPORT_EVERY_MS * 3);
  const leaveStart = Date.now();
  // With several replicas: which leavers the replica to be killed owns (from the members it
  // announced), and its SIGKILL in the middle of the decisions.
  const victim = reapers[1];
  let victimLeavers = new Set<string>();
  let killed: Promise<{ killedAt: number; takeoverMs: number; victimPeakRssMiB: number }> | undefined;
  if (victim) {
    const members: string[] = [];
    for await (const key of await (await new Kvm(nc).open(BUCKETS.reaperMembers)).keys())
      if (reapers.some((r) => r.running && key.includes(`-${r.pid}-`)))
        members.push(key.slice(key.indexOf('.') + 1));
    const victimId = members.find((m) => m.includes(`-${victim.pid}-`)) as string;
    const ownership = new MemberSet(victimId, members);
    victimLeavers = new Set(leavers.filter((name) => ownership.ownerOf(`${namespace}.${name}`) === victimId));
    killed = (async () => {
      await sleep(IDLE_TIMEOUT_S * 1000 + KILL_AFTER_MS);
      const victimPeakRssMiB = procStatus(victim.pid, 'VmHWM') / 2 ** 20;
      const killedAt = Date.now();
      await victim.kill();
      const survivors = reapers.filter((r) => r.running);
      // Taken over: the survivors see one member fewer and own every Session between them.
      const takenOver = async () =>
        (await counter(survivors, 'streamspace_reaper_owned_sessions', {})) >= N &&
        (await counter(survivors[0] as ServiceProcess, 'streamspace_reaper_members', {})) ===
          survivors.length;
      while (!(await takenOver())) {
        if (Date.now() - killedAt > 120_000)
          throw new Error("the survivors did not take the killed replica's Sessions over within 120 s");
        await sleep(100);
      }
      return { killedAt, takeoverMs: Date.now() - killedAt, victimPeakRssMiB };
    })();
  }
  await Promise.all(
    leavers.map(async (name, i) => {
      await sleep((i / leavers.length) * leaveWindowMs);
      reporting.delete(name);
    }),
  );
  const stoppedAt = Date.now() - leaveStart;
  const deadlines = new Map(
    leavers.map((name) => [name, (lastReport.get(name) as number) + IDLE_TIMEOUT_S * 1000]),
  );
  const lastDeadline = Math.max(...deadlines.values());
  while (Date.now() < lastDeadline + 60_000 && leavers.some((name) => !seenHibernated.has(name)))
    await sleep(500);
  stateWatch.abort();
  const decisionsStall = loopStallsBetween(leaveStart, Date.now());
  const takeover = await killed;
  // A decision applied twice would show as a second Idle Event for one Session.
  const idleEvents = new Map<string, number>();
  for (const event of (await k.core.listNamespacedEvent({ namespace, fieldSelector: 'reason=Idle' })).items) {
    const name = event.involvedObject.name as string;
    idleEvents.set(name, (idleEvents.get(name) ?? 0) + 1);
  }
  const doubled = [...idleEvents.values()].filter((n) => n > 1).length;
  // When the executor decided (the state-changed-at annotation) and when this process saw the change.
  const decided: number[] = [];
  const decidedVictims: number[] = [];
  const observed: number[] = [];
  /** Every leaver's decision, to tell which ones are late and why (times relative to the kill, if any). */
  const perDecision: {
    name: string;
    deadline: number;
    decidedAt: number;
    delayMs: number;
    ofKilledReplica: boolean;
  }[] = [];
  let wrong = 0;
  let starved = 0;
  for (const [name, seen] of seenHibernated) {
    const deadline = deadlines.get(name);
    if (deadline === undefined) {
      // A session this process failed to report on in time is idle by definition, not wrongly hibernated.
      if ((maxGap.get(name) ?? 0) >= IDLE_TIMEOUT_S * 1000) starved++;
      else wrong++;
      continue;
    }
    decided.push(seen.decidedAt - deadline);
    perDecision.push({
      name,
      deadline,
      decidedAt: seen.decidedAt,
      delayMs: seen.decidedAt - deadline,
      ofKilledReplica: victimLeavers.has(name),
    });
    if (victimLeavers.has(name)) decidedVictims.push(seen.decidedAt - deadline);
    observed.push(seen.observedAt - deadline);
  }
  const missed = leavers.length - decided.length;
  // When the PATCH that changed spec.state returned, as the reaper logged it.
  const applied = reapers
    .flatMap((r) => r.logs)
    .filter((line) => line.includes('"msg":"session hibernated"'))
    .map((line) => JSON.parse(line) as { delayMs?: number })
    .flatMap((entry) => (entry.delayMs === undefined ? [] : [entry.delayMs]));
  const stats = (values: number[]) => ({
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    max: Math.max(...values),
  });

  // 4. Ramp: extra traffic on top of the steady reports, at rising offered rates, each for
  //    RAMP_STEP_MS; the step's handled rate says whether the reaper kept up. Publishing beyond what
  //    a NATS subscriber processes makes its client buffer in memory (nats.js reads its socket
  //    without backpressure), so the ramp stops at the first step the reaper does not keep up with.
  const active = names.filter((n) => reporting.has(n));
  const ramp: {
    offeredPerSecond: number;
    sentPerSecond: number;
    handledPerSecond: number;
    acceptedPerSecond: number;
    keptUp: boolean;
    rssMiB: number;
  }[] = [];
  let cursor = 0;
  for (const rate of REPLICAS > 1 ? [] : RAMP_RATES) {
    const [handledBefore, acceptedBeforeStep, sentBefore] = [await handled(), await accepted(), sent];
    const stepStart = performance.now();
    let stepSent = 0;
    while (performance.now() - stepStart < RAMP_STEP_MS) {
      const due = Math.floor(((performance.now() - stepStart) / 1000) * rate);
      while (stepSent < due) {
        report(active[cursor++ % active.length] as string);
        stepSent++;
      }
      await nc.flush();
      await sleep(10);
    }
    const sentInStep = sent - sentBefore;
    // What arrived during the step is handled within a second of its end if the reaper keeps up.
    await sleep(1_000);
    const stepSeconds = RAMP_STEP_MS / 1000;
    const handledInStep = (await handled()) - handledBefore;
    const step = {
      offeredPerSecond: rate,
      sentPerSecond: sentInStep / stepSeconds,
      handledPerSecond: handledInStep / stepSeconds,
      acceptedPerSecond: ((await accepted()) - acceptedBeforeStep) / stepSeconds,
      keptUp: handledInStep >= 0.95 * sentInStep,
      rssMiB: procStatus(reaper.pid, 'VmRSS') / 2 ** 20,
    };
    ramp.push(step);
    if (!step.keptUp) break;
  }

  clearInterval(ticker);
  clearInterval(sampler);
  clearInterval(loopSampler);
  const peakRss = procStatus(reaper.pid, 'VmHWM');
  const statusWrites = await counter(reapers, 'streamspace_reaper_last_activity_writes_total', {
    result: 'written',
  });
  const failedReports = await counter(reapers, 'streamspace_reaper_activity_reports_total', {
    result: 'failed',
  });
  await Promise.all(reapers.map((r) => r.stop()));

  const result = {
    sessions: N,
    trackedByReaper: tracked,
    idleTimeoutSeconds: IDLE_TIMEOUT_S,
    reportEveryMs: REPORT_EVERY_MS,
    createSeconds,
    steady,
    leavers: leavers.length,
    leaversHibernatedBeforeLeaving: chosen.length - leavers.length,
    hibernatedBeforeTheLeaversPhase: alreadyHibernated.size,
    leaversStoppedOverMs: stoppedAt,
    decisionDelayMs: {
      decided: stats(decided),
      applied: stats(applied),
      observedByWatch: stats(observed),
    },
    /** The longest event-loop stall of each 2 s window from the first leaver on (ms), all replicas. */
    decisionsEventLoopStallMs: decisionsStall,
    hibernated: decided.length,
    missed,
    doubled,
    ...(takeover
      ? {
          replicaCount: REPLICAS,
          memberTtl: MEMBER_TTL ?? 'default',
          /** From the SIGKILL (BENCH_KILL_AFTER_MS after the first leaver's deadline) to the survivors owning every Session. */
          takeoverMs: takeover.takeoverMs,
          killedReplicaPeakRssMiB: takeover.victimPeakRssMiB,
          killedReplicaLeavers: victimLeavers.size,
          killedReplicaDecisionDelayMs: stats(decidedVictims),
          survivorPeakRssMiB: peakRss / 2 ** 20,
        }
      : {}),
    wrongHibernations: wrong,
    hibernatedBecauseTheBenchReportedLate: starved,
    longestReportGapMs: Math.max(0, ...maxGap.values()),
    ramp,
    failedReports,
    statusWrites,
    reaperNodeOptions: REAPER_NODE_OPTIONS,
    reaperNodeArgs: REAPER_NODE_ARGS.join(' '),
    // glibc's allocator settings change RSS; the reaper inherits them from this process.
    mallocArenaMax: process.env.MALLOC_ARENA_MAX ?? 'default',
    reaperPeakRssMiB: peakRss / 2 ** 20,
    reaperSampledPeakRssMiB: Math.max(...rssSamplePeaks) / 2 ** 20,
    clientErrors: errors.length,
    firstErrors: errors.slice(0, 5),
    measuredAt: new Date().toISOString(),
  };
  mkdirSync(`${repo}/.bench`, { recursive: true });
  writeFileSync(`${repo}/.bench/idle-reaper.json`, `${JSON.stringify(result, null, 2)}\n`);
  // Each leaver's deadline and decision, with the kill's and the takeover's moments: which decisions
  // are the late ones (the killed replica's, due before the kill or during the takeover) is read here.
  writeFileSync(
    `${repo}/.bench/idle-reaper-decisions.json`,
    `${JSON.stringify(
      {
        killedAt: takeover?.killedAt,
        takenOverAt: takeover ? takeover.killedAt + takeover.takeoverMs : undefined,
        decisions: perDecision.sort((a, b) => a.deadline - b.deadline),
      },
      null,
      1,
    )}\n`,
  );
  console.log(JSON.stringify(result, null, 2));

  expect(errors).toEqual([]);
  expect(tracked).toBe(N);
  expect(wrong).toBe(0);
  expect(missed).toBe(0);
  expect(doubled).toBe(0);
});
