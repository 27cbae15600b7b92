import type { Logger, SessionCommand } from '@streamspace/shared';
import { DeadlineScheduler } from './deadline-scheduler.js';
import type { ReaperMetrics } from './reaper-metrics.js';
import { REAPER_IDENTITY, type TrackedSession } from './session-facts.js';
import {
  computeDeadlines,
  type Deadline,
  describeDeadline,
  type LimitApplied,
  type ReaperDefaults,
  type SessionDeadlines,
} from './session-deadlines.js';

interface Tracked extends TrackedSession {
  /**
   * When this process saw spec.state become running (a wake), or first saw a running Session
   * that appeared after the initial list (see upsert).
   */
  wokenAt?: number;
  /** The deadline a command was last issued for, and when to issue it again if nothing happened. */
  issued?: { at: number; action: string; retryAt: number };
}

export interface IdleReaperOptions {
  defaults: ReaperDefaults;
  /** Latest known activity of a session (the activity bucket, as watched). */
  activityOf(key: string): number | undefined;
  /** Publishes a command; `msgId` lets JetStream drop the same decision issued by another replica. */
  issue(command: SessionCommand, msgId: string): Promise<void>;
  metrics: ReaperMetrics;
  log: Logger;
  /** How long to wait for an issued command to change spec.state before issuing it again. */
  commandRetryMs: number;
  /** No idle decision before this moment (the restart grace; see SessionObservations.idleNotBefore). */
  idleNotBefore?: number;
  /** Told when a Session appears, changes or its activity moves (to keep status.lastActivity current). */
  onSessionChange?(key: string): void;
  /** Told when a Session this replica owned is now another replica's (to drop what it held for it). */
  onRelease?(key: string): void;
  /**
   * Told once per Session and request when the Session asks for more than the limits allow (the
   * limit applies; the caller records an Event saying so).
   */
  onLimited?(session: TrackedSession, limited: LimitApplied[]): void;
  now?: () => number;
}

/**
 * The scheduling half of the reaper: it keeps every known Session and, for each, the next
 * deadline (idle or maximum duration) in a DeadlineScheduler. Any change — the Session, its
 * activity, a wake — recomputes that one Session's deadlines (so a changed idleTimeout takes
 * effect at once); when a deadline comes, it decides again with the latest facts and issues a
 * command. Nothing is decided before both the Session list and the activity bucket have been read
 * once: deciding on half the facts could hibernate a session whose activity is not loaded yet.
 */
export class IdleReaper {
  /** The Sessions this replica owns, with everything their deadlines need. */
  private readonly sessions = new Map<string, Tracked>();
  /**
   * The Sessions other replicas own: only their uid, to accept (and pass on) their reports and
   * check their desktops' tokens, and to tell an adopted Session from a new one.
   */
  private readonly others = new Map<string, string>();
  /**
   * When this replica first saw a running Session of another replica's that appeared after the
   * initial read (see upsert): if it adopts the Session, its idle time starts no earlier, as the
   * owner's did. Every replica's view lags alike, so its own first sight stands in for the owner's.
   */
  private readonly othersSeenAt = new Map<string, number>();
  /** What was last reported as limited per Session (uid and requests), so it is reported once. */
  private readonly limitsReported = new Map<string, string>();
  /** One string per namespace name (a few namespaces, thousands of Sessions each). */
  private readonly namespaces = new Map<string, string>();
  private readonly scheduler: DeadlineScheduler;
  private readonly now: () => number;
  private sessionsSynced = false;
  private activityLoaded = false;

  constructor(private readonly options: IdleReaperOptions) {
    this.now = options.now ?? Date.now;
    this.scheduler = new DeadlineScheduler({ onDue: (key) => this.onDue(key), now: this.now });
  }

  get ready(): boolean {
    return this.sessionsSynced && this.activityLoaded;
  }

  /** true/false once the Session list has been read; undefined before. */
  isKnown(key: string): boolean | undefined {
    if (this.sessions.has(key) || this.others.has(key)) return true;
    return this.sessionsSynced ? false : undefined;
  }

  get(key: string): Tracked | undefined {
    return this.sessions.get(key);
  }

  /** The uid of a Session, whoever owns it. */
  uidOf(key: string): string | undefined {
    return this.sessions.get(key)?.facts.uid ?? this.others.get(key);
  }

  wokenAt(key: string): number | undefined {
    return this.sessions.get(key)?.wokenAt;
  }

