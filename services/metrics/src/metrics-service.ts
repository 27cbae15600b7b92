import type { NatsConnection } from '@nats-io/nats-core';
import {
  BUCKETS,
  bindBucket,
  connectNats,
  describeNamespaces,
  jetstreamManagerFor,
  NoQuorumError,
  type RunningService,
  retryForever,
  type ServiceConfig,
  type ServiceContext,
  STREAMS,
  SharedStateView,
} from '@streamspace/shared';
import { Counter } from 'prom-client';
import type { metricsConfigSchema } from './metrics-config.js';
import { type JetStreamReader, jetStreamReader, registerPipelineMetrics } from './pipeline-health.js';
import { SessionEventStream } from './session-event-stream.js';
import { createSessionMetrics } from './session-metrics.js';
import { parseSessionSnapshot, type SessionSnapshot, sessionViewKey } from './session-snapshot.js';
import { TransitionTracker } from './transition-tracker.js';

/** Sessions deleted while their deletion event was missed are forgotten after this long. */
const PRUNE_GRACE_MS = 10 * 60_000;

type Parsed<T> = { ok: true; key: string; value: T } | { ok: false; reason: string };

function parseSession(raw: unknown): Parsed<SessionSnapshot> {
  const parsed = parseSessionSnapshot(raw);
  if (!parsed.ok) return parsed;
  return { ok: true, key: `${parsed.snapshot.namespace}/${parsed.snapshot.name}`, value: parsed.snapshot };
}

function parseTemplateName(raw: unknown): Parsed<string> {
  const metadata = (raw as { metadata?: { namespace?: unknown; name?: unknown } } | null)?.metadata;
  if (typeof metadata?.name !== 'string' || !metadata.name)
    return { ok: false, reason: 'metadata.name is missing' };
  return { ok: true, key: `${String(metadata.namespace ?? '')}/${metadata.name}`, value: metadata.name };
}

/**
 * The metrics service: Sessions and Templates listed and watched for the gauges, the Session
 * change events followed for the transition counters and histograms, JetStream and the watcher
 * probed at scrape time for the pipeline's health.
 */
export async function startMetrics(
  context: ServiceContext<ServiceConfig<typeof metricsConfigSchema>>,
): Promise<RunningService> {
  const { config, log, readiness, registry, signal } = context;
  const namespace = config.WATCH_NAMESPACE;
  readiness.register('sessions', 'reading Sessions from the shared state');
  readiness.register('templates', 'reading Templates from the shared state');
  readiness.register('event-stream', 'waiting for NATS');

  const corrupt = new Counter({
    name: 'streamspace_metrics_state_corrupt_entries_total',
    help: 'Entries of the shared state that could not be read as a Session or Template (skipped until the watcher rewrites them).',
    labelNames: ['resource'],
    registers: [registry],
  });
  // Sessions and Templates come from the shared state the watcher keeps (a KV watch: every
  // current value, then every change), not from an API-server watch of our own.
  let connected: (nc: NatsConnection) => void = () => undefined;
  const connection = new Promise<NatsConnection>((resolve) => {
    connected = resolve;
  });
  const viewOf = <T>(resource: 'sessions' | 'templates', parse: (raw: unknown) => Parsed<T>) => {
    corrupt.labels(resource).inc(0);
    return new SharedStateView<T>({
      bucket: async () => (await bindBucket(await connection, BUCKETS.state)).kv,
      kind: resource === 'sessions' ? 'session' : 'template',
      ...(resource === 'sessions' ? { keyOf: sessionViewKey } : {}),
      ...(namespace ? { namespaces: namespace } : {}),
      parse,
      onState: (up, reason) => {
        readiness.set(resource, up, reason);
        if (up) log.info({ resource }, 'reading the shared state');
        else log.warn({ resource, reason }, 'shared state unavailable; the gauges keep the last known state');
      },
      onCorrupt: (key, reason) => {
        corrupt.labels(resource).inc();
        log.warn({ resource, key, reason }, 'skipping a shared-state entry that cannot be read');
      },
    });
  };
  const sessions = viewOf('sessions', parseSession);
  const templates = viewOf('templates', parseTemplateName);

  const metrics = createSessionMetrics(registry, {
    sessions: () => sessions.values(),
    templates: () => templates.values(),
    synced: () => sessions.synced && templates.synced,
    userLabel: config.METRICS_USER_LABEL,
    now: Date.now,
  });

  let jetStream: JetStreamReader | undefined;
  registerPipelineMetrics(registry, {
    jetstream: () => jetStream,
    watcherReadyUrls: config.WATCHER_READY_URL,
    timeoutMs: config.PROBE_TIMEOUT,
    onError: (what, error) => log.debug({ what, err: (error as Error).message }, 'pipeline probe failed'),
  });

  const tracker = new TransitionTracker();
  const runs = [sessions.run(signal), templates.run(signal)];

  let nc: NatsConnection | undefined;
  const following = (async () => {
    nc = await connectNats(config, {
      name: 'streamspace-metrics',
      identity: 'metrics',
      log,
      readiness,
      signal,
    });
    const connection = nc;
    connected(connection);
    jetStream = jetStreamReader(
      await retryForever(() => jetstreamManagerFor(connection, `cannot follow ${STREAMS.events}`), {
        signal,
        maxMs: 10_000,
        // A cluster without quorum is said as such, not only "waiting for NATS".
        onError: (error) =>
          readiness.set(
            'event-stream',
            false,
            error instanceof NoQuorumError
              ? error.message
              : `cannot reach the JetStream API: ${(error as Error).message}`,
          ),
      }),
    );
    const stream = new SessionEventStream({
      nc: connection,
      ...(namespace ? { namespaces: namespace } : {}),
      log,
      onSubscribed: async (subscribedAtMs) => {
        // What exists now is history: only what changes from here on is counted.
        await sessions.whenSynced(signal);
        tracker.seed(sessions.values(), subscribedAtMs, Date.now());
        log.info(
          { sessions: tracker.size },
          'took the current sessions as history; counting transitions from now on',
        );
      },
      onEvent: (change) => {
        metrics.event();
        for (const transition of tracker.observe(change)) {
          metrics.record(transition);
          log.debug(
            { namespace: change.snapshot.namespace, name: change.snapshot.name, transition },
            'session transition',
          );
        }
      },
      onMalformed: (reason, detail, subject) => {
        metrics.malformed(reason);
        // Metrics only reads (its NATS user may publish nothing): the event stays in the events
        // stream for a person to look at; the log line says where.
        log.warn({ reason, detail, subject }, 'skipping a change event that cannot be read');
      },
      onState: (up, reason) => readiness.set('event-stream', up, reason),
    });
    await stream.run(signal);
  })().catch((error: Error) => {
    if (!signal.aborted) log.error({ err: error.message }, 'event stream follower stopped');
  });

  const pruning = setInterval(() => {
    if (!sessions.current) return;
    const removed = tracker.prune(new Set(sessions.values().map((s) => s.uid)), Date.now(), PRUNE_GRACE_MS);
    if (removed > 0) log.debug({ removed }, 'forgot sessions that no longer exist');
  }, 60_000);
  pruning.unref();

  log.info(
    {
      namespace: describeNamespaces(namespace),
      userLabel: config.METRICS_USER_LABEL,
      watcherReadyUrls: config.WATCHER_READY_URL,
    },
    'metrics service started',
  );

  return {
    async stop() {
      clearInterval(pruning);
      await Promise.allSettled([...runs, following]);
      await nc?.drain().catch(() => undefined);
    },
  };
}
