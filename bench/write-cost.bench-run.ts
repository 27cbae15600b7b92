import { loadavg } from 'node:os';
import type { KubernetesObject } from '@kubernetes/client-node';
import { EventRecorder, KubeClient } from '@streamspace/kube';
import { API_GROUP, API_VERSION, FIELD_MANAGER } from '@streamspace/shared';
import { it } from 'vitest';
import { KubeWriter } from '../services/reconciler/src/kube-writer.js';
import { reconcilerEnvSchema, settingsFromEnv } from '../services/reconciler/src/reconciler-settings.js';
import { type PlannedStatus, planSession } from '../services/reconciler/src/session-plan.js';
import type { StoredSession, StoredTemplate } from '../services/reconciler/src/stored-objects.js';
import { sessionObject, templateObject } from '../test/integration/fixtures.js';
import { createNamespace, deleteNamespace, installCrds } from '../test/integration/harness.js';
import { clusterPids } from './pipeline-trace.js';
import { procCpuSeconds } from './process-cost.mjs';

/**
 * What one write of each kind the reconciler makes costs the cluster (issue 13: the bursts are
 * bound by this machine's CPU, most of it kube-apiserver's): BENCH_WRITES (default 500) Sessions
 * with the Deployment, Service, Ingress and NetworkPolicy the reconciler plans for them, then
 * each kind of write once per Session, 20 at a time, with the CPU seconds kube-apiserver, etcd and
 * kube-controller-manager used meanwhile (/proc). The writes are made by the reconciler's own
 * KubeWriter and EventRecorder, so they are the requests it sends; every write changes something
 * (a no-op apply is cheaper and would flatter it). Rounds repeat (BENCH_ROUNDS, default 2) so the
 * spread shows. Run on a fresh cluster of one's own; nothing else of ours runs meanwhile.
 */
const N = Number(process.env.BENCH_WRITES ?? 500);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CONCURRENCY = 20;
const SETTLE_MS = 5_000;

async function pool<T>(items: T[], work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < items.length) {
        const i = next++;
        await work(items[i] as T, i);
      }
    }),
  );
}

