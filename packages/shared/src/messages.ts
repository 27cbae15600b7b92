import { z } from 'zod';
import { WORK_KINDS } from './subjects.js';

const k8sName = z.string().min(1).max(253).regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Kubernetes object name');
const namespaceName = z.string().min(1).max(63).regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name');

/**
 * A work item names only what to reconcile, like a controller-runtime reconcile.Request: the
 * worker reads the current state itself, so a stale, duplicated or reordered item is harmless.
 */
export const workItemSchema = z.object({
  kind: z.enum(WORK_KINDS),
  namespace: namespaceName,
  name: k8sName,
  /** Why it was enqueued (for logs and metrics only; never changes what the reconcile does). */
  reason: z.string().max(200).default('unknown'),
});
export type WorkItem = z.infer<typeof workItemSchema>;

/** A change seen by the watcher, published for any subscriber (metrics, audit, UIs). */
export const changeEventSchema = z.object({
  type: z.enum(['added', 'modified', 'deleted', 'resync']),
  kind: z.enum(['session', 'template', 'deployment', 'pod']),
  namespace: namespaceName,
  name: k8sName,
  uid: z.string().min(1),
  resourceVersion: z.string().min(1),
  generation: z.number().int().nonnegative().optional(),
  observedAt: z.iso.datetime({ offset: true }),
  object: z.record(z.string(), z.unknown()),
});
export type ChangeEvent = z.infer<typeof changeEventSchema>;

/** A decision of the idle reaper (or anyone allowed to) to change a session's desired state. */
export const sessionCommandSchema = z.object({
  action: z.enum(['hibernate', 'terminate']),
  namespace: namespaceName,
  name: k8sName,
  /** The Session's uid, so a command never applies to a newer Session of the same name. */
  uid: z.string().min(1),
  reason: z.enum(['Idle', 'MaxDurationExceeded', 'User']),
  message: z.string().max(1000),
  issuedBy: z.string().max(200),
  issuedAt: z.iso.datetime({ offset: true }),
});
export type SessionCommand = z.infer<typeof sessionCommandSchema>;

const activityAt = z.iso.datetime({ offset: true });
const ACTIVITY_SOURCE_MAX = 100;

/** "Someone used this desktop": from the VNC proxy, a sidecar or the browser client. */
export const activityReportSchema = z.object({
  namespace: namespaceName,
  session: k8sName,
  /** When the activity happened; defaults to when the report was received. */
  at: activityAt.optional(),
  source: z.string().max(ACTIVITY_SOURCE_MAX).optional(),
});
export type ActivityReport = z.infer<typeof activityReportSchema>;

/** The pattern the schema checks `at` against (zod's own, so the two cannot drift apart). */
const ACTIVITY_AT_PATTERN: RegExp | undefined = activityAt._zod.def.pattern;

/**
 * The common activity report — parsed JSON naming `namespace`/`session`, with an optional `at`
 * and `source` — checked by hand, for a caller that already knows both names are valid (a
 * Session it tracks). Why: the idle reaper takes about a thousand reports a second at 10,000
 * Sessions, and in V8's lite mode the schema cost ~35 µs of a report's ~80 µs. The rules are the
 * schema's (its `at` pattern, its `source` limit; other keys are dropped, as the schema does);
 * anything else returns undefined, and the caller asks the schema, which says what is wrong.
 */
export function quickActivityReport(
  raw: unknown,
  namespace: string,
  session: string,
): ActivityReport | undefined {
  if (typeof raw !== 'object' || raw === null || ACTIVITY_AT_PATTERN === undefined) return undefined;
  const { namespace: ns, session: name, at, source } = raw as Record<string, unknown>;
  if (ns !== namespace || name !== session) return undefined;
  if (at !== undefined && (typeof at !== 'string' || !ACTIVITY_AT_PATTERN.test(at))) return undefined;
  if (source !== undefined && (typeof source !== 'string' || source.length > ACTIVITY_SOURCE_MAX))
    return undefined;
  return {
    namespace,
    session,
    ...(at !== undefined ? { at } : {}),
    ...(source !== undefined ? { source } : {}),
  };
}

/** What a dead-lettered item carries: the original, where it came from and why it failed. */
export const deadLetterSchema = z.object({
  subject: z.string(),
  reason: z.string(),
  attempts: z.number().int().nonnegative(),
  failedAt: z.iso.datetime({ offset: true }),
  service: z.string(),
  /** The original payload as text (it may not be JSON at all). */
  payload: z.string(),
});
export type DeadLetter = z.infer<typeof deadLetterSchema>;

/** Shared: decoding is stateless without `stream`, and one per message is needless garbage. */
const utf8 = new TextDecoder();

/** Parses JSON bytes against a schema, returning a readable error instead of throwing. */
export function decodeMessage<S extends z.ZodType>(
  schema: S,
  data: Uint8Array,
): { ok: true; value: z.infer<S> } | { ok: false; error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(utf8.decode(data));
  } catch (error) {
    return { ok: false, error: `not JSON: ${(error as Error).message}` };
  }
  const result = schema.safeParse(raw);
  if (result.success) return { ok: true, value: result.data };
  return {
    ok: false,
    error: result.error.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; '),
  };
}
