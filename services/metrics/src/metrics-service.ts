import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  connectNats,
  describeNamespaces,
  type RunningService,
  retryForever,
  type ServiceConfig,
  type ServiceContext,
} from '@streamspace/shared';
import { kubeClientFromConfig } from '@streamspace/kube';
import { Counter } from 'prom-client';
import { customObjectTransport } from './kube-transport.js';
import { ListWatch, ListWatchSet, type Parsed, RESTART_REASONS } from './list-watch.js';
import type { metricsConfigSchema } from './metrics-config.js';
import { type JetStreamReader, jetStreamReader, registerPipelineMetrics } from './pipeline-health.js';
import { SessionEventStream } from './session-event-stream.js';
import { createSessionMetrics } from './session-metrics.js';
import { parseSessionSnapshot, type SessionSnapshot } from './session-snapshot.js';
import { TransitionTracker } from './transition-tracker.js';

/** Sessions deleted while their deletion event was missed are forgotten after this long. */
const PRUNE_GRACE_MS = 10 * 60_000;

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
  const kube = kubeClientFromConfig(config, registry, log);
  const namespace = config.WATCH_NAMESPACE;
  readiness.register('sessions', 'listing sessions');
  readiness.register('templates', 'listing templates');
  readiness.register('event-stream', 'waiting for NATS');

  const restarts = new Counter({
    name: 'streamspace_metrics_watch_restarts_total',
    help: 'Watches of Sessions and Templates started again, by why: gone (410, relisted), error, closed (ended normally), watchdog (silent too long).',
    labelNames: ['resource', 'reason'],
    registers: [registry],
  });
  // One list + watch per namespace when several are served (no cluster-wide list is allowed then).
  const namespaces: (string | undefined)[] = namespace ?? [undefined];
  if (namespaces.length > 1)
    for (const ns of namespaces)
      for (const resource of ['sessions', 'templates'])
        readiness.register(`${resource}:${ns}`, `listing ${resource}`);
  const watchOf = <T>(resource: 'sessions' | 'templates', parse: (raw: unknown) => Parsed<T>) => {
    for (const reason of RESTART_REASONS) restarts.labels(resource, reason).inc(0);
    if (namespaces.length > 1)
      readiness.set(resource, true, `one list per namespace (${resource}:<namespace>)`);
    const members = namespaces.map((ns) => {
      const check = namespaces.length > 1 ? `${resource}:${ns}` : resource;
      const where = namespaces.length > 1 ? { namespace: ns } : {};
      return new ListWatch<T>({
        resource,
        transport: customObjectTransport(kube, resource, ns),
        parse,
        pageSize: config.LIST_PAGE_SIZE,
        watchTimeoutSeconds: Math.round(config.WATCH_TIMEOUT / 1000),
        silenceTimeoutMs: config.WATCH_SILENCE_TIMEOUT,
        onState: (up, reason) => {
          readiness.set(check, up, reason);
          if (up) log.info({ resource, ...where }, 'listed and watching');
          else
            log.warn(
              { resource, ...where, reason },
              'watch down; the gauges keep the last known state until it is back',
            );
        },
        onRestart: (reason, detail, delayMs) => {
          restarts.labels(resource, reason).inc();
          const level = reason === 'closed' ? 'debug' : 'warn';
          log[level]({ resource, ...where, reason, detail, retryInMs: delayMs }, 'restarting watch');
        },
        onMalformed: (_raw, reason) =>
          log.warn({ resource, ...where, reason }, 'skipping an object that cannot be read'),
      });
    });
    return new ListWatchSet<T>(members);
  };
  const sessions = watchOf('sessions', parseSession);
  const templates = watchOf('templates', parseTemplateName);

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
    jetStream = jetStreamReader(
      await retryForever(() => jetstreamManager(connection), { signal, maxMs: 10_000 }),
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
