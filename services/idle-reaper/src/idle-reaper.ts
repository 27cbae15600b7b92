import { isoTime, type Logger, type SessionCommand } from '@streamspace/shared';
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
  /** This replica decides it (see IdleReaperOptions.owns); the others' Sessions are held alike, undecided. */
  owned: boolean;
  /**
   * When this process saw spec.state become running (a wake), or first saw a running Session
   * that appeared after the initial list (see upsert).
   */
  wokenAt?: number;
  /** The deadline a command was last issued for, and when to issue it again if nothing happened. */
  issued?: { at: number; action: string; retryAt: number };
  /** When this replica last adopted the Session from another (see `issue`). */
  adoptedAt?: number;
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
   * Whether this replica owns (decides) a Session: every one when absent (one replica). Asked
   * when a Session first arrives and, for every Session, at `reassign` (the members changed).
   */
  owns?(key: string): boolean;
  /**
   * Told once per Session and request when the Session asks for more than the limits allow (the
   * limit applies; the caller records an Event saying so).
   */
  onLimited?(session: TrackedSession, limited: LimitApplied[]): void;
  now?: () => number;
  /** Runs work at a later turn of the event loop (setImmediate; tests may run it at once). */
  defer?: (work: () => void) => void;
}

/** Adopted Sessions planned per turn of the event loop after a takeover (see IdleReaper.reassign). */
const ADOPTION_SLICE = 500;

/**
 * The scheduling half of the reaper: it keeps every known Session and, for each, the next
 * deadline (idle or maximum duration) in a DeadlineScheduler. Any change — the Session, its
 * activity, a wake — recomputes that one Session's deadlines (so a changed idleTimeout takes
 * effect at once); when a deadline comes, it decides again with the latest facts and issues a
 * command. Nothing is decided before both the Session list and the activity bucket have been read
 * once: deciding on half the facts could hibernate a session whose activity is not loaded yet.
 */
