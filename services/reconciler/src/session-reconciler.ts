import {
  homeClaimName,
  type Logger,
  legacyHomeClaimName,
  sessionChildName,
  validateSession,
} from '@streamspace/shared';
import { coversDesired, replicasOnlyChange } from './applied-state.js';
import { byType, type Condition, setCondition } from './conditions.js';
import type { KubeWriter } from './kube-writer.js';
import type { ReconcilerSettings } from './reconciler-settings.js';
import type { StateReads } from './state-reads.js';
import {
  type DesktopRefusal,
  type PlannedStatus,
  INVALID_RESOURCES,
  planSession,
  RESOURCES_EXCEED_CEILING,
} from './session-plan.js';
import { planTemplateStatus } from './template-validation.js';

/** What a reconcile reports besides its writes (metrics). */
export interface ReconcileObservers {
  /** A desktop newly refused for a platform rule (a capability beyond the allow-list, an unauthorizable user). */
  refused?(reason: DesktopRefusal): void;
  /** A Session newly refused for one of REFUSAL_REASONS (tenancy rules, the resource ceiling). */
  sessionRefused?(reason: RefusalReason): void;
}

export interface ReconcileOutcome {
  /** Look again after this long even without a new trigger. */
  requeueAfterMs?: number;
}

/**
 * A status planned from a Session read before its latest change was not written: look again
 * once the shared state has it (the watcher stores a change within milliseconds).
 */
const LOOK_AGAIN: ReconcileOutcome = { requeueAfterMs: 250 };

function comparable(status: Partial<PlannedStatus> | undefined): string {
  const conditions = ((status?.conditions ?? []) as Condition[])
    .map(({ type, status: s, reason, message, observedGeneration }) => ({
      type,
      s,
      reason,
      message,
      observedGeneration,
    }))
    .sort(byType);
  return JSON.stringify({
    phase: status?.phase,
    podName: status?.podName,
    url: status?.url,
    g: status?.observedGeneration,
    conditions,
  });
}

/**
 * Why the reconciler refuses to act for a Session (see session-plan.ts): said in its status and an
 * Event, logged and counted once per refusal.
 */
