import { BUCKETS, CONSUMERS, STREAMS, subjects } from './subjects.js';

/**
 * The NATS permissions of every StreamSpace identity, derived from the names in subjects.ts: the
 * one source the docs (docs/security.md), the chart's operator output (scripts/nats-auth) and the
 * tests (a real nats-server started with exactly these users) are rendered from, so they cannot
 * drift from what the code publishes and subscribes to.
 *
 * Each service is one NATS user. Only the watcher declares streams, consumers and buckets; the
 * others bind to what exists. Only the idle reaper publishes commands, under its own issuer token.
 * Metrics only reads. Nobody may delete or purge a stream. Replies come back on an inbox prefix of
 * the identity's own, so no service can read another's JetStream API answers.
 */

export const SERVICE_IDENTITIES = ['watcher', 'reconciler', 'idle-reaper', 'metrics'] as const;
export type ServiceIdentity = (typeof SERVICE_IDENTITIES)[number];
/** A component that only reports activity (a VNC proxy, a sidecar, a browser gateway). */
export const ACTIVITY_REPORTER = 'activity-reporter';
export type NatsIdentity = ServiceIdentity | typeof ACTIVITY_REPORTER;

export interface NatsPermissions {
  publish: string[];
  subscribe: string[];
  /** May answer requests it received (the idle reaper answers activity reports sent as requests). */
  allowResponses: boolean;
}

const API = '$JS.API';
const kvStream = (bucket: string) => `KV_${bucket}`;

/** The inbox prefix a service's connection uses (`inboxPrefix`), so its permissions can name it. */
export function inboxPrefix(identity: string): string {
  return `_INBOX_${identity}`;
}

/** Read the state of a stream (its config and counts). */
const streamInfo = (stream: string) => `${API}.STREAM.INFO.${stream}`;
/** Bind to a durable consumer and pull from it, acknowledging what it handled. */
const pullFrom = (stream: string, consumer: string) => [
  `${API}.CONSUMER.INFO.${stream}.${consumer}`,
  `${API}.CONSUMER.MSG.NEXT.${stream}.${consumer}`,
  `$JS.ACK.${stream}.${consumer}.>`,
];
/**
 * Read a stream through consumers of one's own (ordered consumers, KV watches): creating one
 * changes no message, and they vanish when idle. Push consumers (KV watches and key listings)
 * answer the server's flow control; pull consumers ask for the next messages instead.
 */
const readThroughOwnConsumers = (stream: string, kind: 'pull' | 'push') => [
  `${API}.CONSUMER.CREATE.${stream}`,
  `${API}.CONSUMER.CREATE.${stream}.>`,
  // A pull consumer that stops hearing from the server (its server went away) asks whether it
  // still exists before pulling again; without this it never recovers on a NATS cluster.
  ...(kind === 'pull'
    ? [`${API}.CONSUMER.MSG.NEXT.${stream}.>`, `${API}.CONSUMER.INFO.${stream}.>`]
    : [`$JS.FC.${stream}.>`]),
];
/** Read and write the entries of a KV bucket (never its configuration). */
const useBucket = (bucket: string) => [
  streamInfo(kvStream(bucket)),
  `$KV.${bucket}.>`,
  `${API}.DIRECT.GET.${kvStream(bucket)}`,
  `${API}.DIRECT.GET.${kvStream(bucket)}.>`,
  `${API}.STREAM.MSG.GET.${kvStream(bucket)}`,
];
/** Read the entries of a KV bucket, by key and by filtered listings or watches; no writes. */
const readBucket = (bucket: string) => [
  streamInfo(kvStream(bucket)),
  `${API}.DIRECT.GET.${kvStream(bucket)}`,
  `${API}.DIRECT.GET.${kvStream(bucket)}.>`,
  `${API}.STREAM.MSG.GET.${kvStream(bucket)}`,
  ...readThroughOwnConsumers(kvStream(bucket), 'push'),
  // A key listing asks how many entries its own consumer has to deliver.
  `${API}.CONSUMER.INFO.${kvStream(bucket)}.>`,
];
/** Declare (create or update) a stream; never delete or purge it. */
const declareStream = (stream: string) => [
  streamInfo(stream),
  `${API}.STREAM.CREATE.${stream}`,
  `${API}.STREAM.UPDATE.${stream}`,
];
/** Declare (create or update) a durable consumer. */
const declareConsumer = (stream: string, consumer: string) => [
  `${API}.CONSUMER.INFO.${stream}.${consumer}`,
  `${API}.CONSUMER.CREATE.${stream}.${consumer}`,
  `${API}.CONSUMER.CREATE.${stream}.${consumer}.>`,
  `${API}.CONSUMER.DURABLE.CREATE.${stream}.${consumer}`,
];

