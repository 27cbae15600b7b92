import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  type ActivityReport,
  activityReportSchema,
  decodeMessage,
  type Logger,
  fromSubjectToken,
  isoTime,
  quickActivityReport,
  subjects,
} from '@streamspace/shared';
import type { ReaperMetrics, ReportResult, ReportSource } from './reaper-metrics.js';
import { sessionKey } from './session-facts.js';

/** The activity time to store, by the reaper's clock: a report's own time, never later than its receipt. */
export function activityTime(
  report: ActivityReport,
  receivedAt: number,
  maxSkewMs: number,
): { at: number; clampedFuture: boolean } {
  const claimed = report.at === undefined ? receivedAt : Date.parse(report.at);
  if (!Number.isFinite(claimed) || claimed <= receivedAt)
    return { at: Number.isFinite(claimed) ? claimed : receivedAt, clampedFuture: false };
  // Ahead of our clock: a little is ordinary skew; more is a bad clock or a bad client. Either
  // way the activity cannot have happened after we heard of it.
  return { at: receivedAt, clampedFuture: claimed - receivedAt > maxSkewMs };
}

const SUBJECT_PREFIX = subjects.activity('x', 'y').replace(/x\.y$/, '');
const utf8 = new TextDecoder();

/**
 * Reads an activity message: its subject names the session (`streamspace.activity.<ns>.<session>`);
 * the body is an activity report, or empty (the subject says everything). A body that names a
 * different session than its subject is refused, so a client cannot report for one session on
 * another's subject.
 */
export function decodeNatsReport(
  subject: string,
  data: Uint8Array,
  /** The names are a Session's the caller tracks (so valid): the common report skips the schema. */
  trusted?: (namespace: string, session: string) => boolean,
): { ok: true; value: ActivityReport } | { ok: false; error: string } {
  const tokens = subject.startsWith(SUBJECT_PREFIX) ? subject.slice(SUBJECT_PREFIX.length).split('.') : [];
  if (tokens.length !== 2 || !tokens[0] || !tokens[1]) {
    return { ok: false, error: `subject ${subject} is not ${SUBJECT_PREFIX}<namespace>.<session>` };
  }
  const [namespace, session] = (tokens as [string, string]).map(fromSubjectToken) as [string, string];
  if (trusted?.(namespace, session)) {
    if (data.length === 0) return { ok: true, value: { namespace, session } };
    let raw: unknown;
    try {
      raw = JSON.parse(utf8.decode(data));
    } catch {
      raw = undefined;
    }
    const quick = quickActivityReport(raw, namespace, session);
    if (quick) return { ok: true, value: quick };
  }
  if (data.length === 0) {
    const parsed = activityReportSchema.safeParse({ namespace, session });
    return parsed.success
      ? { ok: true, value: parsed.data }
      : { ok: false, error: `subject ${subject} does not name a session` };
  }
  const decoded = decodeMessage(activityReportSchema, data);
  if (!decoded.ok) return decoded;
  if (decoded.value.namespace !== namespace || decoded.value.session !== session) {
    return {
      ok: false,
      error: `the report names ${decoded.value.namespace}/${decoded.value.session} but was published on the subject of ${namespace}/${session}`,
    };
  }
  return decoded;
}

export interface IntakeOptions {
  log: Logger;
  metrics: ReaperMetrics;
  maxSkewMs: number;
  /** true/false once the Session list is known; undefined before (reports are then kept, to be safe). */
  isKnownSession(key: string): boolean | undefined;
  /** Stores and waits (HTTP, NATS requests): the answer says whether it was stored. */
  record(key: string, at: number): Promise<boolean>;
  /** Queues without waiting (plain NATS publishes): true when the time moved forward. */
  offer(key: string, at: number): boolean;
  now?: () => number;
}

export interface IntakeOutcome {
  result: ReportResult;
  at?: number;
  error?: string;
}

/**
 * Where every activity report goes, whichever way it came: timestamp clamped, session checked,
 * stored (monotonically) in the activity bucket, counted.
 */
export class ActivityIntake {
  private readonly now: () => number;
  private readonly reportCounters = new Map<string, { inc(): void }>();

