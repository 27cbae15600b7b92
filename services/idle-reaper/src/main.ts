import { hostname } from 'node:os';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  activityKeyProblem,
  BUCKETS,
  bindBucket,
  bindConsumer,
  ConfigError,
  CONSUMERS,
  connectNats,
  describeNamespaces,
  retryForever,
  runService,
  STREAMS,
  SharedStateView,
  subjects,
} from '@streamspace/shared';
import { EventRecorder, kubeClientFromConfig, followApiReachability } from '@streamspace/kube';
import { activityRoute } from './activity-http.js';
import { ActivityIntake } from './activity-intake.js';
import { ActivityStore } from './activity-store.js';
import { TokenSource } from './bearer-token.js';
import { commandPolicy } from './command-authorization.js';
import { CommandExecutor, publishCommand } from './command-executor.js';
import { IdleReaper } from './idle-reaper.js';
import { LastActivityWriter } from './last-activity-writer.js';
import { configProblem, reaperEnvSchema } from './reaper-config.js';
import { createReaperMetrics } from './reaper-metrics.js';
import { decodeForwardedReport, encodeForwardedReport } from './forwarded-report.js';
import { PassedOnReports } from './passed-on-reports.js';
import { memberId, membershipGroup, ReaperMembership } from './reaper-membership.js';
import type { MemberSet } from './session-ownership.js';
import { readTrackedSession, sessionKey, sessionKeyOfStateEntry, type TrackedSession } from './session-facts.js';
import { REAPER_COMPONENT, SessionWriter } from './session-writer.js';

/** The size of an activity entry when the bucket sets no limit on values. */
const UNLIMITED_VALUE_CHUNK_BYTES = 4_096;

