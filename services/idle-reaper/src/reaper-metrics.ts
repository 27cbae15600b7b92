import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export const REPORT_SOURCES = ['nats', 'http'] as const;
export type ReportSource = (typeof REPORT_SOURCES)[number];

/**
 * What became of an activity report: accepted (stored), clamped_future (stored with its
 * timestamp clamped to the time of receipt), stale (older than what is stored: nothing to do),
 * unknown_session, malformed, unauthorized, failed (could not be stored; NATS unavailable).
 */
export const REPORT_RESULTS = [
  'accepted',
  'clamped_future',
  'stale',
  'unknown_session',
  'malformed',
  'unauthorized',
  'failed',
] as const;
export type ReportResult = (typeof REPORT_RESULTS)[number];

/** What the command executor did with a command. */
export const COMMAND_RESULTS = [
  'executed',
  'not_due',
  'gone',
  'uid_mismatch',
  'malformed',
  'refused',
  'error',
] as const;
export type CommandResult = (typeof COMMAND_RESULTS)[number];

const DECISIONS = [
  ['hibernate', 'Idle'],
  ['terminate', 'MaxDurationExceeded'],
  ['hibernate', 'User'],
  ['terminate', 'User'],
] as const;

export type ReaperMetrics = ReturnType<typeof createReaperMetrics>;

