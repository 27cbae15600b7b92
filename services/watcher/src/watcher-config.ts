import { kubeEnvSchema } from '@streamspace/kube';
import {
  DEFAULT_MAX_OBJECT_BYTES,
  DEFAULT_PIN_TIMEOUT_MS,
  DEFAULT_STREAM_LIMITS,
  DEFAULT_WORK_PARTITIONS,
  env,
  MAX_WORK_PARTITIONS,
  natsEnvSchema,
  type ObservedKind,
  replicasSettingSchema,
  watchNamespacesSchema,
} from '@streamspace/shared';
import { z } from 'zod';
import { DEFAULT_EVENT_KINDS, OBSERVED_KINDS } from './work-routing.js';

export const watcherConfigSchema = natsEnvSchema.extend(kubeEnvSchema.shape).extend({
  /** Watch these namespaces only (comma-separated), each by itself; all namespaces when unset. */
  WATCH_NAMESPACE: watchNamespacesSchema,
  /**
   * Every Session and Template is announced again this often, to repair whatever was missed; 0
   * turns it off. 30 minutes, not 5: a resync is a reconcile of every Session that writes nothing
   * when nothing drifted, and the watches (bookmarks, relist on 410, a watchdog) and the work
   * stream's acks are what keep changes from being missed; the resync is the safety net behind
   * them. At 5 minutes it was 1,001 of the 2,242–3,100 reconciles of a pipeline benchmark run, and
   * at 10,000 Sessions it would be 33 reconciles a second with no change behind them.
   * controller-runtime's default is 10 hours.
   */
  RESYNC_INTERVAL: env.durationMs('30m', 1_000, true),
  /**
   * Objects a resync announces per second (spread over at most 90 s): a resync of every Session at
   * once would queue in front of the changes users make meanwhile.
   */
  RESYNC_RATE: env.positiveInt(20),
  /**
   * The kinds whose changes are published as change events (comma-separated, of session,
   * template, deployment, pod). By default the custom resources only: every
   * change of every kind is in the shared-state bucket, and a Deployment's or Pod's events were
   * a quarter of what the watcher sent, read by no component (see DEFAULT_EVENT_KINDS).
   */
  EVENT_KINDS: z
    .string()
    .default(DEFAULT_EVENT_KINDS.join(','))
    .transform((text, ctx) => {
      const kinds = text
        .split(',')
        .map((kind) => kind.trim())
        .filter(Boolean);
      for (const kind of kinds)
        if (!(OBSERVED_KINDS as readonly string[]).includes(kind))
          ctx.addIssue({
            code: 'custom',
            message: `must be a comma-separated list of ${OBSERVED_KINDS.join(', ')}: '${kind}' is not`,
          });
      if (kinds.length === 0) ctx.addIssue({ code: 'custom', message: 'must name at least one kind' });
      return new Set(kinds as ObservedKind[]);
    }),
  /** How long change events are kept in STREAMSPACE_EVENTS; 0 keeps them until other stream limits apply. */
  EVENTS_MAX_AGE: env.durationMs('24h', 1_000, true),
  /**
   * The watcher declares the JetStream topology (no other service's NATS user may), so how work
   * is partitioned is its setting: how many partitions work items are spread over (each pinned
   * to one reconciler at a time; more partitions than workers spread the work, and the reconcilers
   * read the number from the work stream) ...
   */
  WORK_PARTITIONS: z.coerce
    .number({ message: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(MAX_WORK_PARTITIONS, `must be at most ${MAX_WORK_PARTITIONS}`)
    .default(DEFAULT_WORK_PARTITIONS),
  /**
   * ... how long a partition stays pinned to a reconciler that stopped pulling (a killed worker's
   * partitions move to the others after this; a worker stops writing well before it) ...
   */
  PIN_TIMEOUT: env.durationMs(`${DEFAULT_PIN_TIMEOUT_MS / 1000}s`, 3_000),
  /**
   * ... how many copies JetStream keeps of every stream, consumer and bucket: `auto` asks the
   * server (3 when it is part of a cluster, 1 when it is alone), or a count from 1 to 5 ...
   */
  NATS_REPLICAS: replicasSettingSchema,
  /** ... and how long a session's last activity is remembered in the activity bucket. */
  ACTIVITY_TTL: env.durationMs('24h', 1_000),
  /**
   * The shortest server-side timeout asked for a watch: each asks for a random one up to twice
   * this (as client-go), so the watches of all kinds and namespaces do not end, and relist, at the
   * same moment; the API server ends it then and we start another. The silence watchdog does not
   * mind the longer ones: kube-apiserver sends a watch that asked for bookmarks one a minute.
   */
  WATCH_TIMEOUT: env.durationMs('5m', 1_000),
  /** A watch silent (no event, no bookmark) for longer than this is presumed stuck and restarted. */
  WATCH_SILENCE_TIMEOUT: env.durationMs('6m', 100),
  /**
   * A watch the API server has not answered (no response headers) this long after it was asked
   * for makes the watcher not ready until it is: a watch request can wait unseen (for a socket,
   * for the server) while nothing it would report arrives (issue 13, BENCHMARKS.md D1-D5). The
   * first watch of each kind, and one after a failure, are not ready until answered anyway. 90 s,
   * beyond the API server's bookmark interval (about a minute): behind a proxy that holds response
   * headers until the first body byte, a watch's first bookmark is its answer.
   */
  WATCH_ANSWER_TIMEOUT: env.durationMs('90s', 100),
  LIST_PAGE_SIZE: env.positiveInt(500),
  /**
   * List pages the watches ask for at once, all kinds and namespaces together: at start (and after
   * an API-server restart) every watch lists, and each page's changes are held until they are
   * stored (BENCHMARKS.md, W1-W4; its items are read one by one as they arrive, U1-U12).
   */
  LIST_CONCURRENCY: env.positiveInt(2),
  /** Publications held in memory while NATS is unreachable; beyond this the oldest are dropped (and a resync follows). */
  PUBLISH_QUEUE_LIMIT: env.positiveInt(10_000),
  /** Publications awaiting their JetStream acknowledgement at once. */
  PUBLISH_CONCURRENCY: env.positiveInt(64),
  /**
   * The bound on one object as the watcher keeps and publishes it (JSON bytes, after dropping
   * managedFields and the annotations no component reads). An object still larger loses its
   * labels and annotations, then its spec and status, is counted and logged, and is reconciled.
   */
  MAX_OBJECT_BYTES: z.coerce
    .number({ message: 'must be a number' })
    .int('must be a whole number')
    .min(4096, 'must be at least 4096 (an object’s identity alone can take 2 KiB)')
    .default(DEFAULT_MAX_OBJECT_BYTES),
  /** The most the events stream may hold (bytes); the oldest events are discarded beyond it. */
  EVENTS_MAX_BYTES: env.positiveInt(DEFAULT_STREAM_LIMITS.eventsMaxBytes),
  /** The most the work stream may hold (bytes). */
  WORK_MAX_BYTES: env.positiveInt(DEFAULT_STREAM_LIMITS.workMaxBytes),
  /** The most the dead-letter stream may hold (bytes); the oldest are discarded beyond it. */
  DEAD_LETTER_MAX_BYTES: env.positiveInt(DEFAULT_STREAM_LIMITS.deadLetterMaxBytes),
  /** On SIGTERM, how long to wait for queued publications to be acknowledged. */
  SHUTDOWN_FLUSH_TIMEOUT: env.durationMs('5s', 0),
});

export type WatcherConfig = z.infer<typeof watcherConfigSchema>;
