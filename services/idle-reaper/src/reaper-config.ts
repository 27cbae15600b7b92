import { kubeEnvSchema } from '@streamspace/kube';
import {
  env,
  natsEnvSchema,
  watchNamespacesSchema,
} from '@streamspace/shared';
import { z } from 'zod';

export const reaperEnvSchema = natsEnvSchema.extend(kubeEnvSchema.shape).extend({
  /** Track the Sessions of these namespaces only (comma-separated); every namespace when unset. */
  WATCH_NAMESPACE: watchNamespacesSchema,
  /** For Sessions without spec.idleTimeout (the CRD defaults it to 30m, so rarely used). `0` disables. */
  DEFAULT_IDLE_TIMEOUT: env.durationMs('30m', 0),
  /** For Sessions without spec.maxSessionDuration (the CRD defaults it to 8h). `0` disables. */
  DEFAULT_MAX_SESSION_DURATION: env.durationMs('8h', 0),
  /**
   * Whether a Session's stream.streamspace.io/reaper-disabled=true annotation is honoured. Off
   * by default: users cannot switch off the platform's cost controls.
   */
  REAPER_OPT_OUT_ALLOWED: env.boolean(false),
  /** The longest spec.idleTimeout honoured; 0 ("never") and longer timeouts get this. `0`: no maximum. */
  MAX_IDLE_TIMEOUT: env.durationMs('8h', 0),
  /** The longest spec.maxSessionDuration honoured; 0 ("no limit") and longer get this. `0`: no maximum. */
  MAX_SESSION_DURATION: env.durationMs('24h', 0),
  /**
   * At most one status.lastActivity write per Session this often (besides the one made with each
   * decision): the API server sees about (active Sessions / interval) writes a second, 17/s for
   * 10,000 Sessions at 10m. The precise time lives in the activity bucket.
   */
  LAST_ACTIVITY_WRITE_INTERVAL: env.durationMs('10m', 100),
  /**
   * Reports are held in memory and written to the activity bucket this often, the latest per
   * session. It is also the restart grace (no idle decision until this long after start) and how
   * late another replica may learn of a report, so keep it well below the shortest idleTimeout.
   */
  ACTIVITY_FLUSH_INTERVAL: env.durationMs('30s', 100),
  /** Report timestamps further than this in the future are clamped to the time of receipt and counted. */
  ACTIVITY_MAX_CLOCK_SKEW: env.durationMs('2s', 0),
  /** Bearer token of POST /activity, or a file holding it (a mounted Secret; re-read when it changes). */
  ACTIVITY_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  ACTIVITY_TOKEN_FILE: z.string().optional(),
  /**
   * The key of per-session activity tokens (session-activity-token.ts), a file (a mounted Secret,
   * shared with the reconciler only; re-read when it changes). Enables POST /activity for the
   * activity agents in desktop pods.
   */
  ACTIVITY_SESSION_KEY_FILE: z.string().optional(),
  /** Serve POST /activity; defaults to true when a token is configured, and requires one. */
  ACTIVITY_HTTP: z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: "must be 'true' or 'false'" })
    .transform((v) => v === 'true' || v === '1' || v === 'yes')
    .optional(),
  /** A decision that has not changed spec.state after this long is issued again. */
  COMMAND_RETRY_INTERVAL: env.durationMs('30s', 1_000),
  /**
   * NATS identities (comma-separated) whose `User` commands are carried out: they change
   * spec.state without a deadline check, so none by default. Each must be allowed by NATS to
   * publish under its own issuer token (scripts/nats-auth --command-issuer NAME).
   */
  USER_COMMAND_ISSUERS: z
    .string()
    .default('')
    .transform((text) =>
      text
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .pipe(
      z.array(
        z
          .string()
          .regex(
            /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
            'each issuer must be a NATS identity name (lower-case letters, digits and -)',
          )
          .refine(
            (name) => name !== 'idle-reaper',
            'the idle reaper issues deadline commands only, never User commands',
          ),
      ),
    ),
  /**
   * How long a replica that stopped heartbeating (killed, its node lost, paused) keeps its part of
   * the Sessions before the others take it over (docs/idle-reaper.md#replicas-share-the-sessions).
   * Heartbeats go out four times per TTL; every replica must have the same. Short, since the
   * Sessions of a dead replica wait this long (plus up to a sixth of it) for their decisions; a
   * replica stalled longer than three quarters of it is taken over for a while, which costs a
   * re-evaluation and makes no Session ownerless (docs/idle-reaper.md#replicas-share-the-sessions).
   */
  REAPER_MEMBER_TTL: env.durationMs('1s', 1_000),
  /** Commands carried out at once by this replica. */
  EXECUTOR_CONCURRENCY: env.positiveInt(32),
  /**
   * Connections the decisions' API client keeps open (the records' client, a quarter of them),
   * where other services keep up to 64. A burst of decisions (four writes each, the three records
   * all at once) opened dozens of TLS connections, each holding ≈ 110 KiB of native memory that
   * the process never gives back: most of the ≈ 8 MiB a replica grew by during the decisions
   * (BENCHMARKS.md runs T and S5). Requests beyond the cap wait their turn in the client. With 8
   * (and 8 for the records) the state changes of a burst queued for connections and waited for
   * executors: decided p99 551 ms in a two-replica run, against 284–330 ms before (run S5).
   */
  KUBE_MAX_CONNECTIONS: env.positiveInt(16),
});

export type ReaperConfig = z.infer<typeof reaperEnvSchema>;

/**
 * Rules that span variables (runService merges only the schema's shape, so they are checked
 * here, at start). Returns the message of the first violation.
 */
export function configProblem(config: ReaperConfig): string | undefined {
  if (
    config.ACTIVITY_HTTP === true &&
    !config.ACTIVITY_TOKEN &&
    !config.ACTIVITY_TOKEN_FILE &&
    !config.ACTIVITY_SESSION_KEY_FILE
  ) {
    return 'ACTIVITY_HTTP: POST /activity needs a bearer token: set ACTIVITY_TOKEN, ACTIVITY_TOKEN_FILE or ACTIVITY_SESSION_KEY_FILE, or set ACTIVITY_HTTP=false';
  }
  return undefined;
}
