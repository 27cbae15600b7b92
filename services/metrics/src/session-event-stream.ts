import { DeliverPolicy, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  backoffDelay,
  changeEventSchema,
  explainNoQuorum,
  type Logger,
  STREAMS,
  sleep,
  subjectToken,
} from '@streamspace/shared';
import type { MalformedEventReason } from './session-metrics.js';
import { parseSessionSnapshot } from './session-snapshot.js';
import type { ObservedChange } from './transition-tracker.js';

export type DecodedEvent =
  | { ok: true; change: ObservedChange }
  | { ok: false; reason: MalformedEventReason; detail: string };

const decoder = new TextDecoder();

/** Reads one message of the event stream as a Session change, or says why it cannot be read. */
export function decodeSessionEvent(data: Uint8Array): DecodedEvent {
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(data));
  } catch (error) {
    return { ok: false, reason: 'not_json', detail: `not JSON: ${(error as Error).message}` };
  }
  const envelope = changeEventSchema.safeParse(raw);
  if (!envelope.success) {
    const detail = envelope.error.issues
      .map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`)
      .join('; ');
    return { ok: false, reason: 'bad_envelope', detail };
  }
  const event = envelope.data;
  if (event.kind !== 'session')
    return { ok: false, reason: 'bad_envelope', detail: `kind is ${event.kind}, not session` };
  const parsed = parseSessionSnapshot(event.object);
  if (!parsed.ok) return { ok: false, reason: 'bad_object', detail: parsed.reason };
  const { snapshot } = parsed;
  if (snapshot.uid !== event.uid || snapshot.namespace !== event.namespace || snapshot.name !== event.name) {
    return {
      ok: false,
      reason: 'bad_object',
      detail: 'the object does not match the event (uid, namespace or name differ)',
    };
  }
  return { ok: true, change: { type: event.type, snapshot, observedAtMs: Date.parse(event.observedAt) } };
}

/** The subject filters of Session change events, in some namespaces or all. */
export function sessionEventFilter(namespaces?: readonly string[]): string[] {
  return namespaces
    ? namespaces.map((namespace) => `streamspace.events.session.${subjectToken(namespace)}.>`)
    : ['streamspace.events.session.>'];
}

/** Where to start reading: right after what was read last, or after the newest message if that is gone. */
export function startSequence(lastSeq: number, state: { first_seq: number; last_seq: number }): number {
  if (lastSeq > 0 && lastSeq <= state.last_seq && lastSeq + 1 >= state.first_seq) return lastSeq + 1;
  return state.last_seq + 1;
}

export interface SessionEventStreamOptions {
  nc: NatsConnection;
  /** Only the events of these namespaces; all when unset. */
  namespaces?: readonly string[];
  log: Logger;
  /**
   * Called once, when the subscription exists on the server and before any event is handled:
   * the moment to take the cluster's current state as history.
   */
  onSubscribed(subscribedAtMs: number): Promise<void>;
  onEvent(change: ObservedChange): void;
  onMalformed(reason: MalformedEventReason, detail: string, subject: string, payload: Uint8Array): void;
  onState(up: boolean, reason: string): void;
}

/**
 * Follows the Session change events with an ordered (ephemeral, unacknowledged) consumer that
 * starts at the newest message: history is the cluster's state, not the stream's past. The
 * client library recreates the consumer from the last sequence it delivered when it loses it;
 * when the whole subscription ends it is started again here, after the last sequence handled.
 * Malformed messages are reported and skipped; nothing here stops the service.
 */
export class SessionEventStream {
  private lastSeq = 0;
  private subscribed = false;
  private stopCurrent: (() => void) | undefined;

  constructor(private readonly options: SessionEventStreamOptions) {}

  async run(signal: AbortSignal): Promise<void> {
    const { log, nc } = this.options;
    const filter = sessionEventFilter(this.options.namespaces);
    const onAbort = () => this.stopCurrent?.();
    signal.addEventListener('abort', onAbort, { once: true });
    let attempt = 0;
    while (!signal.aborted) {
      try {
        const jsm: JetStreamManager = await jetstreamManager(nc);
        const info = await jsm.streams.info(STREAMS.events);
        const start = startSequence(this.lastSeq, info.state);
        const consumer = await jetstream(nc).consumers.get(STREAMS.events, {
          filter_subjects: filter,
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: start,
        });
        const messages = await consumer.consume({ max_messages: 256 });
        this.stopCurrent = () => messages.stop();
        if (signal.aborted) messages.stop();
        if (!this.subscribed) {
          await this.options.onSubscribed(Date.now());
          this.subscribed = true;
        }
        this.options.onState(true, 'ok');
        log.info({ stream: STREAMS.events, filter, startSequence: start }, 'following session change events');
        void (async () => {
          for await (const status of messages.status()) {
            if (
              status.type === 'heartbeats_missed' ||
              status.type === 'stream_not_found' ||
              status.type === 'consumer_not_found'
            ) {
              log.warn(
                { status: status.type },
                'event stream subscription trouble; following it again from the last event handled',
              );
              // Its server went away (a NATS cluster lost a node) or the consumer is gone: a new
              // consumer from the last sequence handled recovers at once, where waiting for the
              // library's own recovery left the gauges stale (and the service ready) for minutes.
              this.options.onState(
                false,
                `lost the ${STREAMS.events} subscription (${status.type}); following it again`,
              );
              messages.stop();
            }
          }
        })().catch(() => undefined);
        for await (const message of messages) {
          this.lastSeq = message.seq;
          attempt = 0;
          const decoded = decodeSessionEvent(message.data);
          if (decoded.ok) this.options.onEvent(decoded.change);
          else this.options.onMalformed(decoded.reason, decoded.detail, message.subject, message.data);
        }
        if (signal.aborted) break;
        throw new Error('the subscription ended');
      } catch (error) {
        if (signal.aborted) break;
        const delay = backoffDelay(attempt++, { initialMs: 500, maxMs: 15_000 });
        const reason =
          explainNoQuorum(error, `cannot follow ${STREAMS.events}`)?.message ??
          `cannot follow ${STREAMS.events}: ${(error as Error).message}`;
        this.options.onState(false, reason);
        log.warn(
          { err: (error as Error).message, retryInMs: delay },
          'event stream subscription failed; retrying',
        );
        await sleep(delay, signal);
      }
    }
    signal.removeEventListener('abort', onAbort);
  }
}
