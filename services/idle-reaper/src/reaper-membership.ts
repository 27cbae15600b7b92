import { randomBytes } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import {
  backoffDelay,
  BUCKETS,
  fnv1a32,
  hasKeys,
  isoTime,
  type Logger,
  type Readiness,
  sleep,
} from '@streamspace/shared';
import { livenessCheckInterval, MemberLiveness } from './member-liveness.js';
import type { ReaperMetrics } from './reaper-metrics.js';
import { MemberSet } from './session-ownership.js';

const READINESS = 'membership';

/**
 * A member id for this process: unique per process start (a restarted container reuses its host
 * name and often its pid), and a valid KV key and subject token (no dots).
 */
export function memberId(hostname: string, pid: number): string {
  const host = hostname.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 63) || 'reaper';
  return `${host}-${pid}-${randomBytes(3).toString('hex')}`;
}

/**
 * The replicas that share Sessions are those watching the same namespaces: a replica of another
 * WATCH_NAMESPACE (another installation on the same NATS, a test) is in a group of its own, or it
 * would be given Sessions it never sees.
 */
export function membershipGroup(namespaces: readonly string[] | undefined): string {
  if (!namespaces || namespaces.length === 0) return 'all';
  return `ns-${fnv1a32([...new Set(namespaces)].sort().join(',')).toString(16)}`;
}

/**
 * Heartbeats come this often: four per TTL, so one late or lost heartbeat does not expire a member,
 * and a replica whose event loop stalls is taken for dead only after a stall of three quarters of
 * the TTL (the time between two heartbeats is the stall plus one interval).
 */
export function heartbeatInterval(ttlMs: number): number {
  return Math.max(250, Math.floor(ttlMs / 4));
}

/** A Go duration for the server (whole seconds, at least one: the server's granularity). */
function goDuration(ms: number): string {
  return `${Math.max(1, Math.ceil(ms / 1_000))}s`;
}

export interface MembershipOptions {
  self: string;
  /** The replicas' group (membershipGroup): the first token of every key. */
  group: string;
  /**
   * A member whose last heartbeat arrived this long ago is gone (see member-liveness.ts); its
   * heartbeats also carry this TTL, rounded up to whole seconds, for the server to expire them.
   */
  ttlMs: number;
  /** The membership bucket (bound again after a failure). */
  bucket(): Promise<KV>;
  /** Writes a heartbeat: a JetStream publish on the key's subject with the per-message TTL. */
  publish(subject: string, data: string, ttl: string): Promise<void>;
  /** Told the members (this replica always among them) once known, and on every change. */
  onChange(members: MemberSet): void;
  log: Logger;
  readiness: Readiness;
  metrics: ReaperMetrics;
}

/**
 * This replica's membership of the idle reapers, in the KV bucket `streamspace-reaper-members`:
 * a heartbeat under its own key every third of the TTL, each written with that TTL, and a watch of
 * every key. A replica that stops (SIGKILL, a lost node, a paused process) stops writing; the
 * others drop it once no heartbeat of it has arrived for a TTL (MemberLiveness), or when its key
 * is deleted: its last heartbeat expires and the server writes a delete marker in its place,
 * which every watch delivers. A graceful stop deletes the key at once. The members are what the
 * watch holds, plus this replica itself: a replica cut off from the bucket keeps deciding for the
 * part it had and more, so a Session may for a while have two owners (their commands are mostly
 * the same message, which JetStream keeps once, see IdleReaper.issue; the executor re-checks
 * the others), never none.
 */
export class ReaperMembership {
  private members: MemberSet;
  private known = false;
  private lastHeartbeat = 0;
  /** The watch is caught up and running. */
  private watching = false;
  /** The last heartbeat failed, and the one before it longer than a TTL ago. */
  private heartbeatLost = false;
  private kv: KV | undefined;

  constructor(private readonly options: MembershipOptions) {
    this.members = new MemberSet(options.self, []);
    options.readiness.register(READINESS, 'joining the idle reapers');
  }

  get current(): MemberSet {
    return this.members;
  }

  /** Heartbeats and watches until `signal` aborts; never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.heartbeats(signal), this.watchLoop(signal)]);
  }

  /** Leaves at once (a graceful stop), so the others adopt this replica's part without waiting for the TTL. */
  async leave(): Promise<void> {
    await this.kv
      ?.delete(`${this.options.group}.${this.options.self}`)
      .catch((error: Error) =>
        this.options.log.warn(
          { err: error.message },
          'could not leave the idle reapers; the others wait for the TTL',
        ),
      );
  }

