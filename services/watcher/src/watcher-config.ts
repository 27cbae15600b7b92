import { env, formatDuration, natsEnvSchema, parseDuration } from '@streamspace/shared';
import { z } from 'zod';

/** A duration variable (`30s`, `5m`, `24h`) read as milliseconds: 0 when `zeroAllowed`, else at least `minMs`. */
function durationMs(fallback: string, minMs: number, zeroAllowed = false) {
  return z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      try {
        const ms = parseDuration(text);
        if (ms >= minMs || (zeroAllowed && ms === 0)) return ms;
        const zero = zeroAllowed ? ' (or 0 to disable)' : '';
        ctx.addIssue({ code: 'custom', message: `must be at least ${formatDuration(minMs)}${zero}` });
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
      return z.NEVER;
    });
}

export const watcherConfigSchema = natsEnvSchema.extend({
  /** Watch one namespace only; all namespaces when unset. */
  WATCH_NAMESPACE: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name (lower-case letters, digits and -)')
    .max(63, 'must be a namespace name (at most 63 characters)')
    .optional(),
  /** Every Session and Template is announced again this often, to repair whatever was missed; 0 turns it off. */
  RESYNC_INTERVAL: durationMs('5m', 1_000, true),
  /**
   * Objects a resync announces per second (spread over at most 90 s): a resync of every Session at
   * once would queue in front of the changes users make meanwhile.
   */
  RESYNC_RATE: env.positiveInt(20),
  /** How long change events are kept in STREAMSPACE_EVENTS; 0 keeps them until other stream limits apply. */
  EVENTS_MAX_AGE: durationMs('24h', 1_000, true),
  /**
   * The watcher declares the JetStream topology (no other service's NATS user may), the KV
   * buckets included, so their TTLs are its settings: how long a reconciler's lock on a key lives
   * unless renewed (the reconciler's LOCK_TTL; the chart sets both from reconciler.lockTtl) ...
   */
  LOCK_TTL: durationMs('30s', 1_000),
  /** ... and how long a session's last activity is remembered in the activity bucket. */
  ACTIVITY_TTL: durationMs('24h', 1_000),
  /** The server-side timeout asked for each watch; the API server ends it then and we start another. */
  WATCH_TIMEOUT: durationMs('5m', 1_000),
  /** A watch silent (no event, no bookmark) for longer than this is presumed stuck and restarted. */
  WATCH_SILENCE_TIMEOUT: durationMs('6m', 100),
  LIST_PAGE_SIZE: env.positiveInt(500),
  /** Publications held in memory while NATS is unreachable; beyond this the oldest are dropped (and a resync follows). */
  PUBLISH_QUEUE_LIMIT: env.positiveInt(10_000),
  /** Publications awaiting their JetStream acknowledgement at once. */
  PUBLISH_CONCURRENCY: env.positiveInt(64),
  /** On SIGTERM, how long to wait for queued publications to be acknowledged. */
  SHUTDOWN_FLUSH_TIMEOUT: durationMs('5s', 0),
});

export type WatcherConfig = z.infer<typeof watcherConfigSchema>;