  constructor(private readonly options: IntakeOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * `wait`: answer only once the report is stored (someone reads the answer). Plain publishes do
   * not wait (see acceptQueued).
   */
  async accept(report: ActivityReport, source: ReportSource, wait = true): Promise<IntakeOutcome> {
    if (!wait) return this.acceptQueued(report, source);
    const checked = this.check(report, source);
    if ('result' in checked) return checked;
    try {
      return this.count(source, checked, await this.options.record(checked.key, checked.at));
    } catch (error) {
      return this.failed(source, checked.key, error);
    }
  }

  /**
   * Synchronous, allocation-light path for fire-and-forget reports: the time is queued for the
   * bucket, coalesced per session, so a flood of reports neither piles up promises nor writes.
   */
  acceptQueued(report: ActivityReport, source: ReportSource): IntakeOutcome {
    const checked = this.check(report, source);
    if ('result' in checked) return checked;
    try {
      return this.count(source, checked, this.options.offer(checked.key, checked.at));
    } catch (error) {
      return this.failed(source, checked.key, error);
    }
  }

  private check(
    report: ActivityReport,
    source: ReportSource,
  ): IntakeOutcome | { key: string; at: number; clampedFuture: boolean } {
    const { metrics, log } = this.options;
    const key = sessionKey(report.namespace, report.session);
    if (this.options.isKnownSession(key) === false) {
      metrics.activityReports.labels(source, 'unknown_session').inc();
      log.debug(
        { namespace: report.namespace, session: report.session, source },
        'activity report for an unknown session ignored',
      );
      return {
        result: 'unknown_session',
        error: `no Session ${report.namespace}/${report.session} is known`,
      };
    }
    const { at, clampedFuture } = activityTime(report, this.now(), this.options.maxSkewMs);
    if (clampedFuture) {
      metrics.futureTimestamps.labels(source).inc();
      log.warn(
        { namespace: report.namespace, session: report.session, claimed: report.at, source },
        'activity report from the future; clamped to the time of receipt',
      );
    }
    return { key, at, clampedFuture };
  }

  private count(
    source: ReportSource,
    checked: { at: number; clampedFuture: boolean },
    moved: boolean,
  ): IntakeOutcome {
    const result: ReportResult = checked.clampedFuture ? 'clamped_future' : moved ? 'accepted' : 'stale';
    this.reportCounter(source, result).inc();
    return { result, at: checked.at };
  }

  /**
   * The counter child of one label pair, looked up once: prom-client's `labels()` hashes the
   * labels on every call, a cost per report that showed in lite mode (≈5 µs of ≈80).
   */
  private reportCounter(source: ReportSource, result: ReportResult): { inc(): void } {
    const id = `${source}|${result}`;
    let child = this.reportCounters.get(id);
    if (!child) {
      child = this.options.metrics.activityReports.labels(source, result);
      this.reportCounters.set(id, child);
    }
    return child;
  }

  private failed(source: ReportSource, key: string, error: unknown): IntakeOutcome {
    this.options.metrics.activityReports.labels(source, 'failed').inc();
    this.options.log.warn(
      { err: (error as Error).message, key, source },
      'could not store an activity report',
    );
    return { result: 'failed', error: `could not store the report: ${(error as Error).message}` };
  }

  /** A malformed report, counted and logged (never fatal). */
  malformed(source: ReportSource, error: string, detail: Record<string, unknown> = {}): void {
    this.options.metrics.malformedReports.labels(source).inc();
    this.options.metrics.activityReports.labels(source, 'malformed').inc();
    this.options.log.warn({ ...detail, source, err: error }, 'malformed activity report rejected');
  }

  /**
   * Subscribes to `streamspace.activity.>` in a queue group, so each report is handled by one
   * replica (the bucket tells the others). A report sent as a request gets the outcome as reply.
   */
  subscribe(nc: NatsConnection, queue = 'streamspace-idle-reaper'): Subscription {
    return nc.subscribe(subjects.activityAll, {
      queue,
      callback: (error, message) => {
        if (error) {
          this.options.log.warn({ err: error.message }, 'activity subscription error');
          return;
        }
        if (message.reply) void this.onRequest(message);
        else this.onPublish(message);
      },
    });
  }

  /** A Session this replica tracks: its names are valid (see decodeNatsReport). */
  private readonly tracked = (namespace: string, session: string): boolean =>
    this.options.isKnownSession(sessionKey(namespace, session)) === true;

  private onPublish(message: Msg): void {
    const decoded = decodeNatsReport(message.subject, message.data, this.tracked);
    if (decoded.ok) this.acceptQueued(decoded.value, 'nats');
    else this.malformed('nats', decoded.error, { subject: message.subject });
  }

  /** A report sent as a request: stored before the answer, which carries the outcome. */
  private async onRequest(message: Msg): Promise<void> {
    const decoded = decodeNatsReport(message.subject, message.data, this.tracked);
    let outcome: IntakeOutcome;
    if (!decoded.ok) {
      this.malformed('nats', decoded.error, { subject: message.subject });
      outcome = { result: 'malformed', error: decoded.error };
    } else {
      outcome = await this.accept(decoded.value, 'nats');
    }
    try {
      message.respond(
        JSON.stringify({
          result: outcome.result,
          ...(outcome.at !== undefined ? { at: isoTime(outcome.at) } : {}),
          ...(outcome.error ? { error: outcome.error } : {}),
        }),
      );
    } catch {
      // The requester is gone or NATS is down; the outcome is counted either way.
    }
  }
}
