import type {
  KubernetesObject,
  V1Deployment,
  V1Ingress,
  V1NetworkPolicy,
  V1PersistentVolumeClaim,
  V1Pod,
  V1PodTemplateSpec,
  V1Service,
} from '@kubernetes/client-node';
import { ANNOTATIONS } from '@streamspace/shared';
import {
  chooseHomeClaim,
  type ForeignChild,
  foreignChildren,
  type HomeClaimChoice,
} from './child-ownership.js';
import { type Condition, findCondition, setCondition } from './conditions.js';
import { hasActivityAgent } from './activity-agent.js';
import { unauthorizableUser } from './desktop-access.js';
import type { ReconcilerSettings } from './reconciler-settings.js';
import { requestsAboveLimits } from './resource-ceiling.js';
import {
  buildDeployment,
  buildHomeClaim,
  buildIngress,
  buildNetworkPolicy,
  buildService,
  buildSessionActivitySecret,
  renderPodTemplate,
  sessionResources,
  sessionUrl,
} from './session-children.js';
import type { StoredSession as Session, StoredTemplate as Template } from './stored-objects.js';
import { capabilityProblems, templateProblems } from './template-validation.js';

/** Everything a reconcile read about one Session, at one moment. */
export interface ObservedSession {
  session: Session;
  /** undefined: no Template of that name exists in the Session's namespace. */
  template: Template | undefined;
  deployment?: V1Deployment;
  service?: V1Service;
  ingress?: V1Ingress;
  networkPolicy?: V1NetworkPolicy;
  /** The claim named homeClaimName(spec.user), read only with persistentHome. */
  homeClaim?: V1PersistentVolumeClaim;
  /** The claim named legacyHomeClaimName(spec.user) (32-bit slug of earlier releases), read only with persistentHome. */
  legacyHomeClaim?: V1PersistentVolumeClaim;
  pods: V1Pod[];
}

export type Phase = 'Pending' | 'Running' | 'Hibernated' | 'Terminated' | 'Failed';

export interface PlannedStatus {
  phase: Phase;
  podName?: string;
  url?: string;
  conditions: Condition[];
  observedGeneration: number;
}

export interface KubeEventIntent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface ChildRef {
  apiVersion: string;
  kind: 'Deployment' | 'Service' | 'Ingress' | 'NetworkPolicy';
  name: string;
  namespace: string;
}

/** What should exist and be said, as data. The shell applies it; nothing here does I/O. */
export interface SessionPlan {
  apply: KubernetesObject[];
  remove: ChildRef[];
  status: PlannedStatus;
  events: KubeEventIntent[];
  /** Look again after this long even if nothing changes (the startup deadline). */
  requeueAfterMs?: number;
  /** Set when this plan newly refuses to build a desktop for a platform rule (logged and counted). */
  refused?: { reason: DesktopRefusal; message: string };
}

/** Platform rules a desktop can be refused for (the label of streamspace_reconciler_desktops_refused_total). */
export type DesktopRefusal = 'capability_not_allowed' | 'user_not_authorizable';

/** Where the pod template a running desktop was started from is kept (see docs/lifecycle.md). */
export const POD_TEMPLATE_SNAPSHOT = ANNOTATIONS.podTemplate;

/** Container states that explain why a desktop is not starting, worth showing to a person. */
const WAITING_REASONS_WORTH_SHOWING = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'CrashLoopBackOff',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

function isReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function livePods(pods: V1Pod[]): V1Pod[] {
  return pods.filter(
    (p) => !p.metadata?.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed',
  );
}

/** The pod's own words for why it is not ready, e.g. "ErrImagePull: failed to pull image …". */
export function podProblem(pod: V1Pod): string | undefined {
  for (const status of pod.status?.containerStatuses ?? []) {
    const waiting = status.state?.waiting;
    if (waiting?.reason && WAITING_REASONS_WORTH_SHOWING.has(waiting.reason)) {
      return `${waiting.reason}: ${waiting.message ?? 'no message'}`;
    }
    const terminated = status.lastState?.terminated ?? status.state?.terminated;
    if (terminated && terminated.exitCode !== 0)
      return `container exited with code ${terminated.exitCode} (${terminated.reason ?? 'Error'})`;
  }
  const unschedulable = pod.status?.conditions?.find(
    (c) => c.type === 'PodScheduled' && c.status === 'False',
  );
  if (unschedulable)
    return `${unschedulable.reason ?? 'Unschedulable'}: ${unschedulable.message ?? ''}`.trim();
  return undefined;
}