export class IdleReaper {
  /**
   * Every Session, with everything its deadlines need, whichever replica owns it: only the owned
   * ones are scheduled, and when the members change (`reassign`) the ones that became this
   * replica's are decided from what is held here at once, with no read of the Sessions. Every
   * replica applies the same rules to every Session (a wake, a late arrival start its idle time
   * when this replica sees it; every replica's view lags alike, so its own sight stands in for the
   * owner's), so an adopted Session is decided on the deadline its owner would have used.
   */
  private readonly sessions = new Map<string, Tracked>();
  private ownedCount = 0;
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
    if (this.sessions.has(key)) return true;
    return this.sessionsSynced ? false : undefined;
  }

  /** A Session as held here, whoever owns it. */
  get(key: string): Tracked | undefined {
    return this.sessions.get(key);
  }

  /** A Session this replica owns. */
  owned(key: string): Tracked | undefined {
    const s = this.sessions.get(key);
    return s?.owned ? s : undefined;
  }

  /** The uid of a Session, whoever owns it. */
  uidOf(key: string): string | undefined {
    return this.sessions.get(key)?.uid;
  }

  wokenAt(key: string): number | undefined {
    return this.sessions.get(key)?.wokenAt;
  }

  /** The Sessions this replica owns. */
  get trackedCount(): number {
    return this.ownedCount;
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

  private countSessions(): void {
    this.options.metrics.trackedSessions.set(this.sessions.size);
    this.options.metrics.ownedSessions.set(this.ownedCount);
    this.options.metrics.scheduledDeadlines.set(this.scheduler.size);
  }

  private ownsKey(key: string): boolean {
    return this.options.owns?.(key) ?? true;
  }

  upsert(session: TrackedSession): void {
    const previous = this.sessions.get(session.key);
    const sameSession = previous?.uid === session.uid;
    // Keep the strings already held (see canonicalKey); namespaces are shared across Sessions.
    // One literal with every field, the facts inline: a spread of `session` built each object
    // property by property, and the facts and the Ready condition were objects of their own. With
    // the first literal an owned Session took 509 bytes of heap instead of 757 (run S3); inline,
    // 458 (one another replica owns: 334 instead of 405; bench/reaper-session-memory.mjs, 20,000
    // Sessions, BENCHMARKS.md run S5).
    const tracked: Tracked = {
      key: previous?.key ?? session.key,
      namespace: previous?.namespace ?? this.internNamespace(session.namespace),
      name: previous?.name ?? session.name,
      resourceVersion: session.resourceVersion,
      uid: sameSession && previous ? previous.uid : session.uid,
      state: session.state,
      reaperDisabled: session.reaperDisabled,
      deleting: session.deleting,
      createdAt: session.createdAt,
      phase: session.phase,
      readyStatus: session.readyStatus,
      readySince: session.readySince,
      idleTimeout: session.idleTimeout,
      maxSessionDuration: session.maxSessionDuration,
      statusLastActivity: session.statusLastActivity,
      reaperStateChangeAt: session.reaperStateChangeAt,
      owned: previous?.owned ?? this.ownsKey(session.key),
      wokenAt: undefined,
      issued: undefined,
      adoptedAt: undefined,
    };
    if (sameSession && previous) {
      if (previous.wokenAt !== undefined) tracked.wokenAt = previous.wokenAt;
      if (previous.issued) tracked.issued = previous.issued;
      if (previous.adoptedAt !== undefined) tracked.adoptedAt = previous.adoptedAt;
      if (previous.state !== 'running' && session.state === 'running')
        tracked.wokenAt = this.now();
    } else if (this.ready && session.state === 'running') {
      // A Session that reaches this process late (the shared state lagging under load) had its
      // reports refused as unknown until now: its idle time starts no earlier than this, or it
      // would be hibernated on arrival although its desktop reported all along. Every replica
      // dates it alike, so the one that adopts it later keeps the owner's date.
      tracked.wokenAt = this.now();
    }
    if (previous?.owned && !sameSession) this.limitsReported.delete(tracked.key);
    if (!previous && tracked.owned) this.ownedCount++;
    this.sessions.set(tracked.key, tracked);
    this.countSessions();
    if (!tracked.owned) return;
    this.evaluate(tracked.key);
    this.options.onSessionChange?.(tracked.key);
  }

  remove(key: string): void {
    const s = this.sessions.get(key);
    if (s?.owned) this.ownedCount--;
    this.sessions.delete(key);
    this.limitsReported.delete(key);
    this.scheduler.cancel(key);
    this.countSessions();
  }

  /**
   * The members changed: asks `owns` again for every Session. Those that became this replica's
   * are decided at once from what is held; those that went to another replica lose their deadline
   * and the caller is told (onRelease). Nothing is read.
   *
   * The adopted Sessions whose deadline has passed (the dead replica's decisions of the last
   * moments, and those due while it was being noticed) are the late ones: they are issued here,
   * in the same turn, and go out as soon as it ends. Planning the others' deadlines (and telling
   * `onSessionChange`) waits for the next turns of the event loop, `ADOPTION_SLICE` Sessions a
   * turn, so the executor and NATS get their turns in between: done all at once for 10,000
   * adopted Sessions it held every command of the takeover back by 150 ms on a loaded machine
   * (BENCHMARKS.md run S4).
   *
   * When a member left (`memberLeft`), the decisions this replica issued that have not taken
   * effect yet are issued again at once, under ids of their own: the commands consumer is shared,
   * so the replica that left may have fetched them, and a command its executor held stays
   * unacknowledged until the consumer's ack_wait (30 s) — or until this replica's own retry
   * (COMMAND_RETRY_INTERVAL, 30 s). If it had carried one out, the executor finds the Session
   * changed and does nothing (see CommandExecutor).
   */
  reassign(change: { memberLeft?: boolean } = {}): { adopted: number; released: number; reissued: number } {
    let adopted = 0;
    let released = 0;
    let reissued = 0;
    const toPlan: string[] = [];
    for (const [key, s] of this.sessions) {
      const owned = this.ownsKey(key);
      if (owned === s.owned) {
        if (owned && change.memberLeft && s.issued && this.issueAgain(s)) reissued++;
        continue;
      }
      s.owned = owned;
      if (owned) {
        adopted++;
        this.ownedCount++;
        const now = this.now();
        s.adoptedAt = now;
        const due = this.deadlines(key, now)?.due;
        if (due) this.issue(s, due, now);
        toPlan.push(key);
      } else {
        released++;
        this.ownedCount--;
        s.issued = undefined;
        s.adoptedAt = undefined;
        this.limitsReported.delete(key);
        this.scheduler.cancel(key);
        this.options.onRelease?.(key);
      }
    }
    this.countSessions();
    this.planAdopted(toPlan, 0);
    return { adopted, released, reissued };
  }

  /** Plans the deadlines of adopted Sessions, a slice per turn of the event loop (see reassign). */
  private planAdopted(keys: string[], from: number): void {
    if (from >= keys.length) return;
    (this.options.defer ?? setImmediate)(() => {
      const to = Math.min(keys.length, from + ADOPTION_SLICE);
      for (let i = from; i < to; i++) {
        const key = keys[i] as string;
        // Owned still: the members may have changed again meanwhile.
        if (!this.sessions.get(key)?.owned) continue;
        this.evaluate(key);
        this.options.onSessionChange?.(key);
      }
      this.planAdopted(keys, to);
    });
  }

  /** Issues the decision `s.issued` names again, now, if it still holds (see reassign). */
  private issueAgain(s: Tracked): boolean {
    const issued = s.issued;
    const now = this.now();
    const due = this.deadlines(s.key, now)?.due;
    if (!issued || !due || due.at !== issued.at || due.action !== issued.action) return false;
    this.issue(s, due, now, `:again-${now}`);
    return true;
  }

  activityChanged(key: string): void {
    if (!this.sessions.get(key)?.owned) return;
    this.evaluate(key);
    this.options.onSessionChange?.(key);
  }

  /** The deadlines of a Session this replica owns. */
  deadlines(key: string, now = this.now()): SessionDeadlines | undefined {
    const s = this.sessions.get(key);
    if (!s?.owned) return undefined;
    // A literal, not conditional spreads: this runs for every report of an owned Session and for
    // every adopted one at a takeover (see computeDeadlines' result).
    const observations = {
      activityAt: this.options.activityOf(key),
      wokenAt: s.wokenAt,
      idleNotBefore: this.options.idleNotBefore,
    };
    return computeDeadlines(s, observations, this.options.defaults, now);
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
        : `${s.uid}|${limited.map((l) => `${l.setting}=${l.requested}`).join('|')}`;
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
    if (!s?.owned) return;
    const now = this.now();
    const d = this.deadlines(key, now);
    const due = d?.due;
    if (!due) {
      this.evaluate(key);
      return;
    }
    this.issue(s, due, now);
  }

  private issue(s: Tracked, due: Deadline, now: number, again = ''): void {
    const { metrics, log, commandRetryMs } = this.options;
    // Replicas reach the same deadline at the same moment and name their command alike, so
    // JetStream keeps one; a command issued again later (nothing happened) gets a new round.
    const round = Math.floor(Math.max(0, now - due.at) / commandRetryMs);
    // Except a deadline that passed before this replica adopted the Session: the replica that
    // owned it may have issued it, and if that replica died, its executor may hold the command
    // unacknowledged until the commands consumer's ack_wait (30 s) gives it to another (run S3a:
    // 7 of 1,000 decisions 30 s late). Under an id of its own it is carried out now; the other,
    // if any, finds the Session changed (the executor decides again) and does nothing.
    const adopted = s.adoptedAt !== undefined && due.at <= s.adoptedAt ? `:adopted-${s.adoptedAt}` : '';
    const msgId = `${s.uid}:${due.action}:${due.at}:${round}${adopted}${again}`;
    const command: SessionCommand = {
      action: due.action,
      namespace: s.namespace,
      name: s.name,
      uid: s.uid,
      reason: due.reason,
      message: describeDeadline(due),
      issuedBy: REAPER_IDENTITY,
      issuedAt: isoTime(now),
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
            deadline: isoTime(due.at),
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
        if (!current?.owned) return;
        if (current.issued) current.issued.retryAt = this.now() + 2_000;
        this.scheduler.schedule(s.key, this.now() + 2_000);
      },
    );
    metrics.scheduledDeadlines.set(this.scheduler.size);
  }
}
