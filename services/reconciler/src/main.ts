import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { jetstream } from '@nats-io/jetstream';
import {
  BUCKETS,
  bindBucket,
  bindConsumer,
  CONSUMERS,
  connectNats,
  KubeClient,
  natsEnvSchema,
  parseDuration,
  retryForever,
  runService,
  STREAMS,
  sleep,
} from '@streamspace/shared';
import { Counter } from 'prom-client';
import { KeyLocks } from './key-lock.js';
import { KubeWriter } from './kube-writer.js';
import { reconcilerEnvSchema, settingsFromEnv } from './reconciler-settings.js';
import {
  markDeadLettered,
  REFUSAL_REASONS,
  reconcileSession,
  reconcileTemplate,
} from './session-reconciler.js';
import { WorkConsumer } from './work-consumer.js';

/** In a pod, the namespace of its ServiceAccount is where the control plane runs. */
function ownNamespace(): string | undefined {
  try {
    return (
      readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || undefined
    );
  } catch {
    return undefined;
  }
}

await runService({
  name: 'reconciler',
  defaultPort: 8082,
  configSchema: natsEnvSchema.extend(reconcilerEnvSchema.shape),
  async start({ config, log, readiness, registry, signal }) {
    const settings = settingsFromEnv({
      ...config,
      CONTROL_PLANE_NAMESPACE: config.CONTROL_PLANE_NAMESPACE ?? ownNamespace(),
    });
    if (settings.controlPlaneNamespace === undefined)
      log.warn(
        'CONTROL_PLANE_NAMESPACE is not set and this process runs outside a pod: Sessions are not refused in any namespace',
      );
    const kube = KubeClient.fromEnvironment();
    const writer = new KubeWriter(kube);
    const workerId = `${hostname()}-${process.pid}`;
    const refusals = new Counter({
      name: 'streamspace_reconciler_sessions_refused_total',
      help: 'Sessions the reconciler refused to act for, by why: ControlPlaneNamespace (a Session in its own namespace), ChildNotOwned (an object under its child name it does not control), HomeClaimNotOwned (a home claim naming another user), ResourcesExceedCeiling (resources above SESSION_MAX_REQUESTS/SESSION_MAX_LIMITS). Counted when the refusal starts.',
      labelNames: ['reason'],
      registers: [registry],
    });
    for (const reason of REFUSAL_REASONS) refusals.labels(reason).inc(0);

    // The API server is checked on its own so /readyz says which dependency is missing.
    readiness.register('kubernetes', 'not yet checked');
    const probeKube = async () => {
      while (!signal.aborted) {
        try {
          // /version needs no RBAC, so a namespace-scoped service account can probe it too.
          await kube.request('GET', '/version');
          readiness.set('kubernetes', true);
        } catch (error) {
          readiness.set('kubernetes', false, `API server unreachable: ${(error as Error).message}`);
        }
        await sleep(5_000, signal);
      }
    };
    void probeKube();

    readiness.register('work-consumer', 'connecting');
    const nc = await connectNats(config, {
      name: `reconciler-${workerId}`,
      identity: 'reconciler',
      log,
      readiness,
      signal,
    });
    // The watcher declares the work consumer and the locks bucket; until it has, this stays not ready.
    const { consumer, locks, bucketTtlMs } = await retryForever(
      async () => {
        const bucket = await bindBucket(nc, BUCKETS.locks);
        return {
          consumer: await bindConsumer(nc, STREAMS.work, CONSUMERS.reconciler),
          locks: new KeyLocks(bucket.kv, workerId),
          bucketTtlMs: bucket.ttlMs,
        };
      },
      {
        signal,
        onError: (error) => {
          readiness.set('work-consumer', false, `cannot bind to JetStream: ${(error as Error).message}`);
          log.warn({ err: (error as Error).message }, 'binding to JetStream failed; retrying');
        },
      },
    );
    // Locks live as long as the bucket keeps them (the watcher sets its TTL): renewals follow that.
    const configuredTtlMs = parseDuration(config.LOCK_TTL);
    const lockTtlMs = bucketTtlMs > 0 ? bucketTtlMs : configuredTtlMs;
    if (lockTtlMs !== configuredTtlMs)
      log.warn(
        { bucketTtlMs, configuredTtlMs },
        "the locks bucket's TTL differs from LOCK_TTL; following the bucket (set the watcher's LOCK_TTL to change it)",
      );

    const work = new WorkConsumer({
      js: jetstream(nc),
      consumer,
      locks,
      log,
      registry,
      workerId,
      concurrency: config.WORKER_CONCURRENCY,
      maxAttempts: config.MAX_ATTEMPTS,
      lockTtlMs,
      reconcile: (item) =>
        item.kind === 'session'
          ? reconcileSession(writer, settings, item.namespace, item.name, log, undefined, (reason) =>
              refusals.labels(reason).inc(),
            )
          : reconcileTemplate(writer, item.namespace, item.name),
      onDeadLetter: (item, reason) =>
        item.kind === 'session'
          ? markDeadLettered(writer, item.namespace, item.name, reason)
          : Promise.resolve(),
    });
    readiness.set('work-consumer', true);
    const running = work.run();
    log.info({ workerId, concurrency: config.WORKER_CONCURRENCY }, 'reconciler consuming work items');

    return {
      async stop() {
        await work.stop();
        await running.catch(() => undefined);
        await nc.drain().catch(() => undefined);
      },
    };
  },
});