function snapshotOf(deployment: V1Deployment | undefined): V1PodTemplateSpec | undefined {
  const text = deployment?.metadata?.annotations?.[POD_TEMPLATE_SNAPSHOT];
  if (!text) return undefined;
  try {
    return JSON.parse(text) as V1PodTemplateSpec;
  } catch {
    return undefined;
  }
}

function withSnapshot(deployment: V1Deployment, podTemplate: V1PodTemplateSpec): V1Deployment {
  return {
    ...deployment,
    metadata: {
      ...deployment.metadata,
      annotations: {
        ...(deployment.metadata?.annotations ?? {}),
        [POD_TEMPLATE_SNAPSHOT]: JSON.stringify(podTemplate),
      },
    },
  };
}

/** The children to remove on termination: only those this Session controls (see child-ownership.ts). */
function childRefs(observed: ObservedSession, foreign: ForeignChild[]): ChildRef[] {
  const namespace = observed.session.metadata.namespace;
  const refs: ChildRef[] = [];
  const ours = (kind: ForeignChild['kind']) => !foreign.some((f) => f.kind === kind);
  if (observed.ingress?.metadata?.name && ours('Ingress'))
    refs.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      name: observed.ingress.metadata.name,
      namespace,
    });
  if (observed.networkPolicy?.metadata?.name && ours('NetworkPolicy'))
    refs.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      name: observed.networkPolicy.metadata.name,
      namespace,
    });
  if (observed.service?.metadata?.name && ours('Service'))
    refs.push({ apiVersion: 'v1', kind: 'Service', name: observed.service.metadata.name, namespace });
  if (observed.deployment?.metadata?.name && ours('Deployment'))
    refs.push({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: observed.deployment.metadata.name,
      namespace,
    });
  return refs;
}

/** How soon to look again while an earlier Session's children wait for the garbage collector. */
const LEFTOVER_RECHECK_MS = 5_000;

function foreignChildMessage(session: Session, foreign: ForeignChild[]): string {
  const namespace = session.metadata.namespace;
  const objects = foreign.map((f) => `${f.kind} "${f.name}"`).join(', ');
  if (foreign.every((f) => f.leftByEarlierSession))
    return `${objects} in namespace "${namespace}" belong to an earlier Session named "${session.metadata.name}" that was deleted; waiting for the garbage collector to remove them before creating this session's own`;
  return `${objects} in namespace "${namespace}" already exist and are not controlled by this Session (no controller owner reference with its uid), so StreamSpace neither changes nor deletes them and the desktop is not started. Delete them if they are not needed (kubectl -n ${namespace} get ${foreign.map((f) => f.kind.toLowerCase()).join(',')}), or recreate this Session under another name; it continues by itself once they are gone`;
}

function homeClaimMessage(session: Session, choice: Extract<HomeClaimChoice, { action: 'refuse' }>): string {
  const namespace = session.metadata.namespace;
  const owner = choice.owner === undefined ? 'no owner annotation' : `owner annotation "${choice.owner}"`;
  return `PersistentVolumeClaim "${choice.name}" in namespace "${namespace}" has ${owner} (stream.streamspace.io/user), not "${session.spec.user}", so it is not mounted and the desktop is not started: it may hold another user's home. A namespace admin should find out who created it and delete or rename it (or set spec.persistentHome to false); this session continues by itself once it is gone`;
}

/** The Ready reason of a Session refused for asking more than the resource ceiling. */
export const RESOURCES_EXCEED_CEILING = 'ResourcesExceedCeiling';
/** The Ready reason of a Session whose merged requests exceed their limits. */
export const INVALID_RESOURCES = 'InvalidResources';

/**
 * A desktop that is up keeps the pod template it started with (its snapshot), so a change to its
 * resources, ceiling check included, waits until it next starts.
 */
function isLive(observed: ObservedSession): boolean {
  return observed.session.status?.phase === 'Running' && (observed.deployment?.spec?.replicas ?? 0) > 0;
}

