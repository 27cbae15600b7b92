import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  BUCKETS,
  ConfigError,
  bindBucket,
  bindWorkPartitions,
  connectNats,
  directReads,
  inboxPrefix,
  leaderReads,
  natsEnvSchema,
  retryForever,
  runService,
  SharedStateReader,
  type StateEntries,
} from '@streamspace/shared';
import { EventRecorder, kubeClientFromConfig, kubeEnvSchema, followApiReachability } from '@streamspace/kube';
import { Counter } from 'prom-client';
import { countKubeRequests } from './kube-requests.js';
import { KubeWriter } from './kube-writer.js';
import { reconcilerEnvSchema, settingsFromEnv } from './reconciler-settings.js';
import {
  markDeadLettered,
  REFUSAL_REASONS,
  reconcileSession,
  reconcileTemplate,
} from './session-reconciler.js';
import { OwnWrites } from './own-writes.js';
import { StateReads } from './state-reads.js';
import { WorkConsumer } from './work-consumer.js';

/**
 * The shared state as a reconcile reads it: on a replicated bucket through its leader, so no
 * replica behind the watcher's latest write answers (leaderReads); a single copy is read directly
 * (directReads).
 */
async function stateEntries(nc: NatsConnection): Promise<StateEntries> {
  const { kv, replicas, jsm } = await bindBucket(nc, BUCKETS.state);
  return replicas > 1 ? leaderReads(kv, jsm, BUCKETS.state) : directReads(kv, jsm, BUCKETS.state);
}

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

/** The key of session activity tokens; read once (restart the reconciler after rotating it). */
function readActivityKey(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(
      `ACTIVITY_SESSION_KEY_FILE: cannot read the activity key: ${(error as Error).message}`,
    );
  }
}

