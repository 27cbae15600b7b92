import type { Consumer, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import {
  backoffDelay,
  type DeadLetter,
  decodeMessage,
  type Logger,
  objectKey,
  PullConsumerLoop,
  sleep,
  subjects,
  type WorkItem,
  workItemSchema,
} from '@streamspace/shared';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { KeyLocks } from './key-lock.js';
import type { ReconcileOutcome } from './session-reconciler.js';

export interface WorkConsumerOptions {
  js: JetStreamClient;
  consumer: Consumer;
  locks: KeyLocks;
  log: Logger;
  registry: Registry;
  workerId: string;
  concurrency: number;
  maxAttempts: number;
  lockTtlMs: number;
  reconcile(item: WorkItem): Promise<ReconcileOutcome>;
  /** Told when an item is given up, to mark the object (a Session condition). */
  onDeadLetter(item: WorkItem, reason: string): Promise<void>;
}

/**
 * Pulls work items and runs reconciles with bounded concurrency. One key is never worked on by
 * two workers at once (KeyLocks); a failure is retried with growing delays (nak with a delay)
 * and after maxAttempts goes to the dead-letter stream; an item that can never succeed (not a
 * valid work item) is terminated at once.
 */
export class WorkConsumer {
  private readonly requeueTimers = new Map<string, NodeJS.Timeout>();
  private readonly loop: PullConsumerLoop;
  private readonly reconciles: Counter<'kind' | 'result'>;
  private readonly duration: Histogram<'kind'>;
  private readonly deadLetters: Counter<'reason'>;
  private readonly inFlightGauge: Gauge;
  private readonly lockWaits: Counter;

  constructor(private readonly options: WorkConsumerOptions) {
    this.loop = new PullConsumerLoop({
      consumer: options.consumer,
      concurrency: options.concurrency,
      log: options.log,
      name: 'work consumer',
      handle: (message) => this.handle(message),
    });
    const registers = [options.registry];
    this.reconciles = new Counter({
      name: 'streamspace_reconciler_reconciles_total',
      help: 'Reconciles by kind and result (success, error, dead_lettered).',
      labelNames: ['kind', 'result'],
      registers,
    });
    for (const kind of ['session', 'template'])
      for (const result of ['success', 'error', 'dead_lettered']) this.reconciles.labels(kind, result).inc(0);
    this.duration = new Histogram({
      name: 'streamspace_reconciler_reconcile_duration_seconds',
      help: 'Time one reconcile took.',
      labelNames: ['kind'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
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
    this.lockWaits = new Counter({
      name: 'streamspace_reconciler_lock_waits_total',
      help: 'Times a work item waited because another worker held its key.',
      registers,
    });
  }

  async run(): Promise<void> {
    await this.loop.run();
  }

  async stop(timeoutMs = 20_000): Promise<void> {
    for (const timer of this.requeueTimers.values()) clearTimeout(timer);
    await this.loop.stop(timeoutMs);
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
      failedAt: new Date().toISOString(),
      service: 'reconciler',
      payload,
    };
    await this.options.js.publish(subjects.deadLetter(kind, namespace, name), JSON.stringify(letter));
  }

  private async handle(message: JsMsg): Promise<void> {
    const { log, locks } = this.options;
    const decoded = decodeMessage(workItemSchema, message.data);
    if (!decoded.ok) {
      log.warn({ subject: message.subject, err: decoded.error }, 'malformed work item; dead-lettering it');
      this.deadLetters.labels('malformed').inc();
      await this.deadLetter(
        message.subject,
        message.string().slice(0, 10_000),
        `malformed work item: ${decoded.error}`,
        message.info.deliveryCount,
        'malformed',
        'unknown',
        'unknown',
      ).catch(() => undefined);
      message.term(`malformed work item: ${decoded.error}`.slice(0, 200));
      return;
    }
    const item = decoded.value;
    const key = objectKey(item.kind, item.namespace, item.name);
    const releaseLocal = await locks.holdLocally(key);
    let revision: number | undefined;
    try {
      // Wait while another worker holds the key; tell JetStream we are alive meanwhile so the
      // item is not handed to a third worker.
      revision = await locks.tryAcquire(key);
      if (revision === undefined) this.lockWaits.inc();
      while (revision === undefined) {
        if (this.loop.stopping) {
          message.nak();
          return;
        }
        message.working();
        await sleep(50 + Math.random() * 100);
        revision = await locks.tryAcquire(key);
      }
      await this.runLocked(message, item, key, revision);
    } catch (error) {
      log.error({ err: (error as Error).message, key }, 'work item handling failed');
      message.nak(1_000);
    } finally {
      if (revision !== undefined) await locks.release(key, revision);
      releaseLocal();
    }
  }

  private async runLocked(message: JsMsg, item: WorkItem, key: string, revision: number): Promise<void> {
    const { log, locks, workerId } = this.options;
    let held = revision;
    const refresher = setInterval(
      () => {
        locks.refresh(key, held).then(
          (r) => (held = r),
          () => undefined,
        );
        message.working();
      },
      Math.max(1_000, this.options.lockTtlMs / 3),
    );
    const started = performance.timeOrigin + performance.now();
    this.inFlightGauge.inc();
    const stopTimer = this.duration.labels(item.kind).startTimer();
    // Instrumentation for the one-writer-per-key guarantee: tests read these lines.
    log.debug({ key, workerId, reconcile: 'start', at: started }, 'reconcile start');
    try {
      const outcome = await this.options.reconcile(item);
      this.reconciles.labels(item.kind, 'success').inc();
      message.ack();
      if (outcome.requeueAfterMs !== undefined) this.requeue(item, outcome.requeueAfterMs);
    } catch (error) {
      const attempts = message.info.deliveryCount;
      const reason = (error as Error).message ?? String(error);
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
          .onDeadLetter(item, reason)
          .catch((e: Error) => log.warn({ err: e.message, key }, 'could not mark the dead-lettered object'));
        message.term(reason.slice(0, 200));
      } else {
        const delay = backoffDelay(attempts - 1, { initialMs: 500, maxMs: 60_000 });
        this.reconciles.labels(item.kind, 'error').inc();
        log.warn({ key, attempts, retryInMs: delay, err: reason }, 'reconcile failed; will retry');
        message.nak(delay);
      }
    } finally {
      clearInterval(refresher);
      stopTimer();
      this.inFlightGauge.dec();
      log.debug(
        {
          key,
          workerId,
          reconcile: 'end',
          at: performance.timeOrigin + performance.now(),
          startedAt: started,
        },
        'reconcile end',
      );
    }
  }

  /** Like controller-runtime's RequeueAfter: a trigger to ourselves when a deadline comes. */
  private requeue(item: WorkItem, afterMs: number): void {
    const key = objectKey(item.kind, item.namespace, item.name);
    clearTimeout(this.requeueTimers.get(key));
    const timer = setTimeout(
      () => {
        this.requeueTimers.delete(key);
        const next: WorkItem = { ...item, reason: 'requeue' };
        this.options.js
          .publish(subjects.work(item.kind, item.namespace, item.name), JSON.stringify(next))
          .catch((error: Error) =>
            this.options.log.warn(
              { err: error.message, key },
              'could not requeue; the periodic resync will pick it up',
            ),
          );
      },
      Math.min(afterMs, 2 ** 31 - 1),
    );
    timer.unref();
    this.requeueTimers.set(key, timer);
  }
}