/** Every metric of the reaper, each label set initialised at zero so dashboards and alerts see it from the start. */
export function createReaperMetrics(registry: Registry) {
  const registers = [registry];
  const activityReports = new Counter({
    name: 'streamspace_reaper_activity_reports_total',
    help: 'Activity reports received, by transport (nats, http) and result.',
    labelNames: ['source', 'result'] as const,
    registers,
  });
  const malformedReports = new Counter({
    name: 'streamspace_reaper_malformed_reports_total',
    help: 'Activity reports rejected as malformed (not JSON, or not an activity report).',
    labelNames: ['source'] as const,
    registers,
  });
  const unauthorizedRequests = new Counter({
    name: 'streamspace_reaper_unauthorized_requests_total',
    help: 'POST /activity requests without a valid bearer token (nothing was recorded).',
    registers,
  });
  const futureTimestamps = new Counter({
    name: 'streamspace_reaper_future_timestamps_total',
    help: 'Activity reports whose timestamp lay beyond the allowed clock skew in the future (clamped to the time of receipt).',
    labelNames: ['source'] as const,
    registers,
  });
  for (const source of REPORT_SOURCES) {
    for (const result of REPORT_RESULTS) activityReports.labels(source, result).inc(0);
    malformedReports.labels(source).inc(0);
    futureTimestamps.labels(source).inc(0);
  }
  unauthorizedRequests.inc(0);

  const decisions = new Counter({
    name: 'streamspace_reaper_decisions_total',
    help: 'spec.state changes carried out, by action and reason.',
    labelNames: ['action', 'reason'] as const,
    registers,
  });
  for (const [action, reason] of DECISIONS) decisions.labels(action, reason).inc(0);

  const decisionDelay = new Histogram({
    name: 'streamspace_reaper_decision_delay_seconds',
    help: 'Time from a deadline to the spec.state change that carried it out.',
    labelNames: ['reason'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers,
  });
  for (const reason of ['Idle', 'MaxDurationExceeded']) decisionDelay.zero({ reason });

  const commandsIssued = new Counter({
    name: 'streamspace_reaper_commands_issued_total',
    help: 'Hibernate/terminate commands published, by action and result (published, failed).',
    labelNames: ['action', 'result'] as const,
    registers,
  });
  const commandsHandled = new Counter({
    name: 'streamspace_reaper_commands_handled_total',
    help: 'Commands taken by the executor, by result (executed, not_due, gone, uid_mismatch, malformed, refused, error).',
    labelNames: ['result'] as const,
    registers,
  });
  for (const action of ['hibernate', 'terminate'])
    for (const result of ['published', 'failed']) commandsIssued.labels(action, result).inc(0);
  for (const result of COMMAND_RESULTS) commandsHandled.labels(result).inc(0);
  const commandsRefused = new Counter({
    name: 'streamspace_reaper_commands_refused_total',
    help: 'Commands not carried out because of who issued them or where they were published (bad_subject, subject_mismatch, issuer_not_allowed).',
    labelNames: ['refusal'] as const,
    registers,
  });
  for (const refusal of ['bad_subject', 'subject_mismatch', 'issuer_not_allowed'])
    commandsRefused.labels(refusal).inc(0);

  const statusWrites = new Counter({
    name: 'streamspace_reaper_last_activity_writes_total',
    help: 'status.lastActivity writes, by result (written, gone, error).',
    labelNames: ['result'] as const,
    registers,
  });
  for (const result of ['written', 'gone', 'error']) statusWrites.labels(result).inc(0);

  const bucketWrites = new Counter({
    name: 'streamspace_reaper_activity_bucket_writes_total',
    help: 'Writes of coalesced activity to the KV bucket, by result (written, skipped: already as late, failed).',
    labelNames: ['result'] as const,
    registers,
  });
  for (const result of ['written', 'skipped', 'failed']) bucketWrites.labels(result).inc(0);

  const trackedSessions = new Gauge({
    name: 'streamspace_reaper_tracked_sessions',
    help: 'Sessions the reaper knows of (from the shared state), its own and the other replicas\'.',
    registers,
  });
  const ownedSessions = new Gauge({
    name: 'streamspace_reaper_owned_sessions',
    help: 'Sessions this replica owns: whose deadlines it keeps and decides (all of them when it runs alone).',
    registers,
  });
  const members = new Gauge({
    name: 'streamspace_reaper_members',
    help: 'Live idle-reaper replicas this replica sees (itself included); Sessions are spread over them.',
    registers,
  });
  const membershipChanges = new Counter({
    name: 'streamspace_reaper_membership_changes_total',
    help: 'Times the set of live replicas changed (a replica joined, left or expired), and Sessions were owned anew.',
    registers,
  });
  const membershipHeartbeats = new Counter({
    name: 'streamspace_reaper_membership_heartbeats_total',
    help: 'Heartbeats this replica wrote to the membership bucket (written, failed).',
    labelNames: ['result'] as const,
    registers,
  });
  for (const result of ['written', 'failed']) membershipHeartbeats.labels(result).inc(0);
  const forwardedReports = new Counter({
    name: 'streamspace_reaper_forwarded_reports_total',
    help: 'Activity reports for a Session another replica owns, passed on to it (sent), or passed on to this replica (received, malformed).',
    labelNames: ['direction'] as const,
    registers,
  });
  for (const direction of ['sent', 'received', 'malformed']) forwardedReports.labels(direction).inc(0);
  const scheduledDeadlines = new Gauge({
    name: 'streamspace_reaper_scheduled_deadlines',
    help: 'Sessions with a pending idle or maximum-duration deadline.',
    registers,
  });
  const watchRestarts = new Counter({
    name: 'streamspace_reaper_watch_restarts_total',
    help: 'Times the shared-state watch of Sessions, the activity bucket watch or the membership watch had to start over, by what (sessions, activity, membership).',
    labelNames: ['watch'] as const,
    registers,
  });
  for (const watch of ['sessions', 'activity', 'membership']) watchRestarts.labels(watch).inc(0);
  const limitsApplied = new Counter({
    name: 'streamspace_reaper_limits_applied_total',
    help: 'Sessions found asking for more than the platform allows (opt-out not allowed, a timeout of 0 or above the maximum), by setting; the limit applied instead. Counted once per Session and request.',
    labelNames: ['setting'] as const,
    registers,
  });
  for (const setting of ['optOut', 'idleTimeout', 'maxSessionDuration']) limitsApplied.labels(setting).inc(0);
  const stateRecordWrites = new Counter({
    name: 'streamspace_reaper_state_record_writes_total',
    help: "Writes of status.stateChange, the reaper's own record of a state change it made (written, or failed after retries).",
    labelNames: ['result'] as const,
    registers,
  });
  for (const result of ['written', 'failed']) stateRecordWrites.labels(result).inc(0);

  const malformedSessions = new Counter({
    name: 'streamspace_reaper_state_corrupt_entries_total',
    help: 'Entries of the shared state that could not be read as a Session (skipped until the watcher rewrites them).',
    registers,
  });
  return {
    malformedSessions,
    limitsApplied,
    stateRecordWrites,
    activityReports,
    malformedReports,
    unauthorizedRequests,
    futureTimestamps,
    decisions,
    decisionDelay,
    commandsIssued,
    commandsHandled,
    commandsRefused,
    statusWrites,
    bucketWrites,
    trackedSessions,
    ownedSessions,
    members,
    membershipChanges,
    membershipHeartbeats,
    forwardedReports,
    scheduledDeadlines,
    watchRestarts,
  };
}