await runService({
  name: 'idle-reaper',
  defaultPort: 8083,
  configSchema: reaperEnvSchema,
  async start({ config, log, readiness, registry, signal }) {
    const problem = configProblem(config);
    if (problem) throw new ConfigError(problem);
    const tokens = new TokenSource({
      ...(config.ACTIVITY_TOKEN ? { token: config.ACTIVITY_TOKEN } : {}),
      ...(config.ACTIVITY_TOKEN_FILE ? { file: config.ACTIVITY_TOKEN_FILE } : {}),
    });
    try {
      await tokens.load();
    } catch (error) {
      throw new ConfigError(
        `ACTIVITY_TOKEN_FILE: cannot read the activity token: ${(error as Error).message}`,
      );
    }
    const activityKey = new TokenSource(
      config.ACTIVITY_SESSION_KEY_FILE ? { file: config.ACTIVITY_SESSION_KEY_FILE } : {},
    );
    try {
      await activityKey.load();
      const key = await activityKey.current();
      const problem = key === undefined ? undefined : activityKeyProblem(key);
      if (problem) throw new Error(problem);
    } catch (error) {
      throw new ConfigError(
        `ACTIVITY_SESSION_KEY_FILE: cannot use the activity key: ${(error as Error).message}`,
      );
    }
    const httpEnabled = config.ACTIVITY_HTTP ?? (tokens.configured || activityKey.configured);

    const metrics = createReaperMetrics(registry);
    const defaults = {
      idleTimeoutMs: config.DEFAULT_IDLE_TIMEOUT,
      maxSessionDurationMs: config.DEFAULT_MAX_SESSION_DURATION,
      limits: {
        allowOptOut: config.REAPER_OPT_OUT_ALLOWED,
        maxIdleTimeoutMs: config.MAX_IDLE_TIMEOUT,
        maxSessionDurationMs: config.MAX_SESSION_DURATION,
      },
    };
    const kube = kubeClientFromConfig(config, registry, log);
    const instance = `${hostname()}-${process.pid}`;
    // This replica among the reapers: Sessions are spread over the live ones (session-ownership.ts).
    const self = memberId(hostname(), process.pid);
    // Reports another process held in memory when it died reach the bucket never: nothing is
    // hibernated for idleness until one flush interval after this start (docs/idle-reaper.md).
    const idleNotBefore = Date.now() + config.ACTIVITY_FLUSH_INTERVAL;
    // The records — status.lastActivity (steady), and after each decision its status record,
    // status.lastActivity and Event — get a client of their own: its connections and its own share
    // of the client-side rate limit (KUBE_QPS), so a decision's spec.state change never waits
    // behind them. With one client, a burst of decisions (1,000 idle Sessions over 30 s at 10,000,
    // four writes each) ran into the limit and queued its state changes behind the records: each
    // took 1.2 s and the commands waited up to 2.6 s for an executor (BENCHMARKS.md, run J).
    // A quarter of the decisions' connections: the records are off the clock and may wait their
    // turn, and each TLS connection holds memory for good (reaper-config.ts, KUBE_MAX_CONNECTIONS).
    const statusKube = kubeClientFromConfig(
      { ...config, KUBE_MAX_CONNECTIONS: Math.ceil(config.KUBE_MAX_CONNECTIONS / 4) },
      registry,
      log,
    );
    const writer = new SessionWriter(
      kube,
      // Few Events remembered for aggregation: a decision's Event names the moment it was made on,
      // so it never repeats, and each remembered one holds ≈ 540 bytes of heap (4,096 of them, the
      // recorder's default: 2.1 MiB; BENCHMARKS.md run S5). The LimitApplied warnings, which can
      // repeat, come once per Session and request.
      new EventRecorder(statusKube, { component: REAPER_COMPONENT, instance, maxRemembered: 256 }),
      statusKube,
    );

    // NATS pieces arrive once connected; until then reports answer "failed" and commands wait.
    let activity: ActivityStore | undefined;
    let nc: NatsConnection | undefined;
    let subscription: Subscription | undefined;
    let forwarded: Subscription | undefined;
    let executor: CommandExecutor | undefined;
    let executorDone: Promise<void> | undefined;

    const statusWriter = new LastActivityWriter({
      intervalMs: config.LAST_ACTIVITY_WRITE_INTERVAL,
      latest: (key) => activity?.get(key),
      session: (key) => reaper.owned(key),
      write: (namespace, name, at) => writer.applyLastActivity(namespace, name, at),
      metrics,
      log,
    });
    const reaper = new IdleReaper({
      defaults,
      activityOf: (key) => activity?.get(key),
      issue: async (command, msgId) => {
        if (!nc) throw new Error('NATS is not connected yet');
        await publishCommand(jetstream(nc), command, msgId);
      },
      metrics,
      log,
      commandRetryMs: config.COMMAND_RETRY_INTERVAL,
      idleNotBefore,
      owns: (key) => membership.current.owns(key),
      onSessionChange: (key) => statusWriter.notify(key),
      onRelease: (key) => {
        statusWriter.forget(key);
        activity?.disown(key);
      },
      onLimited: (session, limited) => {
        const ref = { namespace: session.namespace, name: session.name, uid: session.uid };
        for (const l of limited) {
          void writer
            .recordEvent(ref, 'Warning', 'LimitApplied', l.message)
            .catch((error: Error) =>
              log.warn({ err: error.message, key: session.key }, 'could not record the LimitApplied Event'),
            );
        }
      },
    });
    /**
     * The replica a report must go to when it is not this one. The owner decides with the reports
     * it holds in memory, so a report for another replica's Session is passed on to it at once
     * (core NATS, no write) instead of being held here until a flush the owner would see up to a
     * flush interval late: the owner could hibernate a desktop whose latest report sat in this
     * replica's memory. The owner holds it and flushes it like its own.
     */
    const ownerElsewhere = (key: string): string | undefined => {
      const members = membership.current;
      if (members.size === 1) return undefined;
      const owner = members.ownerOf(key);
      return owner === self ? undefined : owner;
    };
    const passedOn = new PassedOnReports();
    const rotation = setInterval(() => passedOn.rotate(), config.ACTIVITY_FLUSH_INTERVAL);
    rotation.unref();
    const forward = (owner: string, key: string, at: number): boolean => {
      if (!nc) throw new Error('NATS is not connected yet');
      nc.publish(subjects.reaperActivity(owner), encodeForwardedReport(key, at));
      passedOn.record(key, at);
      metrics.forwardedReports.labels('sent').inc();
      return true;
    };
    const intake = new ActivityIntake({
      log,
      metrics,
      maxSkewMs: config.ACTIVITY_MAX_CLOCK_SKEW,
      isKnownSession: (key) => reaper.isKnown(key),
      record: (key, at) => {
        if (!activity) return Promise.reject(new Error('NATS is not connected yet'));
        const owner = ownerElsewhere(key);
        if (owner === undefined) return activity.record(reaper.canonicalKey(key), at);
        try {
          return Promise.resolve(forward(owner, key, at));
        } catch (error) {
          return Promise.reject(error);
        }
      },
      offer: (key, at) => {
        if (!activity) throw new Error('NATS is not connected yet');
        const owner = ownerElsewhere(key);
        return owner === undefined ? activity.offer(reaper.canonicalKey(key), at) : forward(owner, key, at);
      },
    });

    // Sessions come from the shared state the watcher keeps (a KV watch: every current value,
    // then every change), not from an API-server watch of our own.
    let connected: (nc: NatsConnection) => void = () => undefined;
    const connection = new Promise<NatsConnection>((resolve) => {
      connected = resolve;
    });
    let membersKnown: () => void = () => undefined;
    const membersFirstKnown = new Promise<void>((resolve) => {
      membersKnown = resolve;
    });
    let previousMembers: MemberSet | undefined;
    const membership = new ReaperMembership({
      self,
      group: membershipGroup(config.WATCH_NAMESPACE),
      ttlMs: config.REAPER_MEMBER_TTL,
      bucket: async () => (await bindBucket(await connection, BUCKETS.reaperMembers)).kv,
      publish: async (subject, data, ttl) => {
        await jetstream(await connection).publish(subject, data, { ttl });
      },
      onChange: (members) => {
        membersKnown();
        const memberLeft = members.leftSince(previousMembers).length > 0;
        // Sessions move away from this replica only to a member that joined: without one, the
        // reports held here stay ours, and a takeover need not walk them (it is on the clock).
        const memberJoined = members.joinedSince(previousMembers).length > 0;
        previousMembers = members;
        try {
          if (activity && nc) {
            // Reports held here for Sessions now another replica's go to it at once: it decides
            // with what it holds, and ours would reach it only with our next flush.
            if (memberJoined)
              for (const [key, at] of activity.held()) {
                const owner = ownerElsewhere(key);
                if (owner !== undefined) forward(owner, key, at);
              }
            // Reports we passed on to a replica that is gone may have died with it, unstored:
            // for the Sessions now ours, they count as reports received here.
            if (memberLeft)
              for (const [key, at] of passedOn.entries())
                if (ownerElsewhere(key) === undefined) activity.offer(reaper.canonicalKey(key), at);
          }
        } catch (error) {
          // NATS closing: they reach the bucket with our next flush instead.
          log.warn({ err: (error as Error).message }, 'could not pass held reports on to their new owners');
        }
        // Every Session is held here with its facts: the ones that became ours are decided at
        // once from them (a read of all the Sessions took seconds at 20,000, run S2), the ones
        // that went to another replica drop their deadlines.
        // When a member left, what it may have fetched of our commands is issued again (reassign).
        const startedAt = performance.now();
        const { adopted, released, reissued } = reaper.reassign({ memberLeft });
        log.info(
          {
            adopted,
            released,
            reissued,
            owned: reaper.trackedCount,
            tookMs: Math.round(performance.now() - startedAt),
          },
          'Sessions owned anew',
        );
      },
      log,
      readiness,
      metrics,
    });
    const membershipDone = membership.run(signal);

    readiness.register('sessions', 'reading Sessions from the shared state');
    const sessionView = new SharedStateView<TrackedSession>({
      // Which Sessions are ours depends on the members: none is read before they are known.
      bucket: async () => {
        await membersFirstKnown;
        return (await bindBucket(await connection, BUCKETS.state)).kv;
      },
      kind: 'session',
      ...(config.WATCH_NAMESPACE ? { namespaces: config.WATCH_NAMESPACE } : {}),
      // The reaper holds what it needs of each Session; the view need not hold it again, nor
      // every entry's key (`session.<namespace>.<name>`) beside the Session's.
      keepValues: false,
      keyOf: sessionKeyOfStateEntry,
      parse: (raw) => {
        const session = readTrackedSession(raw);
        if (!session) return { ok: false, reason: 'not a Session (metadata.namespace, name or uid missing)' };
        return { ok: true, key: session.key, value: session };
      },
      onUpsert: (_key, session) => reaper.upsert(session),
      onDelete: (key) => {
        reaper.remove(key);
        statusWriter.forget(key);
        activity?.forget(key);
      },
      onSynced: () => reaper.markSessionsSynced(),
      onState: (up, reason) => {
        readiness.set('sessions', up, reason);
        if (!up) {
          metrics.watchRestarts.labels('sessions').inc();
          log.warn({ reason }, 'shared state unavailable; keeping the last known Sessions');
        }
      },
      onCorrupt: (key, reason) => {
        metrics.malformedSessions.inc();
        log.warn({ key, reason }, 'skipping a shared-state entry that is not a Session');
      },
    });
    const informerDone = sessionView.run(signal);
    // The API server is still written to (spec.state, status.lastActivity, Events): say when it
    // cannot be reached. /version needs no RBAC.
    readiness.register('kubernetes', 'not yet checked');
    void followApiReachability(kube, (up, reason) => readiness.set('kubernetes', up, reason), signal);

    readiness.register('jetstream', 'binding to the commands consumer and the activity bucket');
    const natsReady = (async () => {
      nc = await connectNats(config, {
        name: `idle-reaper-${instance}`,
        identity: 'idle-reaper',
        log,
        readiness,
        signal,
      });
      const connection = nc;
      connected(connection);
      // The watcher declares the consumer and the bucket; until it has, this stays not ready.
      const { kv, consumer, maxValueSize } = await retryForever(
        async () => {
          const { kv } = await bindBucket(connection, BUCKETS.activity);
          return {
            kv,
            // Entries hold many Sessions' times each, up to the bucket's value size (the watcher
            // sets it; no limit at all is taken as a few kilobytes, to keep each entry cheap to read).
            maxValueSize: (await kv.status()).maxValueSize,
            consumer: await bindConsumer(connection, STREAMS.commands, CONSUMERS.commandExecutor),
          };
        },
        {
          signal,
          onError: (error, _attempt, delayMs) => {
            readiness.set('jetstream', false, `cannot bind to JetStream: ${(error as Error).message}`);
            log.warn(
              { err: (error as Error).message, retryInMs: delayMs },
              'binding to JetStream failed; retrying',
            );
          },
        },
      );
      readiness.set('jetstream', true);
      const store = new ActivityStore(kv, {
        log,
        readiness,
        metrics,
        writer: self,
        maxValueBytes: maxValueSize > 0 ? maxValueSize : UNLIMITED_VALUE_CHUNK_BYTES,
        keyFilter: config.WATCH_NAMESPACE ? config.WATCH_NAMESPACE.map((n) => `${n}.>`) : '>',
        onChange: (key) => reaper.activityChanged(key),
        canonicalKey: (key) => reaper.canonicalKey(key),
        flushIntervalMs: config.ACTIVITY_FLUSH_INTERVAL,
      });
      activity = store;
      void store.run(signal, () => reaper.markActivityLoaded());
      subscription = intake.subscribe(connection);
      forwarded = connection.subscribe(subjects.reaperActivity(self), {
        callback: (error, message) => {
          if (error) return;
          const report = decodeForwardedReport(message.data);
          if (!report) {
            metrics.forwardedReports.labels('malformed').inc();
            log.warn({ subject: message.subject }, 'malformed report passed on by another replica dropped');
            return;
          }
          metrics.forwardedReports.labels('received').inc();
          store.offer(reaper.canonicalKey(report.key), report.at);
        },
      });
      statusWriter.start();
      executor = new CommandExecutor({
        consumer,
        writer,
        defaults,
        // The latest this replica knows: its own reports and what the watch brought of the
        // others' (the bucket itself is no fresher: the owner holds its reports until a flush).
        freshActivity: async (key) => store.get(key),
        wokenAt: (key) => reaper.wokenAt(key),
        idleNotBefore,
        cached: (key) => reaper.get(key),
        metrics,
        log,
        concurrency: config.EXECUTOR_CONCURRENCY,
        policy: commandPolicy(config.USER_COMMAND_ISSUERS),
        deadLetter: async (subject, letter) => {
          await jetstream(connection).publish(subject, JSON.stringify(letter));
        },
      });
      executorDone = executor.run();
      log.info(
        { namespace: describeNamespaces(config.WATCH_NAMESPACE), activityHttp: httpEnabled, defaults },
        'idle reaper consuming activity and commands',
      );
    })().catch((error: Error) => {
      if (!signal.aborted) log.error({ err: error.message }, 'NATS setup stopped');
    });

    return {
      routes: activityRoute({
        intake,
        tokens,
        sessionKey: activityKey,
        sessionUid: (namespace, name) => reaper.uidOf(sessionKey(namespace, name)),
        enabled: httpEnabled,
        metrics,
        log,
      }),
      async stop() {
        clearInterval(rotation);
        reaper.stop();
        statusWriter.stop();
        await subscription?.drain().catch(() => undefined);
        // What is held in memory goes to the bucket before NATS is closed: a stop loses nothing.
        await Promise.race([activity?.close(), new Promise((r) => setTimeout(r, 5_000))]);
        // Then the others adopt our part at once rather than after the member TTL; what they
        // passed on to us until they saw us leave is stored too.
        await Promise.race([membership.leave(), new Promise((r) => setTimeout(r, 2_000))]);
        await forwarded?.drain().catch(() => undefined);
        await Promise.race([activity?.flush(), new Promise((r) => setTimeout(r, 2_000))]);
        await executor?.stop();
        await executorDone?.catch(() => undefined);
        await Promise.race([natsReady, new Promise((r) => setTimeout(r, 1_000))]);
        await nc?.drain().catch(() => undefined);
        await informerDone.catch(() => undefined);
        await membershipDone.catch(() => undefined);
        kube.close();
        statusKube.close();
      },
    };
  },
});