  get trackedCount(): number {
    return this.sessions.size;
  }

  get scheduledCount(): number {
    return this.scheduler.size;
  }

  deadlineOf(key: string): number | undefined {
    return this.scheduler.deadlineOf(key);
  }

  markSessionsSynced(): void {
    if (this.sessionsSynced) return;
    this.sessionsSynced = true;
    this.startIfReady();
  }

  markActivityLoaded(): void {
    if (this.activityLoaded) return;
    this.activityLoaded = true;
    this.startIfReady();
  }

  stop(): void {
    this.scheduler.stop();
  }

  /**
   * The key string this reaper already holds for a Session (or `key` itself when unknown). Every
   * map keyed by Session then shares one string per Session instead of one per source (list,
   * watch, bucket, reports): a heap snapshot of the reaper at 10,000 Sessions held about six
   * copies of each key, 2.7 MB of key strings.
   */
  canonicalKey(key: string): string {
    return this.sessions.get(key)?.key ?? key;
  }

  /**
   * A Session another replica owns: keep its uid only. If this replica owned it until now (the
   * members changed), its deadline and everything held for it are dropped.
   */
  upsertElsewhere(key: string, uid: string, running = false): void {
    const known = this.others.get(key);
    if (known !== uid) this.othersSeenAt.delete(key);
    if (known !== uid && !this.sessions.has(key) && this.ready && running)
      this.othersSeenAt.set(key, this.now());
    const released = this.sessions.get(key);
    if (released) {
      // Should it come back to us, its idle time still starts no earlier than it did here.
      if (released.wokenAt !== undefined && released.facts.uid === uid)
        this.othersSeenAt.set(key, released.wokenAt);
      this.sessions.delete(key);
      this.limitsReported.delete(key);
      this.scheduler.cancel(key);
      this.options.onRelease?.(key);
    }
    this.others.set(key, uid);
    this.countSessions();
  }

  private countSessions(): void {
    this.options.metrics.trackedSessions.set(this.sessions.size + this.others.size);
    this.options.metrics.ownedSessions.set(this.sessions.size);
    this.options.metrics.scheduledDeadlines.set(this.scheduler.size);
  }

  upsert(session: TrackedSession): void {
    const previous = this.sessions.get(session.key);
    const sameSession = previous?.facts.uid === session.facts.uid;
    // Adopted from a replica that left: not new, so its idle time runs on as it was (a Session
    // that appeared late gets its idle time started now, below; an adopted one must not, or a
    // takeover would postpone every decision of the part it adopts by a full idleTimeout).
    const adopted = !previous && this.others.get(session.key) === session.facts.uid;
    const seenAt = adopted ? this.othersSeenAt.get(session.key) : undefined;
    this.others.delete(session.key);
    this.othersSeenAt.delete(session.key);
    // Keep the strings already held (see canonicalKey); namespaces are shared across Sessions.
    const tracked: Tracked = {
      ...session,
      key: previous?.key ?? session.key,
      namespace: previous?.namespace ?? this.internNamespace(session.namespace),
      name: previous?.name ?? session.name,
    };
    if (sameSession && previous) {
      if (previous.wokenAt !== undefined) tracked.wokenAt = previous.wokenAt;
      if (previous.issued) tracked.issued = previous.issued;
      if (previous.facts.state !== 'running' && session.facts.state === 'running')
        tracked.wokenAt = this.now();
    } else if (seenAt !== undefined) {
      tracked.wokenAt = seenAt;
    } else if (this.ready && !adopted && session.facts.state === 'running') {
      // A Session that reaches this process late (the shared state lagging under load) had its
      // reports refused as unknown until now: its idle time starts no earlier than this, or it
      // would be hibernated on arrival although its desktop reported all along.
      tracked.wokenAt = this.now();
    }
    this.sessions.set(tracked.key, tracked);
    this.countSessions();
    this.evaluate(tracked.key);
    this.options.onSessionChange?.(tracked.key);
  }

  remove(key: string): void {
    this.sessions.delete(key);
    this.others.delete(key);
    this.othersSeenAt.delete(key);
    this.limitsReported.delete(key);
    this.scheduler.cancel(key);
    this.countSessions();
  }

  activityChanged(key: string): void {
    if (!this.sessions.has(key)) return;
    this.evaluate(key);
    this.options.onSessionChange?.(key);
  }

