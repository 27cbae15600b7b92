import {
  ANNOTATIONS,
  type ChangeEvent,
  changeEventSchema,
  isoTime,
  LABELS,
  type ObservedKind,
  podStateKey,
  type StateKind,
  stateKey,
  subjects,
  type WorkItem,
  type WorkKind,
  workItemSchema,
} from '@streamspace/shared';
import type { CacheChange, CachedIdentity, ChangeType, KubeObject } from '@streamspace/kube';
import { type ChildEntry, type ChildKind, NO_DIGEST, podDigest } from './child-entry.js';

/**
 * What one observed change means on NATS, as plain data: the change event for subscribers and
 * the work items for the reconciler. No I/O here, so every routing rule is a unit test.
 *
 * Message ids make double publishing harmless: two watchers that see the same change build the
 * same ids, and JetStream keeps only the first within the stream's duplicate window.
 */
export type Publication =
  | {
      stream: 'events';
      subject: string;
      msgID: string;
      body: ChangeEventHeader;
      /** The event's `object`: the cache's JSON of it, spliced into the message as it is (publicationData). */
      object: string;
    }
  | { stream: 'work'; subject: string; msgID: string; body: WorkItem };

/** A change event without its object, which a publication carries as JSON beside it. */
export type ChangeEventHeader = Omit<ChangeEvent, 'object'>;
const changeEventHeaderSchema = changeEventSchema.omit({ object: true });

/**
 * The message a publication sends. An event's object is already JSON (the string the watcher's
 * cache holds and the shared state stores): it is spliced in, not parsed and serialised again.
 */
export function publicationData(publication: Publication): string {
  const body = JSON.stringify(publication.body);
  if (publication.stream === 'work') return body;
  return `${body.slice(0, -1)},"object":${publication.object}}`;
}

export type EventType = ChangeEvent['type'];

export const OBSERVED_KINDS: readonly ObservedKind[] = ['session', 'template', 'deployment', 'pod'];
/**
 * The kinds published as change events unless EVENT_KINDS says otherwise: the custom resources.
 * A Deployment's and a Pod's changes were 4 of the ~17 messages the watcher sent per user change
 * in the 1,000-Session bench, each with the object's whole JSON, which no StreamSpace component
 * reads from the events (the reconciler reads children from the shared state). Every change of
 * every kind is in the shared-state bucket anyway, whose key-value watch is a change feed too.
 */
export const DEFAULT_EVENT_KINDS: readonly ObservedKind[] = ['session', 'template'];
export const EVENT_TYPES: readonly EventType[] = ['added', 'modified', 'deleted', 'resync'];
export const RESYNC_REASON = 'resync';

/** Every reason a work item of each kind can carry (so metrics can start them at zero). */
export function workReasons(kind: WorkKind): string[] {
  const changeTypes: ChangeType[] = ['added', 'modified', 'deleted'];
  const triggers: StateKind[] =
    kind === 'session'
      ? ['session', 'template', 'deployment', 'pod', 'service', 'ingress', 'networkpolicy']
      : ['template'];
  return [
    ...triggers.flatMap((trigger) => changeTypes.map((type) => workReason(trigger, type))),
    RESYNC_REASON,
  ];
}

export function workReason(trigger: StateKind, type: ChangeType): string {
  return `${trigger}-${type}`;
}

export interface RoutedChange {
  publications: Publication[];
  /** Messages that could not be built because the object breaks the message schema. */
  invalid: string[];
}

export interface RoutingContext {
  /** Names of the Sessions in `namespace` whose spec.template is `template`. */
  sessionsUsing(namespace: string, template: string): readonly string[];
  /**
   * The replicas the reconciler gives a Session's Deployment for the Session's spec.state as the
   * watcher last saw it (1 running, 0 hibernated), or undefined when it cannot tell.
   */
  desiredReplicas?(namespace: string, session: string): number | undefined;
  observedAt: Date;
  /** How many partitions work items are spread over (WORK_PARTITIONS); the subject names the key's. */
  partitions: number;
  /** The kinds whose changes are published as change events (EVENT_KINDS); the others are only stored. */
  eventKinds: ReadonlySet<ObservedKind>;
}