/**
 * Every partition consumer of the work stream (their number is a setting, so the consumer token is
 * a wildcard): the work stream holds no other consumer, and only the watcher may create one.
 */
const ANY_WORK_CONSUMER = '*';
/**
 * The unpartitioned consumer of releases before partitions: the watcher deletes it on upgrade,
 * since a workqueue stream refuses the partition consumers while it exists.
 */
const LEGACY_WORK_CONSUMER = 'reconciler';

/** Every stream the platform uses, KV buckets included (the watcher declares them all). */
export const ALL_STREAMS = [
  STREAMS.events,
  STREAMS.work,
  STREAMS.deadLetter,
  STREAMS.commands,
  kvStream(BUCKETS.activity),
  kvStream(BUCKETS.state),
  kvStream(BUCKETS.reaperMembers),
] as const;

/** The subject prefix of dead letters of one kind (each service dead-letters its own kinds). */
const deadLettersOf = (kind: string) => subjects.deadLetter(kind, 'x', 'y').replace(/x\.y$/, '>');

/**
 * The permissions of one identity. `commandIssuers` names further identities (a portal, an admin
 * tool) allowed to publish commands under their own issuer token; the executor decides which
 * reasons it accepts from each (USER_COMMAND_ISSUERS).
 */
export function natsPermissions(identity: NatsIdentity | string): NatsPermissions {
  const inbox = `${inboxPrefix(identity)}.>`;
  const base = { subscribe: [inbox], allowResponses: false };
  switch (identity) {
    case 'watcher':
      return {
        ...base,
        publish: [
          `${API}.INFO`,
          subjects.eventsAll,
          subjects.workAll,
          ...ALL_STREAMS.flatMap(declareStream),
          ...declareConsumer(STREAMS.work, ANY_WORK_CONSUMER),
          `${API}.CONSUMER.DELETE.${STREAMS.work}.${LEGACY_WORK_CONSUMER}`,
          ...declareConsumer(STREAMS.commands, CONSUMERS.commandExecutor),
          // The shared state: written only by the watcher, which lists its keys to prune what is gone.
          ...useBucket(BUCKETS.state),
          ...readThroughOwnConsumers(kvStream(BUCKETS.state), 'push'),
          `${API}.CONSUMER.INFO.${kvStream(BUCKETS.state)}.>`,
        ],
      };
    case 'reconciler':
      return {
        // The workers count each other (a request every worker answers) to share the partitions.
        subscribe: [inbox, subjects.reconcilersAll],
        allowResponses: true,
        publish: [
          subjects.reconcilersAll,
          // Give a partition back: the server then pins another worker at once.
          `${API}.CONSUMER.UNPIN.${STREAMS.work}.${ANY_WORK_CONSUMER}`,
          `${API}.INFO`,
          // Requeues (a Session to look at again later) and what it gave up on.
          subjects.workAll,
          deadLettersOf('session'),
          deadLettersOf('template'),
          deadLettersOf('malformed'),
          streamInfo(STREAMS.work),
          // Every partition: each worker pulls them all, the server pins each to one worker.
          ...pullFrom(STREAMS.work, ANY_WORK_CONSUMER),
          // Reads the shared state (gets, and listings of a Session's pods); never writes it.
          ...readBucket(BUCKETS.state),
        ],
      };
    case 'idle-reaper':
      return {
        // Reports passed on by the replica that received them to the one owning their session.
        subscribe: [inbox, subjects.activityAll, subjects.reaperActivityAll],
        // Activity reports sent as requests get the outcome as their answer.
        allowResponses: true,
        publish: [
          `${API}.INFO`,
          subjects.commandsOf('idle-reaper'),
          subjects.reaperActivityAll,
          // Its heartbeat in the membership bucket, and a watch of the others'.
          ...useBucket(BUCKETS.reaperMembers),
          ...readThroughOwnConsumers(kvStream(BUCKETS.reaperMembers), 'push'),
          // A key listing asks how many entries its own consumer has to deliver.
          `${API}.CONSUMER.INFO.${kvStream(BUCKETS.reaperMembers)}.>`,
          deadLettersOf('command'),
          streamInfo(STREAMS.commands),
          ...pullFrom(STREAMS.commands, CONSUMERS.commandExecutor),
          ...useBucket(BUCKETS.activity),
          ...readThroughOwnConsumers(kvStream(BUCKETS.activity), 'push'),
          // Sessions, from the shared state.
          ...readBucket(BUCKETS.state),
        ],
      };
    case 'metrics':
      return {
        ...base,
        publish: [
          `${API}.INFO`,
          ...[STREAMS.events, STREAMS.work, STREAMS.deadLetter, STREAMS.commands].map(streamInfo),
          `${API}.CONSUMER.INFO.${STREAMS.work}.${ANY_WORK_CONSUMER}`,
          ...readThroughOwnConsumers(STREAMS.events, 'pull'),
          // Sessions and Templates for the gauges, from the shared state.
          ...readBucket(BUCKETS.state),
        ],
      };
    case ACTIVITY_REPORTER:
      // Plain publishes or requests; replies come back on the default inbox.
      return { publish: [subjects.activityAll], subscribe: ['_INBOX.>'], allowResponses: false };
    default:
      // Any other name is a command issuer (a portal, an admin tool): it may publish commands
      // under its own token and nothing else.
      if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(identity))
        throw new Error(
          `'${identity}' cannot be a NATS identity: use lower-case letters, digits and '-' (it becomes a subject token)`,
        );
      return { ...base, publish: [`${API}.INFO`, subjects.commandsOf(identity)] };
  }
}