/**
 * How a desktop is reached: its NetworkPolicy first, so the pod is fenced before the Service
 * and Ingress lead anywhere, then the Service and the (authenticated) Ingress.
 */
function exposure(session: Session, template: Template, settings: ReconcilerSettings): KubernetesObject[] {
  const policy = buildNetworkPolicy(session, template, settings);
  return [
    ...(policy ? [policy] : []),
    buildService(session, template),
    buildIngress(session, template, settings),
  ];
}

/** Ready reasons of a desktop on its way up; the startup deadline runs from their transition. */
const STARTING_REASONS = new Set(['Starting', 'Waking']);

const PHASE_EVENTS: Partial<Record<Phase, (from: Phase | undefined) => KubeEventIntent>> = {
  Running: (from) =>
    from === 'Hibernated'
      ? { type: 'Normal', reason: 'Woken', message: 'Desktop woke from hibernation and is ready' }
      : { type: 'Normal', reason: 'Running', message: 'Desktop is ready' },
  Hibernated: () => ({
    type: 'Normal',
    reason: 'Hibernated',
    message: 'Desktop scaled to zero; its service, ingress and home are kept',
  }),
  Terminated: () => ({
    type: 'Normal',
    reason: 'Terminated',
    message: 'Desktop removed; the home volume is kept',
  }),
};

/**
 * Given a Session, its Template and what exists, decide what should exist and what the status
 * says. The rules (docs/lifecycle.md):
 * - running: Deployment at one replica, Service, Ingress, and the home claim when asked; Running
 *   once a pod is Ready, Failed when none is Ready within the startup deadline.
 * - hibernated: the Deployment at zero replicas, everything else kept.
 * - terminated: Deployment, Service and Ingress removed; the home claim kept.
 * - a running desktop keeps the pod template it started with (kept as a snapshot on its
 *   Deployment): changes to its Template or resources take effect when it next wakes or starts,
 *   so the platform never restarts a desktop under its user.
 */
