import { appendFileSync } from 'node:fs';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  backoffDelay,
  type DeadLetter,
  decodeMessage,
  isoTime,
  type Logger,
  objectKey,
  STATE_KINDS,
  STREAMS,
  sleep,
  subjects,
  WORK_KINDS,
  WORK_MAX_ACK_PENDING,
  WORK_PRIORITY_GROUP,
  workConsumerName,
  type WorkItem,
  type WorkPartitions,
  workItemSchema,
} from '@streamspace/shared';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { KeyedWorkQueue } from './key-queue.js';
import { PacedPull, type PullStatus, type WorkMessage } from './paced-pull.js';
import { partitionsToRelease } from './partition-balance.js';
import {
  LOSS_REASONS,
  PartitionLease,
  PinLostError,
  pinTimings,
  type WriteFence,
} from './partition-lease.js';
import { RequeueTimers } from './requeue-timers.js';
import type { ReconcileOutcome } from './session-reconciler.js';

export interface WorkConsumerOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  work: WorkPartitions;
  log: Logger;
  registry: Registry;
  workerId: string;
  /** The connection's inbox prefix: the pulls' replies come back under it. */
  inboxPrefix?: string;
  concurrency: number;
  maxAttempts: number;
  reconcile(item: WorkItem, fence: WriteFence): Promise<ReconcileOutcome>;
  /** Told when an item is given up, to mark the object (a Session condition). */
  onDeadLetter(item: WorkItem, reason: string, fence: WriteFence): Promise<void>;
  /**
   * Test instrumentation (RECONCILE_INTERVALS_FILE): one JSON line per reconcile with its key,
   * worker and start and end times, so a test can prove no key ran on two workers at once.
   */
  intervalsFile?: string;
}

/** What a work item's reason (`<kind>-<change>`, `resync`, `requeue`; see work-routing.ts) says triggered it. */
const TRIGGERS = [...STATE_KINDS, 'resync', 'requeue', 'other'] as const;

/** Triggers from a Session's children (work-routing.ts): the Session's own change is under way. */
const CHILD_TRIGGERS = new Set<string>(STATE_KINDS.filter((kind) => kind !== 'session' && kind !== 'template'));

function triggerOf(reason: string): (typeof TRIGGERS)[number] {
  const head = reason.split('-', 1)[0] ?? '';
  return (TRIGGERS as readonly string[]).includes(head) ? (head as (typeof TRIGGERS)[number]) : 'other';
}

interface Pending {
  message: WorkMessage;
  item: WorkItem;
  partition: number;
}

/**
 * Pulls every work partition and runs reconciles with bounded concurrency.
 *
 * One writer per key: a key always hashes to the same partition; the server pins each partition
 * to one worker (a pinned-client priority group), and this worker works on a partition's items
 * only while its lease on the pin holds (PartitionLease): a reconcile carries the lease's fence,
 * which the writer checks before every write, so a worker that lost a pin stops before writing
 * and leaves the item unacknowledged for the new holder. Within the worker, a per-key queue
 * (KeyedWorkQueue) never hands one key out twice at once and folds repeated triggers into one.
 * A worker holds at most WORK_MAX_ACK_PENDING keys of a partition (waiting or running): it pulls
 * only for the room it has (PacedPull), since the server's own count misses items a newer
 * trigger replaced in the stream.
 * A failure is retried with growing delays (nak with a delay) and after maxAttempts goes to the
 * dead-letter stream; an item that can never succeed (not a valid work item) is terminated.
 */
export class WorkConsumer {
  private readonly requeueTimers = new RequeueTimers();
  private readonly queue = new KeyedWorkQueue<Pending>();
  private readonly leases: PartitionLease[];
  private readonly pulls = new Map<number, PacedPull>();
  /** Partitions given back to the other workers, not pulled until then (performance.now()). */
  private readonly pausedUntil = new Map<number, number>();
  private rebalancing = false;
  private readonly inFlight = new Set<Promise<void>>();
  /** The reconciles running now, by partition: a partition is given away only once its own are over. */
  private readonly inFlightOf = new Map<number, Set<Promise<void>>>();
  private readonly timings: ReturnType<typeof pinTimings>;
  private stopping = false;
  private readonly reconciles: Counter<'kind' | 'result'>;
  private readonly duration: Histogram<'kind'>;
  private readonly waited: Histogram<'trigger'>;
  private readonly deadLetters: Counter<'reason'>;
  private readonly inFlightGauge: Gauge;
  private readonly coalesced: Counter;
  private readonly pinsLost: Counter<'reason'>;