  private async heartbeats(signal: AbortSignal): Promise<void> {
    const { self, ttlMs, log, publish, metrics } = this.options;
    const every = heartbeatInterval(ttlMs);
    const subject = `$KV.${BUCKETS.reaperMembers}.${this.options.group}.${self}`;
    const body = JSON.stringify({ member: self, since: isoTime() });
    while (!signal.aborted) {
      const startedAt = performance.now();
      try {
        await publish(subject, body, goDuration(ttlMs));
        this.lastHeartbeat = Date.now();
        metrics.membershipHeartbeats.labels('written').inc();
        if (this.heartbeatLost) {
          this.heartbeatLost = false;
          if (this.watching) this.options.readiness.set(READINESS, true);
        }
      } catch (error) {
        metrics.membershipHeartbeats.labels('failed').inc();
        log.warn({ err: (error as Error).message }, 'membership heartbeat failed; retrying');
        if (Date.now() - this.lastHeartbeat > ttlMs) {
          this.heartbeatLost = true;
          this.options.readiness.set(
            READINESS,
            false,
            `no heartbeat written for ${ttlMs} ms: the other replicas take over this one's Sessions`,
          );
        }
      }
      // At a steady rate: a slow acknowledgement must not stretch the time between heartbeats.
      await sleep(Math.max(0, every - (performance.now() - startedAt)), signal);
    }
  }

  private async watchLoop(signal: AbortSignal): Promise<void> {
    const { log, readiness, metrics } = this.options;
    for (let failures = 0; !signal.aborted; ) {
      try {
        const kv = await this.options.bucket();
        this.kv = kv;
        await this.watchOnce(kv, signal, () => {
          failures = 0;
          this.watching = true;
          if (!this.heartbeatLost) readiness.set(READINESS, true);
        });
        this.watching = false;
        if (signal.aborted) break;
        throw new Error('the membership watch ended');
      } catch (error) {
        this.watching = false;
        if (signal.aborted) break;
        metrics.watchRestarts.labels('membership').inc();
        const delay = backoffDelay(failures++, { initialMs: 250, maxMs: 5_000 });
        readiness.set(READINESS, false, `cannot watch the reaper membership: ${(error as Error).message}`);
        log.warn({ err: (error as Error).message, retryInMs: delay }, 'membership watch failed; restarting');
        await sleep(delay, signal);
      }
    }
  }

  private async watchOnce(kv: KV, signal: AbortSignal, onCaughtUp: () => void): Promise<void> {
    const live = new MemberLiveness(this.options.ttlMs);
    let caughtUp = false;
    const publishChange = () => {
      const next = new MemberSet(this.options.self, live.members);
      if (this.known && next.sameMembers(this.members)) return;
      const before = this.members;
      this.members = next;
      this.known = true;
      this.options.metrics.members.set(next.size);
      this.options.metrics.membershipChanges.inc();
      this.options.log.info(
        { members: next.members, before: before.members, self: this.options.self },
        'idle reaper members changed; Sessions are owned anew',
      );
      this.options.onChange(next);
    };
    const catchUp = () => {
      if (caughtUp) return;
      caughtUp = true;
      onCaughtUp();
      publishChange();
    };
    const prefix = `${this.options.group}.`;
    const watch = await kv.watch({ key: `${prefix}*` });
    const stop = () => watch.stop();
    signal.addEventListener('abort', stop, { once: true });
    // Members whose heartbeats stopped arriving are dropped without waiting for the server's
    // delete marker; a check that runs late (this process stalled) drops nothing.
    const every = livenessCheckInterval(this.options.ttlMs);
    let plannedAt = performance.now() + every;
    const checker = setInterval(() => {
      const now = performance.now();
      const late = now - plannedAt;
      plannedAt = now + every;
      if (live.expire(now, late, every).length > 0 && caughtUp) publishChange();
    }, every);
    // An empty bucket delivers nothing to say the watch is caught up (our own first heartbeat
    // may not have landed yet).
    if (!(await hasKeys(kv, `${prefix}*`))) catchUp();
    try {
      for await (const entry of watch) {
        const member = entry.key.slice(prefix.length);
        if (entry.operation === 'PUT') {
          const known = live.has(member);
          live.seen(member, performance.now());
          // A heartbeat of a known member changes nothing.
          if (known && caughtUp) continue;
        } else live.gone(member);
        if (!caughtUp) {
          if (entry.delta === 0) catchUp();
        } else publishChange();
      }
    } finally {
      clearInterval(checker);
      signal.removeEventListener('abort', stop);
    }
  }
}