export function planSession(observed: ObservedSession, settings: ReconcilerSettings, now: Date): SessionPlan {
  const { session, template } = observed;
  const generation = session.metadata.generation ?? 0;
  const previousPhase = session.status?.phase as Phase | undefined;
  // A plan that gets written means reconciling works again: a dead-letter mark no longer applies.
  let conditions: Condition[] = ((session.status?.conditions as Condition[] | undefined) ?? []).filter(
    (c) => c.type !== 'Reconciled',
  );
  const events: KubeEventIntent[] = [];
  const apply: KubernetesObject[] = [];
  let remove: ChildRef[] = [];
  let requeueAfterMs: number | undefined;

  /** Ready=False for a reason a person must act on; the Warning Event is told once, when the reason first appears. */
  const refuse = (reason: string, message: string, warn: boolean) => {
    if (warn && findCondition(conditions, 'Ready')?.reason !== reason)
      events.push({ type: 'Warning', reason, message });
    conditions = setCondition(
      conditions,
      { type: 'Ready', status: 'False', reason, message, observedGeneration: generation },
      now,
    );
  };

  // 0. Never in the control plane's namespace: whoever may create Sessions there could also be
  // given (or already have) access to its Secrets and ServiceAccounts. Nothing is created or removed.
  if (settings.controlPlaneNamespace === session.metadata.namespace) {
    const message = `Sessions are not served in namespace "${session.metadata.namespace}", where StreamSpace itself runs: its users could read the control plane's Secrets and run pods as its ServiceAccounts. Create the Session in a namespace for users (docs/deploy.md, "Namespaces for users") and delete this one`;
    refuse('ControlPlaneNamespace', message, true);
    return { apply, remove, status: { phase: 'Failed', conditions, observedGeneration: generation }, events };
  }

  // 1. Can the Template be used (and its desktop be guarded for this user)?
  const userProblem = settings.desktopAuth
    ? unauthorizableUser(session.spec.user, settings.desktopAuth)
    : undefined;
  const problems = template ? templateProblems(template, settings.allowedCapabilities) : [];
  const capabilityRefused =
    template !== undefined && capabilityProblems(template, settings.allowedCapabilities).length > 0;
  let refused: SessionPlan['refused'];
  // A desktop that cannot be guarded for its user is never built, whatever its Template.
  const templateUsable = template !== undefined && problems.length === 0 && userProblem === undefined;
  const previousResolved = findCondition(conditions, 'TemplateResolved');
  const previousReadyReason = findCondition(conditions, 'Ready')?.reason;
  if (!template) {
    const message = `Template "${session.spec.template}" was not found in namespace "${session.metadata.namespace}"; create it (kubectl get templates -n ${session.metadata.namespace} lists those that exist) and this session will continue by itself`;
    conditions = setCondition(
      conditions,
      {
        type: 'TemplateResolved',
        status: 'False',
        reason: 'TemplateNotFound',
        message,
        observedGeneration: generation,
      },
      now,
    );
    if (previousResolved?.reason !== 'TemplateNotFound')
      events.push({ type: 'Warning', reason: 'TemplateNotFound', message });
  } else if (problems.length > 0) {
    const message = `Template "${session.spec.template}" is invalid: ${problems.join('; ')}; fix the template and this session will continue by itself`;
    conditions = setCondition(
      conditions,
      {
        type: 'TemplateResolved',
        status: 'False',
        reason: 'TemplateInvalid',
        message,
        observedGeneration: generation,
      },
      now,
    );
    if (previousResolved?.reason !== 'TemplateInvalid') {
      events.push({ type: 'Warning', reason: 'TemplateInvalid', message });
      if (capabilityRefused) refused = { reason: 'capability_not_allowed', message };
    }
  } else {
    conditions = setCondition(
      conditions,
      {
        type: 'TemplateResolved',
        status: 'True',
        reason: 'TemplateFound',
        message: `Using template "${template.metadata.name}"`,
        observedGeneration: generation,
      },
      now,
    );
  }

  // 2. Are the objects under this Session's names its own, and is the home claim its user's?
  const foreign = foreignChildren(session, [
    { kind: 'Deployment', object: observed.deployment },
    { kind: 'Service', object: observed.service },
    { kind: 'Ingress', object: observed.ingress },
    { kind: 'NetworkPolicy', object: observed.networkPolicy },
  ]);
  const home = session.spec.persistentHome
    ? chooseHomeClaim(session, observed.homeClaim, observed.legacyHomeClaim)
    : undefined;
  const homeClaim = home?.name;

  const pods = livePods(observed.pods);
  const readyPod = pods.find(isReady);
  const state = session.spec.state ?? 'running';
  let phase: Phase;
  let podName: string | undefined;
  let url: string | undefined;
  let waking = false;
  const resources =
    templateUsable && !isLive(observed)
      ? sessionResources(session, template, settings.resourceCeiling)
      : undefined;
  const ceilingProblems = resources?.problems ?? [];
  // A Session's requests merged with its Template's limits (or the reverse) may not fit each
  // other; the API server would refuse the Deployment again and again, so say why instead.
  const mismatches = resources ? requestsAboveLimits(resources.resources) : [];
  const resourceRefusal =
    ceilingProblems.length > 0
      ? {
          reason: RESOURCES_EXCEED_CEILING,
          message: `The session asks for more resources than the platform allows: ${ceilingProblems.join('; ')}. Lower spec.resources (or ask the platform owner to raise the ceiling) and it starts by itself`,
        }
      : mismatches.length > 0
        ? {
            reason: INVALID_RESOURCES,
            message: `The session's resources, merged with its Template's defaultResources, request more than their limit: ${mismatches.join('; ')}. Set spec.resources.limits for it (or lower the request) and it starts by itself`,
          }
        : undefined;

  if (state === 'terminated') {
    // Only what this Session controls is removed; anything else under its names is left alone.
    remove = childRefs(observed, foreign);
    phase = remove.length === 0 && pods.length === 0 ? 'Terminated' : (previousPhase ?? 'Pending');
    conditions = setCondition(
      conditions,
      phase === 'Terminated'
        ? {
            type: 'Ready',
            status: 'False',
            reason: 'Terminated',
            message: 'The session was terminated; its home volume is kept',
            observedGeneration: generation,
          }
        : {
            type: 'Ready',
            status: 'False',
            reason: 'Terminating',
            message: 'Removing the desktop, its service and its ingress',
            observedGeneration: generation,
          },
      now,
    );
  } else if (foreign.length > 0) {
    // Applying would take the objects over (server-side apply forces our fields onto them) and
    // terminating would delete them: neither, and the status says what to do.
    const waiting = foreign.every((f) => f.leftByEarlierSession);
    phase = waiting ? 'Pending' : 'Failed';
    refuse('ChildNotOwned', foreignChildMessage(session, foreign), !waiting);
    // The watcher follows Deployments but not Services or Ingresses: look again for the leftovers.
    if (waiting) requeueAfterMs = LEFTOVER_RECHECK_MS;
  } else if (state === 'running' && home?.action === 'refuse') {
    // Never start a desktop on a claim that names another user; one already running stops.
    phase = 'Failed';
    const snapshot = snapshotOf(observed.deployment) ?? observed.deployment?.spec?.template;
    if (observed.deployment && snapshot)
      apply.push(withSnapshot(buildDeployment(session, snapshot, 0), snapshot));
    refuse('HomeClaimNotOwned', homeClaimMessage(session, home), true);
  } else if (state === 'hibernated') {
    if (observed.deployment) {
      const podTemplate =
        snapshotOf(observed.deployment) ??
        observed.deployment.spec?.template ??
        (templateUsable
          ? renderPodTemplate(session, template, homeClaim, settings.resourceCeiling, settings.activityAgent)
          : undefined);
      if (podTemplate) apply.push(withSnapshot(buildDeployment(session, podTemplate, 0), podTemplate));
    } else if (templateUsable && !resourceRefusal) {
      // Hibernated before its desktop was ever created (e.g. hibernated while the pipeline was
      // down): the Deployment still exists, at zero replicas, as for any hibernated session. Not
      // with resources the API server would refuse: waking says why instead.
      const podTemplate = renderPodTemplate(
        session,
        template,
        homeClaim,
        settings.resourceCeiling,
        settings.activityAgent,
      );
      apply.push(withSnapshot(buildDeployment(session, podTemplate, 0), podTemplate));
    }
    if (templateUsable) {
      apply.push(...exposure(session, template, settings));
      url = sessionUrl(session, settings);
    }
    // Until its pod is gone a hibernating desktop still runs, and the phase says so.
    phase = pods.length === 0 ? 'Hibernated' : (previousPhase ?? 'Pending');
    conditions = setCondition(
      conditions,
      pods.length === 0
        ? {
            type: 'Ready',
            status: 'False',
            reason: 'Hibernated',
            message: 'Hibernated: set spec.state to running to wake it',
            observedGeneration: generation,
          }
        : {
            type: 'Ready',
            status: 'False',
            reason: 'Hibernating',
            message: 'Scaling the desktop to zero',
            observedGeneration: generation,
          },
      now,
    );
  } else if (!templateUsable) {
    // Without a usable Template nothing new can be built; what already runs is left alone.
    phase = readyPod ? 'Running' : 'Pending';
    if (readyPod) podName = readyPod.metadata?.name;
    conditions = setCondition(
      conditions,
      readyPod
        ? {
            type: 'Ready',
            status: 'True',
            reason: 'PodReady',
            message: `Pod ${podName} is ready`,
            observedGeneration: generation,
          }
        : userProblem
          ? {
              type: 'Ready',
              status: 'False',
              reason: 'UserNotAuthorizable',
              message: `No desktop is created: ${userProblem}`,
              observedGeneration: generation,
            }
          : {
              type: 'Ready',
              status: 'False',
              reason: 'WaitingForTemplate',
              message: 'Waiting for a usable template',
              observedGeneration: generation,
            },
      now,
    );
    if (userProblem && !readyPod && previousReadyReason !== 'UserNotAuthorizable') {
      const message = `No desktop is created: ${userProblem}`;
      events.push({ type: 'Warning', reason: 'UserNotAuthorizable', message });
      refused = { reason: 'user_not_authorizable', message };
    }
  } else if (resourceRefusal) {
    // Asks for more than the platform allows, or for requests above their limits: nothing starts
    // so. A Deployment left from an earlier start stays, at zero replicas, so the session starts as
    // soon as its spec is fixed.
    if (observed.deployment) {
      const podTemplate = snapshotOf(observed.deployment) ?? observed.deployment.spec?.template;
      if (podTemplate) apply.push(withSnapshot(buildDeployment(session, podTemplate, 0), podTemplate));
    }
    phase = 'Failed';
    const { reason, message } = resourceRefusal;
    const previousReady = findCondition(conditions, 'Ready');
    conditions = setCondition(
      conditions,
      { type: 'Ready', status: 'False', reason, message, observedGeneration: generation },
      now,
    );
    if (previousReady?.reason !== reason || previousReady.message !== message)
      events.push({ type: 'Warning', reason, message });
  } else {
    const wasLive = isLive(observed);
    const podTemplate =
      (wasLive ? snapshotOf(observed.deployment) : undefined) ??
      renderPodTemplate(session, template, homeClaim, settings.resourceCeiling, settings.activityAgent);
    apply.push(withSnapshot(buildDeployment(session, podTemplate, 1), podTemplate));
    apply.push(...exposure(session, template, settings));
    if (home?.action === 'mount' && home.create) apply.push(buildHomeClaim(session, settings));
    if (!observed.deployment)
      events.push({
        type: 'Normal',
        reason: 'Created',
        message: `Created the desktop from template "${template.metadata.name}"`,
      });
    url = sessionUrl(session, settings);

    if (readyPod) {
      phase = 'Running';
      waking = findCondition(conditions, 'Ready')?.reason === 'Waking';
      podName = readyPod.metadata?.name;
      conditions = setCondition(
        conditions,
        {
          type: 'Ready',
          status: 'True',
          reason: 'PodReady',
          message: `Pod ${podName} is ready`,
          observedGeneration: generation,
        },
        now,
      );
    } else {
      const starting = findCondition(conditions, 'Ready');
      const alreadyFailed = previousPhase === 'Failed' && starting?.reason === 'StartupDeadlineExceeded';
      const startedAt =
        starting && (STARTING_REASONS.has(starting.reason) || alreadyFailed)
          ? Date.parse(starting.lastTransitionTime)
          : now.getTime();
      // Remember that this start is a wake, so the Running event can say Woken.
      const startReason =
        previousPhase === 'Hibernated' || starting?.reason === 'Waking' ? 'Waking' : 'Starting';
      const deadline = startedAt + settings.startupDeadlineMs;
      const problem = pods.map(podProblem).find((p) => p !== undefined);
      if (alreadyFailed || now.getTime() >= deadline) {
        phase = 'Failed';
        const message = `The desktop did not become ready within ${Math.round(settings.startupDeadlineMs / 1000)}s: ${problem ?? 'no pod became ready'}`;
        conditions = setCondition(
          conditions,
          {
            type: 'Ready',
            status: 'False',
            reason: 'StartupDeadlineExceeded',
            message,
            observedGeneration: generation,
          },
          now,
        );
        if (previousPhase !== 'Failed') events.push({ type: 'Warning', reason: 'Failed', message });
      } else {
        phase = 'Pending';
        const message = problem ? `Starting the desktop: ${problem}` : 'Starting the desktop';
        conditions = setCondition(
          conditions,
          { type: 'Ready', status: 'False', reason: startReason, message, observedGeneration: generation },
          now,
        );
        requeueAfterMs = deadline - now.getTime() + 50;
      }
    }
  }

  // An Ingress that cannot be guarded for this user (e.g. written before sign-in was turned on)
  // must not stay reachable: it goes, whatever else is left running.
  if (userProblem && observed.ingress?.metadata?.name && !remove.some((r) => r.kind === 'Ingress'))
    remove.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      name: observed.ingress.metadata.name,
      namespace: session.metadata.namespace,
    });

  // A desktop whose pod template carries the activity agent (a fresh one, or the snapshot it
  // started with) gets its token first, so the agent finds it when the pod starts.
  const deployment = apply.find((o) => o.kind === 'Deployment') as V1Deployment | undefined;
  if (settings.activityAgent && hasActivityAgent(deployment?.spec?.template))
    apply.unshift(buildSessionActivitySecret(session, settings.activityAgent));

  if (phase !== previousPhase) {
    const event = PHASE_EVENTS[phase]?.(waking ? 'Hibernated' : previousPhase);
    if (event) events.push(event);
  }

  return {
    apply,
    remove,
    status: {
      phase,
      ...(podName ? { podName } : {}),
      ...(url ? { url } : {}),
      conditions,
      observedGeneration: generation,
    },
    events,
    ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}),
    ...(refused ? { refused } : {}),
  };
}