  constructor(private readonly options: WorkConsumerOptions) {
    const registers = [options.registry];
    this.timings = pinTimings(options.work.pinTimeoutMs);
    this.reconciles = new Counter({
      name: 'streamspace_reconciler_reconciles_total',
      help: 'Reconciles by kind and result (success, error, dead_lettered, aborted: stopped before a write because this worker lost the pin on its partition).',
      labelNames: ['kind', 'result'],
      registers,
    });
    for (const kind of WORK_KINDS)
      for (const result of ['success', 'error', 'dead_lettered', 'aborted'])
        this.reconciles.labels(kind, result).inc(0);
    this.duration = new Histogram({
      name: 'streamspace_reconciler_reconcile_duration_seconds',
      help: 'Time one reconcile took.',
      labelNames: ['kind'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.waited = new Histogram({
      name: 'streamspace_reconciler_work_item_wait_seconds',
      help: "From a work item's arrival in the work stream to the start of its reconcile (client-go's workqueue queue duration), by what triggered it: the object's kind (session, pod, ...), resync or requeue.",
      labelNames: ['trigger'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50],
      registers,
    });
    for (const trigger of TRIGGERS) this.waited.zero({ trigger });
    this.deadLetters = new Counter({
      name: 'streamspace_reconciler_dead_letters_total',
      help: 'Work items given up and sent to the dead-letter stream, by reason.',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of ['malformed', 'max_attempts']) this.deadLetters.labels(reason).inc(0);
    this.inFlightGauge = new Gauge({
      name: 'streamspace_reconciler_in_flight',
      help: 'Reconciles running now in this worker.',
      registers,
    });
    this.coalesced = new Counter({
      name: 'streamspace_reconciler_coalesced_total',
      help: 'Work items folded into a later item of the same key before their reconcile started.',
      registers,
    });
    this.pinsLost = new Counter({
      name: 'streamspace_reconciler_partition_pins_lost_total',
      help: "Times this worker lost the pin on a work partition, by how it learned: unpinned (the server's answer to our pull), pin_changed, lease_expired (no proof of the pin within the lease), consumer_stopped, disconnected (from NATS), released (given to another worker for balance).",
      labelNames: ['reason'],
      registers,
    });
    for (const reason of LOSS_REASONS) this.pinsLost.labels(reason).inc(0);
    this.leases = options.work.consumers.map(
      (_, partition) => new PartitionLease(this.timings.leaseMs, (reason) => this.lost(partition, reason)),
    );
    const leases = this.leases;
    new Gauge({
      name: 'streamspace_reconciler_partitions_pinned',
      help: 'Work partitions pinned to this worker now (its lease on the pin holds).',
      registers,
      collect() {
        this.set(leases.filter((lease) => lease.held()).length);
      },
    });
    const queue = this.queue;
    new Gauge({
      name: 'streamspace_reconciler_queued_keys',
      help: 'Keys waiting in this worker for a free reconcile slot (each once, however many triggers it got).',
      registers,
      collect() {
        this.set(queue.waiting);
      },
    });
  }

  async run(): Promise<void> {
    void this.watchConnection();
    this.joinCensus();
    await Promise.all(this.options.work.consumers.map((_, partition) => this.pull(partition)));
  }

  /** Answers the other workers' census, gives partitions to a worker that joins, and says it joined. */
  private joinCensus(): void {
    const { nc, workerId } = this.options;
    nc.subscribe(subjects.reconcilersCensus, {
      callback: (_error, message) => {
        message.respond(workerId);
      },
    });
    nc.subscribe(subjects.reconcilersHello, {
      callback: (_error, message) => {
        if (message.string() !== workerId) void this.rebalance();
      },
    });
    nc.publish(subjects.reconcilersHello, workerId);
  }

  /** How many workers answer the census now (this one included). */
  private async census(): Promise<number> {
    const ids = new Set([this.options.workerId]);
    const replies = await this.options.nc.requestMany(subjects.reconcilersCensus, '', {
      maxWait: 300,
      strategy: 'timer',
    });
    for await (const reply of replies) ids.add(reply.string());
    return ids.size;
  }

  /** Gives back the partitions over this worker's fair share; at most one round at a time. */
  private async rebalance(): Promise<void> {
    if (this.rebalancing || this.stopping) return;
    this.rebalancing = true;
    try {
      // Let a burst of pins and joins settle into one decision.
      await sleep(500);
      const members = await this.census();
      const held = this.leases.flatMap((lease, partition) => (lease.held() ? [partition] : []));
      const release = partitionsToRelease(held, members, this.leases.length);
      if (release.length > 0)
        this.options.log.info(
          { members, held: held.length, release },
          'giving work partitions to the other workers',
        );
      for (const partition of release) this.release(partition);
    } catch (error) {
      this.options.log.warn(
        { err: (error as Error).message },
        'could not count the reconcilers; keeping the partitions',
      );
    } finally {
      this.rebalancing = false;
    }
  }

  /** Stops pulling a partition for a while and asks the server to pin another worker to it. */
  private release(partition: number): void {
    const { work, jsm, log } = this.options;
    // Long enough for a standby to be pinned; then this worker pulls again, as a standby.
    this.pausedUntil.set(partition, performance.now() + 2 * work.pinTimeoutMs);
    this.leases[partition]?.lose('released');
    this.pulls.get(partition)?.stop();
    // Unpinning hands the partition over at once: first let this worker's reconciles of it end
    // (the lost lease stops each before its next write), so no write of ours lands after the
    // new holder started.
    const running = [...(this.inFlightOf.get(partition) ?? [])];
    void Promise.allSettled(running)
      .then(() => jsm.consumers.unpin(STREAMS.work, workConsumerName(partition), WORK_PRIORITY_GROUP))
      .catch((error: Error) =>
        log.warn(
          { partition, err: error.message },
          'could not unpin a partition; it moves after its pin timeout',
        ),
      );
  }

  async stop(timeoutMs = 20_000): Promise<void> {
    this.stopping = true;
    this.requeueTimers.clear();
    for (const pull of this.pulls.values()) pull.stop();
    // Items not started go straight back rather than wait for the ack timeout.
    for (const pending of this.queue.remove(() => true)) pending.message.nak();
    await Promise.race([Promise.allSettled([...this.inFlight]), sleep(timeoutMs)]);
  }

  /** One partition: pull under the priority group, restarting after an error, until stopped. */
  private async pull(partition: number): Promise<void> {
    const { log, nc, inboxPrefix } = this.options;
    const lease = this.leases[partition] as PartitionLease;
    while (!this.stopping) {
      const paused = (this.pausedUntil.get(partition) ?? 0) - performance.now();
      if (paused > 0) {
        await sleep(paused);
        continue;
      }
      try {
        const pull = new PacedPull({
          nc,
          ...(inboxPrefix ? { inboxPrefix } : {}),
          stream: STREAMS.work,
          consumer: workConsumerName(partition),
          group: WORK_PRIORITY_GROUP,
          expiresMs: this.timings.pullExpiresMs,
          heartbeatMs: this.timings.heartbeatMs,
          // As many keys as the server lets a partition's worker hold unacknowledged, and a pull
          // at least as often as the library's expiring pulls renewed the pin before.
          pacing: { bound: WORK_MAX_ACK_PENDING, keepAliveMs: this.timings.pullExpiresMs },
          held: () => this.queue.count((pending) => pending.partition === partition),
          onMessage: (message) => this.receive(message, partition, lease),
          onStatus: (status) => this.pinStatus(status, lease),
        });
        this.pulls.set(partition, pull);
        try {
          await pull.closed;
        } finally {
          this.pulls.delete(partition);
          lease.lose('consumer_stopped');
        }
      } catch (error) {
        if (this.stopping) break;
        log.warn({ err: (error as Error).message, partition }, 'pulling a work partition failed; restarting');
        await sleep(1_000);
      }
    }
  }

  private async watchConnection(): Promise<void> {
    for await (const status of this.options.nc.status())
      if (status.type === 'disconnect') for (const lease of this.leases) lease.lose('disconnected');
  }

  private pinStatus(status: PullStatus, lease: PartitionLease): void {
    switch (status.type) {
      case 'pinned': {
        const gained = !lease.pinned;
        lease.pinnedAs(status.id);
        if (gained) void this.rebalance();
        break;
      }
      case 'unpinned':
        lease.lose('unpinned');
        break;
      // The server answered a pull of ours: it still held it, with our pin id. (Silence proves
      // nothing; the lease runs out on its own unless a proof comes.)
      case 'proof':
        lease.proof();
        break;
    }
  }

  private lost(partition: number, reason: (typeof LOSS_REASONS)[number]): void {
    this.pinsLost.labels(reason).inc();
    // Waiting items go back to the partition, for whoever holds it now; running ones stop at their next write.
    const returned = this.queue.remove((pending) => pending.partition === partition);
    for (const pending of returned) pending.message.nak();
    this.pulls.get(partition)?.wake();
    this.options.log.warn(
      { partition, reason, returned: returned.length },
      'lost the pin on a work partition; its reconciles stop before their next write',
    );
  }

  private receive(message: WorkMessage, partition: number, lease: PartitionLease): void {
    const { pinId } = message;
    if (pinId) {
      const gained = !lease.pinned;
      lease.pinnedAs(pinId);
      if (gained) void this.rebalance();
    }
    if (this.stopping) {
      message.nak();
      return;
    }
    const decoded = decodeMessage(workItemSchema, message.data);
    if (!decoded.ok) {
      void this.rejectMalformed(message, decoded.error);
      return;
    }
    const item = decoded.value;
    // A child's change (a pod that became ready or went away) mostly finishes a user's change
    // already under way, with a status write: it goes before the keys waiting for a first look, so
    // a burst of creates does not hold back the phases of the Sessions already started.
    const trigger = triggerOf(item.reason);
    const replaced = this.queue.add(
      objectKey(item.kind, item.namespace, item.name),
      { message, item, partition },
      CHILD_TRIGGERS.has(trigger),
    );
    // The later item covers the earlier one (an item is only a trigger); a redelivery of the same one is not a second item.
    if (replaced && replaced.message.seq !== message.seq) {
      replaced.message.ack();
      this.coalesced.inc();
    }
    this.dispatch();
  }

  private async rejectMalformed(message: WorkMessage, error: string): Promise<void> {
    this.options.log.warn({ subject: message.subject, err: error }, 'malformed work item; dead-lettering it');
    this.deadLetters.labels('malformed').inc();
    await this.deadLetter(
      message.subject,
      message.string().slice(0, 10_000),
      `malformed work item: ${error}`,
      message.deliveryCount,
      'malformed',
      'unknown',
      'unknown',
    ).catch(() => undefined);
    message.term(`malformed work item: ${error}`.slice(0, 200));
  }

  /** Starts reconciles while there are free slots and ready keys; called when either appears. */
  private dispatch(): void {
    while (this.inFlight.size < this.options.concurrency) {
      const next = this.queue.next();
      if (!next) return;
      const partition = next.item.partition;
      const ofPartition = this.inFlightOf.get(partition) ?? new Set<Promise<void>>();
      this.inFlightOf.set(partition, ofPartition);
      const task = this.work(next.key, next.item).finally(() => {
        this.inFlight.delete(task);
        ofPartition.delete(task);
        this.queue.done(next.key);
        this.dispatch();
        // A key let go is room for one more item of its partition.
        this.pulls.get(partition)?.wake();
      });
      this.inFlight.add(task);
      ofPartition.add(task);
    }
  }

  private async work(key: string, { message, item, partition }: Pending): Promise<void> {
    const { log } = this.options;
    const fence = this.leases[partition]?.fence();
    if (!fence) {
      // The pin went between delivery and now: the item is the new holder's.
      message.nak();
      return;
    }
    const started = performance.timeOrigin + performance.now();
    // Clocks of one machine in the bench; across machines a skew shows here, bounded below by 0.
    if (message.storedAtMs > 0)
      this.waited.labels(triggerOf(item.reason)).observe(Math.max(0, started - message.storedAtMs) / 1000);
    // A start line too: a worker killed mid-reconcile writes no end.
    if (this.options.intervalsFile)
      appendFileSync(
        this.options.intervalsFile,
        `${JSON.stringify({ key, worker: this.options.workerId, partition, start: started })}\n`,
      );
    this.inFlightGauge.inc();
    const stopTimer = this.duration.labels(item.kind).startTimer();
    let result = 'success';
    try {
      const outcome = await this.options.reconcile(item, fence);
      // Done under the pin: acknowledging is only bookkeeping, but a worker that lost the pin leaves the item to the new holder.
      fence.throwIfLost();
      this.reconciles.labels(item.kind, 'success').inc();
      message.ack();
      this.requeue(item, outcome.requeueAfterMs);
    } catch (error) {
      if (error instanceof PinLostError || fence.signal.aborted) {
        result = 'aborted';
        this.reconciles.labels(item.kind, 'aborted').inc();
        log.warn(
          { key, partition },
          'reconcile stopped before its next write: this worker lost the pin on its partition',
        );
        message.nak();
        return;
      }
      result = await this.failed(message, item, key, error as Error, fence);
    } finally {
      stopTimer();
      this.inFlightGauge.dec();
      if (this.options.intervalsFile)
        appendFileSync(
          this.options.intervalsFile,
          `${JSON.stringify({
            key,
            worker: this.options.workerId,
            partition,
            start: started,
            end: performance.timeOrigin + performance.now(),
            result,
            // An aborted reconcile wrote nothing after this: what exclusivity is about.
            ...(fence.lastPassedAt !== undefined ? { lastWrite: performance.timeOrigin + fence.lastPassedAt } : {}),
          })}\n`,
        );
    }
  }

  private async failed(
    message: WorkMessage,
    item: WorkItem,
    key: string,
    error: Error,
    fence: WriteFence,
  ): Promise<string> {
    const { log } = this.options;
    const attempts = message.deliveryCount;
    const reason = error.message ?? String(error);
    if (attempts >= this.options.maxAttempts) {
      this.reconciles.labels(item.kind, 'dead_lettered').inc();
      this.deadLetters.labels('max_attempts').inc();
      log.error({ key, attempts, err: reason }, 'reconcile failed too often; dead-lettering the work item');
      await this.deadLetter(
        message.subject,
        message.string(),
        reason,
        attempts,
        item.kind,
        item.namespace,
        item.name,
      ).catch(() => undefined);
      await this.options
        .onDeadLetter(item, reason, fence)
        .catch((e: Error) => log.warn({ err: e.message, key }, 'could not mark the dead-lettered object'));
      message.term(reason.slice(0, 200));
      return 'dead_lettered';
    }
    const delay = backoffDelay(attempts - 1, { initialMs: 500, maxMs: 60_000 });
    this.reconciles.labels(item.kind, 'error').inc();
    log.warn({ key, attempts, retryInMs: delay, err: reason }, 'reconcile failed; will retry');
    message.nak(delay);
    return 'error';
  }

  private async deadLetter(
    subject: string,
    payload: string,
    reason: string,
    attempts: number,
    kind: string,
    namespace: string,
    name: string,
  ): Promise<void> {
    const letter: DeadLetter = {
      subject,
      reason,
      attempts,
      failedAt: isoTime(),
      service: 'reconciler',
      payload,
    };
    await this.options.js.publish(subjects.deadLetter(kind, namespace, name), JSON.stringify(letter));
  }

  /**
   * Like controller-runtime's RequeueAfter: a trigger to ourselves when a deadline comes. A
   * reconcile that asks for none (`afterMs` undefined) cancels the key's earlier one.
   */
  private requeue(item: WorkItem, afterMs: number | undefined): void {
    const key = objectKey(item.kind, item.namespace, item.name);
    this.requeueTimers.settle(key, afterMs, () => {
      const next: WorkItem = { ...item, reason: 'requeue' };
      this.options.js
        .publish(
          subjects.work(item.kind, item.namespace, item.name, this.options.work.partitions),
          JSON.stringify(next),
        )
        .catch((error: Error) =>
          this.options.log.warn(
            { err: error.message, key },
            'could not requeue; the periodic resync will pick it up',
          ),
        );
    });
  }
}
