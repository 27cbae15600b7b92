import type { Consumer, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import {
  ANNOTATIONS,
  backoffDelay,
  type DeadLetter,
  decodeMessage,
  isoTime,
  type Logger,
  parseCommandSubject,
  PullConsumerLoop,
  type SessionCommand,
  sessionCommandSchema,
  subjects,
} from '@streamspace/shared';
import { authorizeCommand, type CommandPolicy, commandPolicy } from './command-authorization.js';
import type { CommandResult, ReaperMetrics } from './reaper-metrics.js';
import { computeDeadlines, describeDeadline, type ReaperDefaults } from './session-deadlines.js';
import { REAPER_IDENTITY, readTrackedSession, sessionKey, type TrackedSession } from './session-facts.js';
import { statusCode } from '@streamspace/kube';
import type { SessionWriter, StateChangeRecord } from './session-writer.js';

/** A command that has failed this often is given up; the reaper issues it again if it still holds. */
const MAX_DELIVERIES = 10;

/**
 * Publishes a command under the reaper's own issuer token (the only one its NATS user may use);
 * JetStream drops a second one with the same id within the duplicate window.
 */
export async function publishCommand(
  js: JetStreamClient,
  command: SessionCommand,
  msgId: string,
): Promise<void> {
  await js.publish(
    subjects.command(REAPER_IDENTITY, command.namespace, command.name),
    JSON.stringify(command),
    {
      msgID: msgId,
    },
  );
}

export interface CommandExecutorOptions {
  consumer: Consumer;
  writer: SessionWriter;
  defaults: ReaperDefaults;
  /** The latest activity, read from the bucket itself (not a possibly lagging watch). */
  freshActivity(key: string): Promise<number | undefined>;
  /** When this process saw the Session woken, if it did. */
  wokenAt(key: string): number | undefined;
  /** No idle decision before this moment (the restart grace; see SessionObservations.idleNotBefore). */
  idleNotBefore?: number;
  /**
   * The Session as this process last saw it (its watch), to decide without a GET first: the
   * change carries that resourceVersion, so if the copy is stale the API server answers 409 and
   * the executor reads the Session and decides again.
   */
  cached?(key: string): TrackedSession | undefined;
  metrics: ReaperMetrics;
  log: Logger;
  concurrency: number;
  /** Who may issue which reasons (default: the reaper its deadline reasons, nobody User). */
  policy?: CommandPolicy;
  /** Keeps a refused command for a person to look at (the dead-letter stream). */
  deadLetter?(subject: string, letter: DeadLetter): Promise<void>;
  now?: () => number;
}

/**
 * Carries out hibernate/terminate commands by changing spec.state. A command is a trigger, not
 * the truth: the executor decides again on the Session (its watch's copy, or a fresh read when
 * that copy is missing or stale) and the activity bucket read afresh, and acts only if the
 * decision still holds (same uid, still running, still idle or too old). The change is a merge
 * patch conditioned on the resourceVersion it decided on, so a wake or a report that lands in
 * between turns into a 409, a fresh read and a fresh decision, and two executors can never both
 * change one Session: only the one whose patch succeeds records the Event.
 */
export class CommandExecutor {
  private readonly events = new Set<Promise<void>>();
  private readonly loop: PullConsumerLoop;
  private readonly now: () => number;
  private readonly policy: CommandPolicy;

  constructor(private readonly options: CommandExecutorOptions) {
    this.now = options.now ?? Date.now;
    this.policy = options.policy ?? commandPolicy();
    this.loop = new PullConsumerLoop({
      consumer: options.consumer,
      concurrency: options.concurrency,
      log: options.log,
      name: 'command consumer',
      handle: (message) => this.handle(message),
    });
  }

  async run(): Promise<void> {
    await this.loop.run();
  }

  async stop(timeoutMs = 15_000): Promise<void> {
    await this.loop.stop(timeoutMs, this.events);
  }

  private async handle(message: JsMsg): Promise<void> {
    const { log, metrics } = this.options;
    const decoded = decodeMessage(sessionCommandSchema, message.data);
    if (!decoded.ok) {
      metrics.commandsHandled.labels('malformed').inc();
      log.warn({ subject: message.subject, err: decoded.error }, 'malformed command dropped');
      message.term(`malformed command: ${decoded.error}`.slice(0, 200));
      return;
    }
    const command = decoded.value;
    const authorized = authorizeCommand(message.subject, command, this.policy);
    if (!authorized.ok) {
      await this.refuse(message, command, authorized.refusal, authorized.message);
      return;
    }
    try {
      const result = await this.execute(command, authorized.issuer);
      metrics.commandsHandled.labels(result).inc();
      message.ack();
    } catch (error) {
      metrics.commandsHandled.labels('error').inc();
      const attempts = message.info.deliveryCount;
      if (attempts >= MAX_DELIVERIES) {
        log.error(
          { err: (error as Error).message, namespace: command.namespace, name: command.name, attempts },
          'command failed too often; dropping it (the reaper issues it again if it still holds)',
        );
        message.term('failed too often');
        return;
      }
      const delay = backoffDelay(attempts - 1, { initialMs: 500, maxMs: 15_000 });
      log.warn(
        {
          err: (error as Error).message,
          namespace: command.namespace,
          name: command.name,
          attempts,
          retryInMs: delay,
        },
        'command failed; will retry',
      );
      message.nak(delay);
    }
  }

  private track(work: Promise<void>): void {
    const tracked = work.finally(() => this.events.delete(tracked));
    this.events.add(tracked);
  }

  /**
   * status.stateChange, the copy of the state-changed-* annotations that users cannot write and
   * the reaper decides on. A few quick attempts: if all fail, the in-memory record of the wake
   * (wokenAt) still protects this process's decisions; the worst case after a restart is an
   * early hibernation of a session woken before its pod had stopped.
   */
  private async recordStateChange(namespace: string, name: string, record: StateChangeRecord): Promise<void> {
    const { writer, log, metrics } = this.options;
    for (let attempt = 0; ; attempt++) {
      try {
        await writer.applyStateChange(namespace, name, record);
        metrics.stateRecordWrites.labels('written').inc();
        return;
      } catch (error) {
        const code = statusCode(error);
        if (code === 404) return;
        if (attempt >= 2) {
          metrics.stateRecordWrites.labels('failed').inc();
          log.warn(
            { err: (error as Error).message, namespace, name },
            'could not record status.stateChange (the state change stands)',
          );
          return;
        }
        await new Promise((resolve) =>
          setTimeout(resolve, backoffDelay(attempt, { initialMs: 200, maxMs: 2_000 })),
        );
      }
    }
  }

  private async recordLastActivity(namespace: string, name: string, at: number): Promise<void> {
    const { writer, log, metrics } = this.options;
    try {
      await writer.applyLastActivity(namespace, name, at);
      metrics.statusWrites.labels('written').inc();
    } catch (error) {
      const code = statusCode(error);
      metrics.statusWrites.labels(code === 404 ? 'gone' : 'error').inc();
      if (code !== 404)
        log.warn(
          { err: (error as Error).message, namespace, name },
          'could not record status.lastActivity with the decision (the state change stands)',
        );
    }
  }

  /**
   * A command its issuer may not give, or published on another Session's subject: logged,
   * counted, kept as a dead letter, and never delivered again. Nothing in the cluster changes.
   */
  private async refuse(
    message: JsMsg,
    command: SessionCommand,
    refusal: string,
    reason: string,
  ): Promise<void> {
    const { log, metrics } = this.options;
    metrics.commandsHandled.labels('refused').inc();
    metrics.commandsRefused.labels(refusal).inc();
    const parsed = parseCommandSubject(message.subject);
    log.warn(
      {
        subject: message.subject,
        issuer: parsed.ok ? parsed.value.issuer : undefined,
        namespace: command.namespace,
        name: command.name,
        action: command.action,
        reason: command.reason,
        refusal,
      },
      `command refused: ${reason}`,
    );
    const letter: DeadLetter = {
      subject: message.subject,
      reason: `command refused (${refusal}): ${reason}`.slice(0, 1_000),
      attempts: message.info.deliveryCount,
      failedAt: isoTime(this.now()),
      service: 'idle-reaper',
      payload: message.string().slice(0, 10_000),
    };
    try {
      await this.options.deadLetter?.(
        subjects.deadLetter('command', command.namespace, command.name),
        letter,
      );
    } catch (error) {
      log.warn(
        { err: (error as Error).message, subject: message.subject },
        'could not dead-letter a refused command',
      );
    }
    message.term(`refused: ${refusal}`);
  }

  /**
   * Decides again on fresh facts and, if the decision holds, changes spec.state. `issuer` is the
   * identity the subject names (authorized already).
   */
  async execute(command: SessionCommand, issuer: string = REAPER_IDENTITY): Promise<CommandResult> {
    const { writer, log, metrics, defaults } = this.options;
    const key = sessionKey(command.namespace, command.name);
    const startedAt = this.now();
    for (let attempt = 0; attempt < 5; attempt++) {
      const cached = attempt === 0 ? this.options.cached?.(key) : undefined;
      let session: TrackedSession | undefined;
      if (cached && cached.uid === command.uid) session = cached;
      else {
        const raw = await writer.read(command.namespace, command.name);
        session = raw === undefined ? undefined : readTrackedSession(raw);
      }
      if (!session) return 'gone';
      if (session.uid !== command.uid) return 'uid_mismatch';

      const now = this.now();
      let action = command.action;
      let reason: string = command.reason;
      let message = command.message;
      let deadlineAt: number | undefined;
      let activityAt: number | undefined;
      if (command.reason === 'User') {
        const target = action === 'hibernate' ? 'hibernated' : 'terminated';
        if (session.state === target || session.state === 'terminated') return 'not_due';
      } else {
        activityAt = await this.options.freshActivity(key);
        const wokenAt = this.options.wokenAt(key);
        const notBefore = this.options.idleNotBefore;
        const d = computeDeadlines(
          session,
          {
            ...(activityAt !== undefined ? { activityAt } : {}),
            ...(wokenAt !== undefined ? { wokenAt } : {}),
            ...(notBefore !== undefined ? { idleNotBefore: notBefore } : {}),
          },
          defaults,
          now,
        );
        if (!d.due) return 'not_due';
        action = d.due.action;
        reason = d.due.reason;
        message = describeDeadline(d.due);
        deadlineAt = d.due.at;
      }

      const state = action === 'hibernate' ? 'hibernated' : 'terminated';
      const changedAt = isoTime(now);
      try {
        await writer.changeState(
          {
            namespace: command.namespace,
            name: command.name,
            uid: session.uid,
            resourceVersion: session.resourceVersion,
          },
          state,
          {
            // A User command names the person its issuer vouches for, and the issuer NATS
            // verified; it can never read as the reaper's own change.
            [ANNOTATIONS.stateChangedBy]:
              command.reason === 'User' ? `${command.issuedBy} (via ${issuer})` : REAPER_IDENTITY,
            [ANNOTATIONS.stateChangeReason]: reason,
            [ANNOTATIONS.stateChangedAt]: changedAt,
          },
        );
      } catch (error) {
        const code = statusCode(error);
        if (code === 409) continue;
        if (code === 404) return 'gone';
        throw error;
      }
      const doneAt = this.now();
      metrics.decisions.labels(action, reason).inc();
      if (deadlineAt !== undefined)
        metrics.decisionDelay.labels(reason).observe(Math.max(0, doneAt - deadlineAt) / 1000);
      log.info(
        {
          namespace: command.namespace,
          name: command.name,
          action,
          reason,
          state,
          ...(deadlineAt !== undefined
            ? { deadline: isoTime(deadlineAt), delayMs: doneAt - deadlineAt }
            : {}),
          // Where the delay went: deciding and publishing, waiting for an executor, executing.
          issuedAt: command.issuedAt,
          queuedMs: startedAt - Date.parse(command.issuedAt),
          executeMs: doneAt - startedAt,
          attempts: attempt + 1,
        },
        `session ${state}`,
      );
      // Recorded without holding an executor slot: the state change is what the deadline waited for.
      // status.lastActivity is written coarsely otherwise; a decision records the precise time it
      // was made on, so the Session says why.
      const statusAt = session.statusLastActivity;
      if (activityAt !== undefined && (statusAt === undefined || activityAt > statusAt))
        this.track(this.recordLastActivity(command.namespace, command.name, activityAt));
      this.track(
        this.recordStateChange(command.namespace, command.name, {
          by: command.reason === 'User' ? command.issuedBy : REAPER_IDENTITY,
          reason,
          at: changedAt,
        }),
      );
      const event = writer
        .recordEvent(
          {
            namespace: command.namespace,
            name: command.name,
            uid: session.uid,
            resourceVersion: session.resourceVersion,
          },
          'Normal',
          reason,
          message,
        )
        .catch((error: Error) =>
          log.warn({ err: error.message, key }, 'could not record the Event (the state change stands)'),
        )
        .finally(() => this.events.delete(event));
      this.events.add(event);
      return 'executed';
    }
    throw new Error('the Session kept changing while the decision was being carried out (409 five times)');
  }
}