function targetKey(kind: WorkKind, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

function eventPublication(
  kind: ObservedKind,
  type: EventType,
  object: KubeObject,
  observedAt: Date,
  msgID: string,
): Publication {
  return {
    stream: 'events',
    subject: subjects.event(kind, object.namespace, object.name),
    msgID,
    body: {
      type,
      kind,
      namespace: object.namespace,
      name: object.name,
      uid: object.uid,
      resourceVersion: object.resourceVersion,
      ...(object.generation !== undefined ? { generation: object.generation } : {}),
      observedAt: isoTime(observedAt),
    },
    object: object.json,
  };
}

function workPublication(
  kind: WorkKind,
  namespace: string,
  name: string,
  reason: string,
  msgIDPrefix: string,
  partitions: number,
): Publication {
  return {
    stream: 'work',
    subject: subjects.work(kind, namespace, name, partitions),
    msgID: `${msgIDPrefix}>${targetKey(kind, namespace, name)}`,
    body: { kind, namespace, name, reason },
  };
}

/**
 * Whether a Template change can matter to the Sessions that use it. Status-only updates (the
 * reconciler writing whether the template is valid) leave metadata.generation alone; fanning
 * those out would make every status write re-reconcile every Session of the template.
 */
/** A new generation: the spec changed (status and metadata writes leave generation alone). */
function specChanged(change: CacheChange<CachedIdentity>): boolean {
  if (change.type !== 'modified' || !change.previous) return true;
  const { generation } = change.object;
  return generation === undefined || generation !== change.previous.generation;
}

/** The summary of a pod that does not count for its Session: the same as no pod at all. */
export const NO_POD_SUMMARY = 'none';

/**
 * What of a Pod its Session's status is made of (session-plan.ts): whether the pod counts at all
 * (one going away, Succeeded or Failed does not), whether it is Ready, and the problems the status
 * would name (a container waiting for a reason, one that exited non-zero, a pod that cannot be
 * scheduled). A pod that counts but is neither ready nor in trouble says what no pod says: the
 * Session is starting either way. Everything else (phase Pending → Running, IPs, timestamps,
 * restarts' bookkeeping, a terminating pod's last updates) is not worth a reconcile.
 */
export function podSummary(raw: Record<string, unknown> | undefined): string {
  if (!raw) return NO_POD_SUMMARY;
  const metadata = raw.metadata as { deletionTimestamp?: string } | undefined;
  const status = (raw.status ?? {}) as {
    phase?: string;
    conditions?: { type?: string; status?: string; reason?: string }[];
    containerStatuses?: {
      state?: { waiting?: { reason?: string }; terminated?: { exitCode?: number } };
      lastState?: { terminated?: { exitCode?: number } };
    }[];
  };
  if (metadata?.deletionTimestamp || status.phase === 'Succeeded' || status.phase === 'Failed')
    return NO_POD_SUMMARY;
  const ready = status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  const unschedulable = status.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  const problems = (status.containerStatuses ?? [])
    .map((c) => {
      const exitCode = c.lastState?.terminated?.exitCode ?? c.state?.terminated?.exitCode;
      if (exitCode !== undefined && exitCode !== 0) return `exit ${exitCode}`;
      const waiting = c.state?.waiting?.reason;
      // Being created is what every starting container does: no problem to report.
      return waiting && waiting !== 'ContainerCreating' && waiting !== 'PodInitializing' ? waiting : undefined;
    })
    .filter((p) => p !== undefined);
  if (unschedulable) problems.push(`unschedulable ${unschedulable.reason ?? ''}`);
  if (!ready && problems.length === 0) return NO_POD_SUMMARY;
  return JSON.stringify([ready, problems]);
}

/**
 * Does this change of a child matter to its Session's reconcile? Most child changes are the echo
 * of the reconciler's own writes, which would only cost a reconcile that changes nothing:
 * - a child appearing is its creation by the reconciler (a foreign one under a child's name is
 *   seen by the next reconcile of its Session, which reads it from the shared state);
 * - a Deployment whose replicas changed to what its Session's spec.state asks for is a hibernation
 *   or a wake the reconciler just applied (`desiredReplicas`); other spec changes (a scale by hand,
 *   an edited pod template) are drift worth a reconcile; its status is not, since a Session's
 *   phase follows its pods;
 * - a Pod matters when what its Session's status is made of changed (podSummary): it appears
 *   ready or in trouble, becomes ready, starts terminating; not when a pod already terminating
 *   finally goes (it stopped counting when it started to);
 * - a deletion of any other child always matters (a child to put back).
 * What was held before is a ChildEntry (child-entry.ts): a digest of these, not the object.
 */
export function childChangeMatters(
  kind: ChildKind,
  change: CacheChange<ChildEntry>,
  desiredReplicas?: number,
): boolean {
  if (kind === 'pod') {
    const before =
      change.type === 'added' ? NO_DIGEST : (change.previous?.digest ?? podDigest(change.object.raw));
    const after =
      change.type === 'deleted' ? NO_DIGEST : (change.current?.digest ?? podDigest(change.object.raw));
    return before !== after;
  }
  if (change.type === 'deleted') return true;
  if (change.type === 'added') return false;
  const { previous, current } = change;
  if (!previous || !current) return true;
  switch (kind) {
    case 'deployment': {
      if (!specChanged(change)) return false;
      const echo = current.replicas !== previous.replicas && current.replicas === desiredReplicas;
      // An echo changes only replicas; anything else in the spec changed too is drift.
      return !(echo && current.digest === previous.digest);
    }
    case 'pvc':
      return false;
    default:
      // By generation where the kind has one, else by content (a Service has none).
      if (change.object.generation !== undefined) return specChanged(change);
      return current.digest !== previous.digest;
  }
}

/**
 * The key of an object in the shared state (shared-state.ts), or undefined for a Pod that belongs
 * to no Session (it carries the managed-by label but no session label: nothing reads it).
 */
export function stateEntryKey(kind: StateKind, object: KubeObject): string | undefined {
  return keyUnder(kind, object.namespace, object.name, () => owningSession(object));
}

/** A Pod's entry is under its Session (`session()`, asked only for a Pod); every other kind's under its own name. */
function keyUnder(
  kind: StateKind,
  namespace: string,
  name: string,
  session: () => string | undefined,
): string | undefined {
  if (kind !== 'pod') return stateKey(kind, namespace, name);
  const owner = session();
  return owner ? podStateKey(namespace, owner, name) : undefined;
}

/** Whether changes of `kind` are published as change events (the others are only stored). */
function publishesEvents(kind: StateKind, eventKinds: ReadonlySet<ObservedKind>): kind is ObservedKind {
  return eventKinds.has(kind as ObservedKind);
}

/** The key of a child the watcher holds as a ChildEntry (see stateEntryKey). */
export function childStateKey(kind: ChildKind, entry: ChildEntry): string | undefined {
  return keyUnder(kind, entry.namespace, entry.name, () => entry.session);
}

/**
 * The Session a child belongs to, from the label the reconciler puts on everything it creates, or
 * from the annotation that holds the full name where the label had to hold a shortened one.
 */
export function owningSession(object: KubeObject): string | undefined {
  const metadata = object.raw.metadata as { annotations?: Record<string, unknown> } | undefined;
  const annotated = metadata?.annotations?.[ANNOTATIONS.session];
  if (typeof annotated === 'string' && annotated.length > 0) return annotated;
  const name = object.labels[LABELS.session];
  return name ? name : undefined;
}

function validated(publications: Publication[]): RoutedChange {
  const valid: Publication[] = [];
  const invalid: string[] = [];
  for (const publication of publications) {
    const result =
      publication.stream === 'events'
        ? changeEventHeaderSchema.safeParse(publication.body)
        : workItemSchema.safeParse(publication.body);
    if (result.success) valid.push(publication);
    else {
      const problems = result.error.issues
        .map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`)
        .join('; ');
      invalid.push(`${publication.stream} message for ${publication.subject}: ${problems}`);
    }
  }
  return { publications: valid, invalid };
}

/** The messages one observed change of one kind produces. */
export function routeChange(
  kind: StateKind,
  change: CacheChange<CachedIdentity>,
  context: RoutingContext,
): RoutedChange {
  const { object, type } = change;
  const publications: Publication[] = publishesEvents(kind, context.eventKinds)
    ? [
        eventPublication(
          kind,
          type,
          object,
          context.observedAt,
          `${object.uid}:${object.resourceVersion}:${type}`,
        ),
      ]
    : [];
  // The same state seen through a list by one watcher and through a watch by the other is one
  // trigger; a deletion is a different one even when a relist reports it at the last known version.
  const workPrefix = `${object.uid}:${object.resourceVersion}:${type === 'deleted' ? 'deleted' : 'present'}`;
  const reason = workReason(kind, type);
  switch (kind) {
    case 'session':
      // Status writes (the reconciler's own, the idle reaper's lastActivity) need no reconcile:
      // what the reconciler acts on is the spec, and its children's changes come by their own watch.
      if (specChanged(change))
        publications.push(workPublication('session', object.namespace, object.name, reason, workPrefix, context.partitions));
      break;
    case 'template':
      publications.push(workPublication('template', object.namespace, object.name, reason, workPrefix, context.partitions));
      if (specChanged(change)) {
        for (const session of context.sessionsUsing(object.namespace, object.name)) {
          publications.push(workPublication('session', object.namespace, session, reason, workPrefix, context.partitions));
        }
      }
      break;
    default: {
      const childChange = change as CacheChange<ChildEntry>;
      const session = childChange.current?.session ?? owningSession(object);
      // Only a Deployment's change asks (it reads the cached Session, which is held as JSON).
      const desired =
        kind === 'deployment' && session ? context.desiredReplicas?.(object.namespace, session) : undefined;
      if (session && childChangeMatters(kind, childChange, desired))
        publications.push(
          workPublication('session', object.namespace, session, reason, workPrefix, context.partitions),
        );
      break;
    }
  }
  return validated(publications);
}

/**
 * The messages of a resync: every Session and Template announced again, as a `resync` event
 * and a work item. `round` names the resync; two watchers resyncing in the same round build the
 * same ids, so the stream keeps one copy.
 */
export function routeResync(
  kind: WorkKind,
  objects: Iterable<KubeObject>,
  round: string,
  observedAt: Date,
  partitions: number,
): RoutedChange {
  const publications: Publication[] = [];
  for (const object of objects) {
    const prefix = `${object.uid}:${object.resourceVersion}:resync:${round}`;
    publications.push(eventPublication(kind, 'resync', object, observedAt, prefix));
    publications.push(workPublication(kind, object.namespace, object.name, RESYNC_REASON, prefix, partitions));
  }
  return validated(publications);
}
