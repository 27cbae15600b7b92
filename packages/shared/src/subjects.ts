import { DEFAULT_WORK_PARTITIONS, partitionOf } from './work-partitions.js';

/**
 * Names of everything the services share on NATS. Subjects put kind and namespace before the
 * name so a subscriber can filter with wildcards (e.g. `streamspace.events.session.team-a.>`).
 * Kubernetes names never contain '*' or '>', but Session and Template names are DNS-1123
 * subdomains and may contain '.'; `subjectToken` escapes those dots (to '_', which no such name has).
 */
export const STREAMS = {
  events: 'STREAMSPACE_EVENTS',
  work: 'STREAMSPACE_WORK',
  deadLetter: 'STREAMSPACE_DEADLETTER',
  commands: 'STREAMSPACE_COMMANDS',
} as const;

/** The reconcilers' consumers are one per work partition: see workConsumerName in work-partitions.ts. */
export const CONSUMERS = {
  commandExecutor: 'command-executor',
} as const;

export const BUCKETS = {
  /** Latest activity per session (idle-reaper). */
  activity: 'streamspace-activity',
  /** Every object the platform reads, as the watcher last saw it (shared-state.ts). */
  state: 'streamspace-state',
  /** The live idle-reaper replicas, one key each, kept alive by heartbeats (reaper-membership.ts). */
  reaperMembers: 'streamspace-reaper-members',
} as const;

export type ObservedKind = 'session' | 'template' | 'deployment' | 'pod';
/** What a work item asks to reconcile. */
export const WORK_KINDS = ['session', 'template'] as const;
export type WorkKind = (typeof WORK_KINDS)[number];

/** Dots would split one Kubernetes name into several subject tokens. */
export function subjectToken(value: string): string {
  return value.replaceAll('.', '_');
}

/** The name a subject token stands for (the inverse of `subjectToken`). */
export function fromSubjectToken(token: string): string {
  return token.replaceAll('_', '.');
}

export const subjects = {
  eventsAll: 'streamspace.events.>',
  event: (kind: ObservedKind, namespace: string, name: string) =>
    `streamspace.events.${kind}.${subjectToken(namespace)}.${subjectToken(name)}`,
  workAll: 'streamspace.work.>',
  /**
   * A work item names its partition first (see work-partitions.ts), so each partition consumer
   * filters on `streamspace.work.<partition>.>`; `partitions` must be what the work stream records.
   */
  work: (kind: WorkKind, namespace: string, name: string, partitions: number = DEFAULT_WORK_PARTITIONS) =>
    `streamspace.work.${partitionOf(objectKey(kind, namespace, name), partitions)}.${kind}.${subjectToken(namespace)}.${subjectToken(name)}`,
  workPartition: (partition: number) => `streamspace.work.${partition}.>`,
  /** Core NATS (no stream): a reconciler says it joined, so the others can give it partitions. */
  reconcilersHello: 'streamspace.reconcilers.hello',
  /** Core NATS request: every reconciler answers with its id, so one can count the workers. */
  reconcilersCensus: 'streamspace.reconcilers.census',
  reconcilersAll: 'streamspace.reconcilers.>',
  deadLetterAll: 'streamspace.deadletter.>',
  deadLetter: (kind: string, namespace: string, name: string) =>
    `streamspace.deadletter.${kind}.${subjectToken(namespace)}.${subjectToken(name)}`,
  commandsAll: 'streamspace.commands.>',
  /**
   * A command names who issued it before the Session it is about: NATS permissions let each
   * identity publish under its own issuer token only, so the executor can trust the subject (never
   * the payload) to say who sent a command. One subject per issuer and Session, and the commands
   * stream keeps one message per subject: at most one pending command per Session and issuer.
   */
  command: (issuer: string, namespace: string, name: string) =>
    `streamspace.commands.${subjectToken(issuer)}.${subjectToken(namespace)}.${subjectToken(name)}`,
  /** Everything one issuer may publish (the pattern its NATS permissions allow). */
  commandsOf: (issuer: string) => `streamspace.commands.${subjectToken(issuer)}.>`,
  activityAll: 'streamspace.activity.>',
  activity: (namespace: string, name: string) =>
    `streamspace.activity.${subjectToken(namespace)}.${subjectToken(name)}`,
  /**
   * Core NATS, reaper to reaper: a report received by a replica that does not own its session,
   * passed on to the one that does (its member id). A prefix of its own, so only the reapers'
   * NATS user may publish there, never an activity reporter.
   */
  reaperActivityAll: 'streamspace.reaper.activity.>',
  reaperActivity: (member: string) => `streamspace.reaper.activity.${subjectToken(member)}`,
} as const;

/** The key of a work item (its partition hash) or an activity entry: KV keys allow '.', '-', '_', '=', '/' and alphanumerics. */
export function objectKey(kind: string, namespace: string, name: string): string {
  return `${kind}.${namespace}.${subjectToken(name)}`;
}