  deadlines(key: string, now = this.now()): SessionDeadlines | undefined {
    const s = this.sessions.get(key);
    if (!s) return undefined;
    const activityAt = this.options.activityOf(key);
    return computeDeadlines(
      s.facts,
      {
        ...(activityAt !== undefined ? { activityAt } : {}),
        ...(s.wokenAt !== undefined ? { wokenAt: s.wokenAt } : {}),
        ...(this.options.idleNotBefore !== undefined ? { idleNotBefore: this.options.idleNotBefore } : {}),
      },
      this.options.defaults,
      now,
    );
  }

  private internNamespace(namespace: string): string {
    const known = this.namespaces.get(namespace);
    if (known !== undefined) return known;
    this.namespaces.set(namespace, namespace);
    return namespace;
  }

  private startIfReady(): void {
    if (!this.ready) return;
    this.options.log.info(
      { sessions: this.sessions.size, scheduled: this.scheduler.size },
      'Sessions and activity loaded; deciding',
    );
    this.scheduler.start();
  }

  /** Plans the next look at one Session. Deadlines already past fire at once. */
  private evaluate(key: string): void {
    const s = this.sessions.get(key);
    const d = this.deadlines(key);
    if (s && d) this.reportLimits(s, d.limited);
    const next = d?.next;
    if (!s || !next) {
      if (s) s.issued = undefined;
      this.scheduler.cancel(key);
    } else if (s.issued && s.issued.at === next.at && s.issued.action === next.action) {
      // Already issued; look again when it is time to issue it again, not on every change.
      this.scheduler.schedule(key, Math.max(next.at, s.issued.retryAt));
    } else {
      s.issued = undefined;
      this.scheduler.schedule(key, next.at);
    }
    this.options.metrics.scheduledDeadlines.set(this.scheduler.size);
  }

  private reportLimits(s: Tracked, limited: LimitApplied[]): void {
    const signature =
      limited.length === 0
        ? ''
        : `${s.facts.uid}|${limited.map((l) => `${l.setting}=${l.requested}`).join('|')}`;
    if ((this.limitsReported.get(s.key) ?? '') === signature) return;
    if (signature === '') {
      this.limitsReported.delete(s.key);
      return;
    }
    this.limitsReported.set(s.key, signature);
    for (const l of limited) this.options.metrics.limitsApplied.labels(l.setting).inc();
    this.options.log.info(
      { key: s.key, limited: limited.map((l) => l.message) },
      'session asks for more than the limits allow; the limits apply',
    );
    this.options.onLimited?.(s, limited);
  }

  private onDue(key: string): void {
    const s = this.sessions.get(key);
    if (!s) return;
    const now = this.now();
    const d = this.deadlines(key, now);
    const due = d?.due;
    if (!due) {
      this.evaluate(key);
      return;
    }
    this.issue(s, due, now);
  }

  private issue(s: Tracked, due: Deadline, now: number): void {
    const { metrics, log, commandRetryMs } = this.options;
    // Replicas reach the same deadline at the same moment and name their command alike, so
    // JetStream keeps one; a command issued again later (nothing happened) gets a new round.
    const round = Math.floor(Math.max(0, now - due.at) / commandRetryMs);
    const msgId = `${s.facts.uid}:${due.action}:${due.at}:${round}`;
    const command: SessionCommand = {
      action: due.action,
      namespace: s.namespace,
      name: s.name,
      uid: s.facts.uid,
      reason: due.reason,
      message: describeDeadline(due),
      issuedBy: REAPER_IDENTITY,
      issuedAt: new Date(now).toISOString(),
    };
    s.issued = { at: due.at, action: due.action, retryAt: now + commandRetryMs };
    this.scheduler.schedule(s.key, now + commandRetryMs);
    this.options.issue(command, msgId).then(
      () => {
        metrics.commandsIssued.labels(due.action, 'published').inc();
        log.debug(
          {
            key: s.key,
            action: due.action,
            reason: due.reason,
            deadline: new Date(due.at).toISOString(),
            msgId,
          },
          'command issued',
        );
      },
      (error: Error) => {
        metrics.commandsIssued.labels(due.action, 'failed').inc();
        log.warn(
          { err: error.message, key: s.key, action: due.action },
          'could not publish a command; retrying',
        );
        const current = this.sessions.get(s.key);
        if (current?.issued) current.issued.retryAt = this.now() + 2_000;
        if (current) this.scheduler.schedule(s.key, this.now() + 2_000);
      },
    );
    metrics.scheduledDeadlines.set(this.scheduler.size);
  }
}
