import { dirname } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, LABELS } from '@streamspace/shared';
import { parseMetrics } from '../test/integration/metrics-scrape.js';
import type { Counts } from './api-server-counts.js';
import { pidOf, procCpuSeconds } from './process-cost.mjs';

/**
 * Where the time of the session-pipeline bench goes (issue 13's latency figures): which process
 * used the CPU in each phase (are both cores busy?), how long work items waited before their
 * reconcile and how long reconciles took, and, for the single changes, when each step of the
 * chain from the driver's patch to the phase was seen.
 */

/** The cluster's own processes by key, with their binaries' names (and logs': kwokctl's `logs/<binary>.log`). */
export const CLUSTER_BINARIES = {
  kubeApiserver: 'kube-apiserver',
  etcd: 'etcd',
  kubeControllerManager: 'kube-controller-manager',
  kubeScheduler: 'kube-scheduler',
  kwokController: 'kwok-controller',
} as const;

/** The cluster's own processes, found by the state directory their arguments name. */
export function clusterPids(): Record<string, number> {
  const dir = dirname(process.env.KUBECONFIG as string);
  const pids: Record<string, number> = {};
  for (const [key, binary] of Object.entries(CLUSTER_BINARIES)) {
    try {
      pids[key] = pidOf(`${dir}/bin/${binary} `);
    } catch {
      // A cluster laid out otherwise: that process goes uncounted.
    }
  }
  return pids;
}

/** CPU seconds so far of each named process, and of this (the driver's) process. */
export function cpuNow(pids: Record<string, number | undefined>): Counts {
  const cpu: Counts = {};
  for (const [key, pid] of Object.entries(pids))
    if (pid !== undefined) {
      try {
        cpu[key] = procCpuSeconds(pid);
      } catch {
        // ended
      }
    }
  const own = process.cpuUsage();
  cpu.benchDriver = (own.user + own.system) / 1e6;
  return cpu;
}

/** A histogram's cumulative buckets summed over processes: `<label> <le>` → count, `<label> sum` → seconds. */
export function histogramCounts(texts: string[], metric: string, label: string): Counts {
  const counts: Counts = {};
  for (const text of texts)
    for (const { name, labels, value } of parseMetrics(text)) {
      const key = labels[label] ?? '';
      if (name === `${metric}_bucket`)
        counts[`${key} ${labels.le}`] = (counts[`${key} ${labels.le}`] ?? 0) + value;
      else if (name === `${metric}_sum`) counts[`${key} sum`] = (counts[`${key} sum`] ?? 0) + value;
    }
  return counts;
}

export interface HistogramSummary {
  count: number;
  meanMs: number;
  /** The upper bound of the bucket that holds the percentile (a bound, not an exact figure). */
  p50AtMostMs: number;
  p90AtMostMs: number;
  p99AtMostMs: number;
}

/** Per label: what was observed between two readings of histogramCounts. */
export function histogramDelta(before: Counts, after: Counts): Record<string, HistogramSummary> {
  const byLabel = new Map<string, { le: number; count: number }[]>();
  for (const [key, value] of Object.entries(after)) {
    const [label, le] = key.split(' ') as [string, string];
    if (le === 'sum') continue;
    const list = byLabel.get(label) ?? [];
    list.push({
      le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le),
      count: value - (before[key] ?? 0),
    });
    byLabel.set(label, list);
  }
  const out: Record<string, HistogramSummary> = {};
  for (const [label, buckets] of byLabel) {
    buckets.sort((a, b) => a.le - b.le);
    const count = buckets.at(-1)?.count ?? 0;
    if (count === 0) continue;
    const at = (p: number) =>
      (buckets.find((b) => b.count >= Math.ceil(p * count))?.le ?? Number.POSITIVE_INFINITY) * 1000;
    const sum = (after[`${label} sum`] ?? 0) - (before[`${label} sum`] ?? 0);
    out[label] = {
      count,
      meanMs: Math.round((sum / count) * 10_000) / 10,
      p50AtMostMs: at(0.5),
      p90AtMostMs: at(0.9),
      p99AtMostMs: at(0.99),
    };
  }
  return out;
}

/** The few fields of a watched Deployment, Pod or Session the trace reads. */
interface Watched {
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec?: { replicas?: number; nodeName?: string };
  status?: { phase?: string; conditions?: { type?: string; status?: string; reason?: string }[] };
}

type Step =
  | 'deploymentReplicas'
  | 'podAdded'
  | 'podScheduled'
  | 'podReady'
  | 'podTerminating'
  | 'podGone'
  | `phase ${string}`;

