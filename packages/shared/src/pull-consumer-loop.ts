import type { Consumer, JsMsg } from '@nats-io/jetstream';
import { sleep } from './backoff.js';
import type { Logger } from './logger.js';

/**
 * Pulls from a durable JetStream consumer and hands each message to `handle` with at most
 * `concurrency` in flight, restarting the pull after an error. On stop it hands undelivered
 * messages straight back (nak) rather than let them wait for the ack timeout, and waits a bounded
 * time for the messages in flight.
 */
export class PullConsumerLoop {
  private readonly inFlight = new Set<Promise<void>>();
  private stopRequested = false;
  private iterator: { stop(): void } | undefined;

  constructor(
    private readonly options: {
      consumer: Consumer;
      concurrency: number;
      log: Logger;
      /** Names the consumer in log lines, e.g. "work consumer". */
      name: string;
      handle(message: JsMsg): Promise<void>;
    },
  ) {}

  get stopping(): boolean {
    return this.stopRequested;
  }

  async run(): Promise<void> {
    const { consumer, log, concurrency, name } = this.options;
    while (!this.stopRequested) {
      try {
        const messages = await consumer.consume({ max_messages: concurrency * 2 });
        this.iterator = messages;
        for await (const message of messages) {
          while (this.inFlight.size >= concurrency) await Promise.race(this.inFlight);
          if (this.stopRequested) {
            message.nak();
            continue;
          }
          const task = this.options.handle(message).finally(() => this.inFlight.delete(task));
          this.inFlight.add(task);
        }
      } catch (error) {
        if (this.stopRequested) break;
        log.warn({ err: (error as Error).message }, `${name} stopped; restarting`);
        await sleep(1_000);
      }
    }
  }

  /** Stops pulling and waits up to `timeoutMs` for what is in flight (and for `alsoWaitFor`). */
  async stop(timeoutMs: number, alsoWaitFor: Iterable<Promise<unknown>> = []): Promise<void> {
    this.stopRequested = true;
    this.iterator?.stop();
    await Promise.race([Promise.allSettled([...this.inFlight, ...alsoWaitFor]), sleep(timeoutMs)]);
  }
}