it(`measures the cluster's CPU per write, ${N} of each`, { timeout: 3_600_000 }, async () => {
  await installCrds();
  const namespace = await createNamespace('write-cost');
  const kube = KubeClient.fromEnvironment({ maxConnections: 64 });
  const { kubeApiserver, etcd, kubeControllerManager } = clusterPids();
  const pids = { 'kube-apiserver': kubeApiserver, etcd, 'kube-controller-manager': kubeControllerManager };
  const cpu = () => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, procCpuSeconds(pid)]));
  const settings = settingsFromEnv(reconcilerEnvSchema.parse({ WATCH_NAMESPACE: namespace }));
  const template = (await kube.apply<StoredTemplate>(
    { group: API_GROUP, version: API_VERSION, plural: 'templates', namespace, name: 'firefox' },
    templateObject(namespace, 'firefox', {
      defaultResources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '2', memory: '4Gi' } },
    }),
    'bench',
    true,
  )) as StoredTemplate;
  const names = Array.from({ length: N }, (_, i) => `cost-${i}`);
  const sessionsRef = { group: API_GROUP, version: API_VERSION, plural: 'sessions', namespace };
  const sessions = new Map<string, StoredSession>();
  const writer = new KubeWriter(
    kube,
    new EventRecorder(kube, { component: 'bench', instance: 'write-cost' }),
  );
  const deployments = new Map<string, KubernetesObject>();
  await pool(names, async (name) => {
    const created = await kube.create<StoredSession>(
      sessionsRef,
      sessionObject(namespace, name, name, 'firefox', { state: 'hibernated' }),
    );
    sessions.set(name, created);
    // What a hibernated Session's first reconcile writes: its children, the Deployment at zero.
    const plan = planSession({ session: created, template, pods: [] }, settings, new Date());
    await Promise.all(plan.apply.map((object) => writer.apply(object)));
    deployments.set(name, plan.apply.find((o) => o.kind === 'Deployment') as KubernetesObject);
  });

  // Two statuses a Session goes between (Running and Hibernated, as the reconciler writes them).
  const statuses = (name: string, generation: number): PlannedStatus[] => {
    const at = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    return [
      {
        phase: 'Running',
        podName: `${name}-abc-12345`,
        url: `https://${name}.desktops.example.com`,
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'PodReady',
            message: `Pod ${name}-abc-12345 is ready`,
            observedGeneration: generation,
            lastTransitionTime: at,
          },
        ],
        observedGeneration: generation,
      },
      {
        phase: 'Hibernated',
        url: `https://${name}.desktops.example.com`,
        conditions: [
          {
            type: 'Ready',
            status: 'False',
            reason: 'Hibernated',
            message: 'Hibernated: set spec.state to running to wake it',
            observedGeneration: generation,
            lastTransitionTime: at,
          },
        ],
        observedGeneration: generation,
      },
    ] as PlannedStatus[];
  };
  let flip = 0;
  /** Each Session's status written once, the other of its two statuses each time, on its latest version. */
  const statusStep =
    (
      write: (
        name: string,
        resourceVersion: string | undefined,
        status: PlannedStatus,
      ) => Promise<StoredSession>,
    ) =>
    () => {
      flip++;
      return pool(names, async (name) => {
        const session = sessions.get(name) as StoredSession;
        const status = statuses(name, session.metadata.generation ?? 1)[flip % 2] as PlannedStatus;
        sessions.set(name, await write(name, session.metadata.resourceVersion, status));
      });
    };
  const steps: Record<string, () => Promise<void>> = {
    // The cheapest request there is: what every request pays (TLS, authn, authz, routing).
    'GET session': () => pool(names, async (name) => void (await kube.get({ ...sessionsRef, name }))),
    'status server-side apply, conditional (as the reconciler writes it)': statusStep((name, rv, status) =>
      kube.apply<StoredSession>(
        { ...sessionsRef, name, subresource: 'status' },
        {
          apiVersion: `${API_GROUP}/${API_VERSION}`,
          kind: 'Session',
          metadata: { name, namespace, resourceVersion: rv },
          status,
        },
        `${FIELD_MANAGER}-reconciler`,
        true,
      ),
    ),
    'status merge patch, conditional': statusStep((name, rv, status) =>
      kube.mergePatch<StoredSession>(
        { ...sessionsRef, name, subresource: 'status' },
        { metadata: { resourceVersion: rv }, status: { podName: null, ...status } },
        `${FIELD_MANAGER}-reconciler`,
      ),
    ),
    // A label, not an annotation: kube-controller-manager copies a Deployment's annotations to its
    // ReplicaSet, so an annotation changed would count one more write, of the cluster's.
    'Deployment apply, one label changed (KubeWriter.apply)': () => {
      flip++;
      return pool(names, async (name) => {
        const desired = deployments.get(name) as KubernetesObject;
        const metadata = {
          ...desired.metadata,
          labels: { ...desired.metadata?.labels, 'bench-flip': String(flip) },
        };
        await writer.apply({ ...desired, metadata });
      });
    },
    'Deployment merge patch of that label': () => {
      flip++;
      return pool(names, async (name) => {
        await kube.mergePatch(
          {
            group: 'apps',
            version: 'v1',
            plural: 'deployments',
            namespace,
            name: (deployments.get(name) as KubernetesObject).metadata?.name as string,
          },
          { metadata: { labels: { 'bench-flip': String(flip) } } },
          FIELD_MANAGER,
        );
      });
    },
    // The same Event each round: the first round creates it, the next ones raise its count.
    'Event (KubeWriter.recordEvent: new in round 1, its count raised after)': () =>
      pool(names, async (name) => {
        await writer.recordEvent(sessions.get(name) as StoredSession, {
          type: 'Normal',
          reason: 'Bench',
          message: 'the same each round',
        });
      }),
  };
  const results: Record<
    string,
    { apiserverMsPerWrite: number[]; etcdMsPerWrite: number[]; kcmMsPerWrite: number[] }
  > = {};
  const load = [loadavg()];
  for (let round = 0; round < ROUNDS; round++)
    for (const [step, run] of Object.entries(steps)) {
      const before = cpu();
      await run();
      // What the writes set off (watch events sent, kube-controller-manager's syncs) is counted
      // with them, not with the next step: the cluster at rest costs ~0.02 cores (0.2 ms per
      // write over these 5 s), next to 5-15 ms per write.
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const after = cpu();
      results[step] = results[step] ?? { apiserverMsPerWrite: [], etcdMsPerWrite: [], kcmMsPerWrite: [] };
      const r = results[step];
      const per = (k: string) =>
        Math.round(((((after[k] as number) - (before[k] as number)) * 1000) / N) * 100) / 100;
      r.apiserverMsPerWrite.push(per('kube-apiserver'));
      r.etcdMsPerWrite.push(per('etcd'));
      r.kcmMsPerWrite.push(per('kube-controller-manager'));
    }
  load.push(loadavg());
  console.log(JSON.stringify({ writes: N, rounds: ROUNDS, load, results }, null, 2));
  await deleteNamespace(namespace);
});