/**
 * Watches the Deployments, Pods and Sessions of the run's namespaces (one watch of each kind over
 * every namespace, what is elsewhere ignored; Session names are unique across the run) and keeps, per Session, when the driver
 * first saw each step after a mark: the Deployment's replicas changed (the reconciler's apply),
 * the Pod created (kube-controller-manager), bound (kube-scheduler), Ready (KWOK), terminating,
 * gone, and each phase the Session's status took. Started for the single changes only: three
 * watches more on the API server while nothing else runs.
 */
export class ChainTrace {
  private readonly requests: { abort(): void }[] = [];
  private readonly seen = new Map<string, Map<Step, number>>();
  private lastEventAt = 0;
  private mark = new Map<string, number>();

  private readonly namespaces: ReadonlySet<string>;

  constructor(
    private readonly kc: k8s.KubeConfig,
    namespaces: readonly string[],
  ) {
    this.namespaces = new Set(namespaces);
  }

  async start(): Promise<void> {
    const watch = new k8s.Watch(this.kc);
    const on = (path: string, handle: (type: string, object: Watched) => void) =>
      watch
        .watch(
          path,
          { allowWatchBookmarks: false },
          (type, object: Watched) => {
            this.lastEventAt = performance.now();
            if (this.namespaces.has(object.metadata?.namespace ?? '')) handle(type, object);
          },
          () => undefined,
        )
        .then((r) => {
          this.requests.push(r);
        });
    const replicas = new Map<string, number | undefined>();
    await Promise.all([
      on('/apis/apps/v1/deployments', (type, d) => {
        const name = d.metadata?.name ?? '';
        const now = d.spec?.replicas;
        if (type === 'MODIFIED' && replicas.has(name) && replicas.get(name) !== now) {
          const session = d.metadata?.labels?.[LABELS.session];
          if (session) this.step(session, 'deploymentReplicas');
        }
        replicas.set(name, now);
      }),
      on('/api/v1/pods', (type, p) => {
        const session = p.metadata?.labels?.[LABELS.session];
        if (!session) return;
        if (type === 'ADDED') this.step(session, 'podAdded');
        if (type === 'DELETED') this.step(session, 'podGone');
        if (p.spec?.nodeName) this.step(session, 'podScheduled');
        if (p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
          this.step(session, 'podReady');
        if (p.metadata?.deletionTimestamp) this.step(session, 'podTerminating');
      }),
      on(`/apis/${API_GROUP}/${API_VERSION}/sessions`, (_type, s) => {
        const phase = s.status?.phase;
        const reason = s.status?.conditions?.find((c) => c.type === 'Ready')?.reason;
        if (phase && s.metadata?.name) this.step(s.metadata.name, `phase ${phase}/${reason ?? ''}`);
      }),
    ]);
  }

  /**
   * Waits until the watches' first events (an ADDED for every Deployment, Pod and Session of the
   * cluster: thousands at 1,000 Sessions) have been taken in: no event for `quietMs`. Without it
   * the first single changes were timed while the driver parsed them (Y1: its event loop held
   * 347 ms, the first change took 401 ms).
   */
  async quiet(quietMs: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() - this.lastEventAt < quietMs && performance.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
  }

  /** A change of `session` starts now: steps are timed from here, and earlier ones forgotten. */
  begin(session: string, at: number): void {
    this.mark.set(session, at);
    this.seen.set(session, new Map());
  }

  /** Milliseconds from the mark to each step seen since. */
  steps(session: string): Record<string, number> {
    const at = this.mark.get(session) ?? 0;
    return Object.fromEntries(
      [...(this.seen.get(session) ?? new Map<Step, number>())].map(([step, t]) => [
        step,
        Math.round((t - at) * 10) / 10,
      ]),
    );
  }

  stop(): void {
    for (const r of this.requests) r.abort();
  }

  private step(session: string, step: Step): void {
    const steps = this.seen.get(session);
    if (steps && !steps.has(step)) steps.set(step, performance.now());
  }
}

/** Per step, the p50 / p90 / max over the changes that saw it. */
export function stepSummary(
  changes: Record<string, number>[],
): Record<string, { n: number; p50: number; p90: number; max: number }> {
  const byStep = new Map<string, number[]>();
  for (const change of changes)
    for (const [step, ms] of Object.entries(change)) byStep.set(step, [...(byStep.get(step) ?? []), ms]);
  const pick = (sorted: number[], p: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? Number.NaN;
  return Object.fromEntries(
    [...byStep].map(([step, values]) => {
      const sorted = [...values].sort((a, b) => a - b);
      return [
        step,
        {
          n: sorted.length,
          p50: pick(sorted, 0.5),
          p90: pick(sorted, 0.9),
          max: sorted.at(-1) ?? Number.NaN,
        },
      ];
    }),
  );
}