export const REFUSAL_REASONS = [
  'ControlPlaneNamespace',
  'ChildNotOwned',
  'HomeClaimNotOwned',
  RESOURCES_EXCEED_CEILING,
  INVALID_RESOURCES,
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/**
 * Waits for every write, then fails with the first failure: no write of a reconcile is still on
 * its way when the reconcile ends (its item is then acknowledged, or retried, maybe elsewhere).
 */
async function allWritten(writes: Promise<void>[]): Promise<void> {
  const failed = (await Promise.allSettled(writes)).find(
    (r): r is PromiseRejectedResult => r.status === 'rejected',
  );
  if (failed) throw failed.reason;
}

/** Read → plan → apply → report, for one Session. Safe to run again at any time. */
export async function reconcileSession(
  reads: StateReads,
  writer: KubeWriter,
  settings: ReconcilerSettings,
  namespace: string,
  name: string,
  log: Logger,
  now: () => Date = () => new Date(),
  observers: ReconcileObservers = {},
): Promise<ReconcileOutcome> {
  const { session, observe } = await reads.readSessionWithState(namespace, name, sessionChildName(name));
  // Deleted: owner references let the garbage collector remove the children; the home stays.
  if (!session || session.metadata.deletionTimestamp) return {};

  if (session.spec === undefined) {
    // The watcher kept only its identity: spec and status together are over its MAX_OBJECT_BYTES.
    // Said in the status (which needs only the identity) instead of acting on a spec it cannot see.
    const message =
      'The session is too large for the platform to read (its spec and status exceed the watcher\'s MAX_OBJECT_BYTES): shrink it, or raise MAX_OBJECT_BYTES';
    const status: PlannedStatus = {
      phase: 'Failed',
      conditions: setCondition(
        (session.status?.conditions as Condition[]) ?? [],
        { type: 'Ready', status: 'False', reason: 'ObjectTooLarge', message },
        now(),
      ),
      observedGeneration: session.metadata.generation ?? 0,
    };
    if (comparable(session.status as PlannedStatus) !== comparable(status)) {
      if (!(await writer.writeSessionStatus(session, status))) return LOOK_AGAIN;
    }
    return {};
  }

  const validation = validateSession(session);
  if (!validation.ok) {
    const message = `The session is invalid: ${validation.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`;
    const conditions = setCondition(
      (session.status?.conditions as Condition[]) ?? [],
      { type: 'Ready', status: 'False', reason: 'InvalidSpec', message },
      now(),
    );
    const status: PlannedStatus = {
      phase: 'Failed',
      conditions,
      observedGeneration: session.metadata.generation ?? 0,
    };
    if (comparable(session.status as PlannedStatus) !== comparable(status)) {
      if (!(await writer.writeSessionStatus(session, status))) return LOOK_AGAIN;
      await writer
        .recordEvent(session, { type: 'Warning', reason: 'InvalidSpec', message })
        .catch(() => undefined);
    }
    return {};
  }

  // The claim names are hashes of the user name: worked out only for a Session that has a home.
  const observed = await observe(
    session,
    session.spec.persistentHome
      ? { current: homeClaimName(session.spec.user), legacy: legacyHomeClaimName(session.spec.user) }
      : undefined,
  );
  const plan = planSession(observed, settings, now());
  const existing: Record<string, unknown> = {
    Deployment: observed.deployment,
    Service: observed.service,
    Ingress: observed.ingress,
    NetworkPolicy: observed.networkPolicy,
    PersistentVolumeClaim: observed.homeClaim,
  };
  const writes = plan.apply.filter((object) => !coversDesired(object, existing[object.kind as string]));
  // The activity agent's Secret first: the pod reads its token when it starts.
  for (const secret of writes.filter((object) => object.kind === 'Secret')) await writer.apply(secret);
  // The rest depend on nothing of each other: a create's Deployment, Service, Ingress and
  // NetworkPolicy go together, one round trip to the API server instead of four (under the
  // 1,000-Session bench's load a write took 0.1–0.2 s, and a reconcile holds its slot throughout).
  await allWritten(
    writes
      .filter((object) => object.kind !== 'Secret')
      .map((object) => {
        // A hibernate or a wake of an unchanged desktop: its replicas alone are set.
        const replicas =
          object.kind === 'Deployment' ? replicasOnlyChange(object, observed.deployment) : undefined;
        return replicas === undefined
          ? writer.apply(object)
          : writer.scale(session.metadata.namespace, object.metadata?.name as string, replicas);
      }),
  );
  await allWritten(plan.remove.map((ref) => writer.remove(ref)));
  if (comparable(session.status as PlannedStatus) !== comparable(plan.status)) {
    // Planned from a Session that has changed since: nothing told, nothing counted; look again.
    if (!(await writer.writeSessionStatus(session, plan.status))) return LOOK_AGAIN;
  }
  if (plan.refused) {
    // Bad input from a Template author, or a user name the platform cannot guard: said on the
    // Session (condition + event), here in the log, and counted once the status says so.
    log.warn(
      { namespace, name, reason: plan.refused.reason, message: plan.refused.message },
      'desktop refused',
    );
    observers.refused?.(plan.refused.reason);
  }
  for (const event of plan.events) {
    const refusal = REFUSAL_REASONS.find((r) => r === event.reason);
    if (refusal) {
      // Told once, when the refusal starts (the plan emits its Event only then).
      observers.sessionRefused?.(refusal);
      log.warn({ namespace, name, reason: refusal, message: event.message }, 'refusing to act for a session');
    }
    await writer
      .recordEvent(session, event)
      .catch((error: Error) =>
        log.warn({ err: error.message, reason: event.reason }, 'could not record an event'),
      );
  }
  // At debug: the Session's status and its Event tell a phase change; at info this was a
  // synchronous write to stdout for nearly every reconcile (1.1 s of a worker's 30 s of CPU samples
  // in the 1,000-Session bench, BENCHMARKS.md R22–R23).
  if (plan.status.phase !== session.status?.phase) {
    log.debug(
      { namespace, name, from: session.status?.phase ?? 'none', to: plan.status.phase },
      'session phase changed',
    );
  }
  return plan.requeueAfterMs !== undefined ? { requeueAfterMs: plan.requeueAfterMs } : {};
}

export async function reconcileTemplate(
  reads: StateReads,
  writer: KubeWriter,
  namespace: string,
  name: string,
  now: () => Date = () => new Date(),
  allowedCapabilities?: readonly string[],
): Promise<ReconcileOutcome> {
  const template = await reads.readTemplate(namespace, name);
  if (!template || template.metadata.deletionTimestamp) return {};
  const plan = planTemplateStatus(template, now(), allowedCapabilities);
  const current = template.status as
    | { valid?: boolean; conditions?: Condition[]; observedGeneration?: number }
    | undefined;
  const same =
    current?.valid === plan.valid &&
    current?.observedGeneration === plan.observedGeneration &&
    comparable({ conditions: current?.conditions ?? [] }) === comparable({ conditions: plan.conditions });
  if (!same) await writer.writeTemplateStatus(template, plan);
  return {};
}

/** Marks a Session whose work item was dead-lettered, so `kubectl describe` says so. */
export async function markDeadLettered(
  reads: StateReads,
  writer: KubeWriter,
  namespace: string,
  name: string,
  reason: string,
  now: () => Date = () => new Date(),
): Promise<void> {
  const session = await reads.readSession(namespace, name);
  if (!session) return;
  const message = `Reconciling failed repeatedly and was given up: ${reason}. The next change to the session or its template, or the periodic resync, tries again.`;
  const conditions = setCondition(
    (session.status?.conditions as Condition[]) ?? [],
    { type: 'Reconciled', status: 'False', reason: 'DeadLettered', message },
    now(),
  );
  await writer.writeSessionStatus(session, { ...(session.status as PlannedStatus), conditions });
  await writer.recordEvent(session, { type: 'Warning', reason: 'ReconcileFailed', message });
}