/** One user of the nats-server configuration: a name, where its password comes from, its permissions. */
export interface NatsUser {
  identity: string;
  user: string;
  /** A literal password, or a reference such as `$WATCHER_NATS_PASSWORD` (nats-server reads it from the environment). */
  password: string;
  permissions: NatsPermissions;
}

/** The environment variable a rendered configuration reads an identity's password from. */
export function passwordVariable(identity: string): string {
  return `STREAMSPACE_NATS_${identity.toUpperCase().replaceAll('-', '_')}_PASSWORD`;
}

export function natsUsers(
  options: {
    /** Literal passwords by identity; an identity without one reads its password variable. */
    passwords?: Record<string, string>;
    /** Include the activity-reporter identity (default true). */
    activityReporter?: boolean;
    /** Further identities allowed to publish commands under their own issuer token. */
    commandIssuers?: string[];
  } = {},
): NatsUser[] {
  const identities: string[] = [
    ...SERVICE_IDENTITIES,
    ...(options.activityReporter === false ? [] : [ACTIVITY_REPORTER]),
    ...(options.commandIssuers ?? []),
  ];
  return identities.map((identity) => ({
    identity,
    user: `streamspace-${identity}`,
    password: options.passwords?.[identity] ?? `$${passwordVariable(identity)}`,
    permissions: natsPermissions(identity),
  }));
}

const quote = (value: string) => JSON.stringify(value);
const list = (values: string[]) => `[${values.map(quote).join(', ')}]`;

/**
 * The `authorization { users = [...] }` block of a nats-server configuration (also what the
 * official NATS Helm chart takes under `config.merge`). A password given as `$VARIABLE` is left
 * unquoted so nats-server reads it from its environment.
 */
export function renderNatsAuthorization(users: NatsUser[]): string {
  const lines = ['authorization {', '  users = ['];
  for (const u of users) {
    const password = /^\$[A-Z_][A-Z0-9_]*$/.test(u.password) ? u.password : quote(u.password);
    lines.push('    {');
    lines.push(`      user: ${quote(u.user)}, password: ${password}`);
    lines.push('      permissions: {');
    lines.push(`        publish: { allow: ${list(u.permissions.publish)} }`);
    lines.push(`        subscribe: { allow: ${list(u.permissions.subscribe)} }`);
    if (u.permissions.allowResponses) lines.push('        allow_responses: true');
    lines.push('      }');
    lines.push('    }');
  }
  lines.push('  ]', '}');
  return `${lines.join('\n')}\n`;
}