await runService({
  name: 'reconciler',
  defaultPort: 8082,
  configSchema: natsEnvSchema.extend(reconcilerEnvSchema.shape).extend(kubeEnvSchema.shape),
  async start({ config, log, readiness, registry, signal }) {
    const settings = settingsFromEnv(
      {
        ...config,
        CONTROL_PLANE_NAMESPACE: config.CONTROL_PLANE_NAMESPACE ?? ownNamespace(),
      },
      readActivityKey(config.ACTIVITY_SESSION_KEY_FILE),
    );
    if (settings.activityAgent)
      log.info(
        { image: settings.activityAgent.image, reaper: settings.activityAgent.url },
        'desktops whose Template asks for it get the activity agent',
      );
    if (settings.controlPlaneNamespace === undefined)
      log.warn(
        'CONTROL_PLANE_NAMESPACE is not set and this process runs outside a pod: Sessions are not refused in any namespace',
      );
    if (!settings.desktopAuth)
      log.warn(
        'desktops are served WITHOUT authentication: AUTH_URL is not set, so anyone who can reach a session URL gets that desktop; set AUTH_URL and AUTH_SIGNIN_URL (chart: auth.enabled=true, auth.url, auth.signinUrl) to put oauth2-proxy in front of every desktop',
      );
    else
      log.info(
        // Origin and path only: a URL may carry credentials in its user info or query.
        {
          authUrl: `${new URL(settings.desktopAuth.url).origin}${new URL(settings.desktopAuth.url).pathname}`,
          admins: settings.desktopAuth.adminUsers.length,
        },
        'every desktop requires sign-in as its owner (or a named admin)',
      );
    if (!settings.desktopIngressFrom)
      log.warn('DESKTOP_NETWORK_POLICY=false: any pod in the cluster can reach every desktop port directly');
    // Every request of a reconcile is counted by verb: it should only ever write (the shared
    // state answers its reads).
    const kube = countKubeRequests(kubeClientFromConfig(config, registry, log), registry);
    const workerId = `${hostname()}-${process.pid}`;
    const ownWrites = new OwnWrites();
    const writer = new KubeWriter(
      kube,
      new EventRecorder(kube, { component: 'streamspace-reconciler', instance: workerId }),
      ownWrites,
    );
    const refusals = new Counter({
      name: 'streamspace_reconciler_sessions_refused_total',
      help: 'Sessions the reconciler refused to act for, by why: ControlPlaneNamespace (a Session in its own namespace), ChildNotOwned (an object under its child name it does not control), HomeClaimNotOwned (a home claim naming another user), ResourcesExceedCeiling (resources above SESSION_MAX_REQUESTS/SESSION_MAX_LIMITS), InvalidResources (requests above their limits once merged with the Template defaults). Counted when the refusal starts.',
      labelNames: ['reason'],
      registers: [registry],
    });
    for (const reason of REFUSAL_REASONS) refusals.labels(reason).inc(0);

    // The API server is checked on its own so /readyz says which dependency is missing.
    readiness.register('kubernetes', 'not yet checked');
    void followApiReachability(kube, (up, reason) => readiness.set('kubernetes', up, reason), signal);

    readiness.register('work-consumer', 'connecting');
    const nc = await connectNats(config, {
      name: `reconciler-${workerId}`,
      identity: 'reconciler',
      log,
      readiness,
      signal,
    });
    // The watcher declares the partition consumers and the state bucket; until it has, this stays not ready.
    const corruptEntries = new Counter({
      name: 'streamspace_reconciler_state_corrupt_entries_total',
      help: 'Entries of the shared state a reconcile could not use (not the object its key names, not JSON, over the bound); each was read as absent until the watcher rewrites it.',
      registers: [registry],
    });
    const { work, state } = await retryForever(
      async () => ({
        work: await bindWorkPartitions(nc),
        state: new SharedStateReader(await stateEntries(nc), {
          corrupt: (key, reason) => {
            corruptEntries.inc();
            log.warn(
              { key, reason },
              'a shared-state entry is unusable; reading it as absent (the watcher rewrites it at its next change or resync)',
            );
          },
        }),
      }),
      {
        signal,
        onError: (error) => {
          readiness.set('work-consumer', false, `cannot bind to JetStream: ${(error as Error).message}`);
          log.warn({ err: (error as Error).message }, 'binding to JetStream failed; retrying');
      },
    });

    const desktopsRefused = new Counter({
      name: 'streamspace_reconciler_desktops_refused_total',
      help: 'Sessions newly refused a desktop for a platform rule: a Template capability beyond DESKTOP_ALLOWED_CAPABILITIES, or a spec.user that oauth2-proxy cannot authorize.',
      labelNames: ['reason'],
      registers: [registry],
    });
    for (const reason of ['capability_not_allowed', 'user_not_authorizable'])
      desktopsRefused.labels(reason).inc(0);

    const reads = new StateReads(state, ownWrites);
    const consumer = new WorkConsumer({
      nc,
      js: jetstream(nc),
      // The manager the partitions were bound with, inside the retries above: a second one made
      // here was a JetStream request outside them, which threw instead of waiting when the
      // cluster lost quorum just after binding.
      jsm: work.jsm,
      work,
      log,
      registry,
      workerId,
      inboxPrefix: inboxPrefix('reconciler'),
      concurrency: config.WORKER_CONCURRENCY,
      maxAttempts: config.MAX_ATTEMPTS,
      ...(config.RECONCILE_INTERVALS_FILE ? { intervalsFile: config.RECONCILE_INTERVALS_FILE } : {}),
      reconcile: (item, fence) =>
        item.kind === 'session'
          ? reconcileSession(reads, writer.fenced(fence), settings, item.namespace, item.name, log, undefined, {
              refused: (reason) => desktopsRefused.labels(reason).inc(),
              sessionRefused: (reason) => refusals.labels(reason).inc(),
            })
          : reconcileTemplate(
              reads,
              writer.fenced(fence),
              item.namespace,
              item.name,
              undefined,
              settings.allowedCapabilities,
            ),
      onDeadLetter: (item, reason, fence) =>
        item.kind === 'session'
          ? markDeadLettered(reads, writer.fenced(fence), item.namespace, item.name, reason)
          : Promise.resolve(),
    });
    readiness.set('work-consumer', true);
    const running = consumer.run();
    log.info(
      { workerId, concurrency: config.WORKER_CONCURRENCY, partitions: work.partitions, pinTimeoutMs: work.pinTimeoutMs },
      'reconciler pulling every work partition; the server pins each to one worker',
    );

    return {
      async stop() {
        await consumer.stop();
        await running.catch(() => undefined);
        await nc.drain().catch(() => undefined);
      },
    };
  },
});
