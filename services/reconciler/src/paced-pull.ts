import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { createInbox } from '@nats-io/nats-core';
import { nextPull, type PullPacing } from './pull-pacing.js';

/**
 * A work item as delivered by a paced pull: the few parts of a JetStream message the work
 * consumer uses, acknowledged over the message's reply subject as every JetStream client does.
 */
export interface WorkMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  /** The stream sequence: a redelivery has the same one. */
  readonly seq: number;
  /** How often the server delivered it, this time included. */
  readonly deliveryCount: number;
  /** The pin id the server sent it under (pinned-client priority group). */
  readonly pinId: string | undefined;
  /** When the stream stored it (ms since the epoch, the server's clock): where its wait began. */
  readonly storedAtMs: number;
  string(): string;
  ack(): void;
  nak(delayMs?: number): void;
  term(reason: string): void;
}

/** What the server told the puller besides items; `proof`: it answered a pull of ours. */
export type PullStatus = { type: 'pinned'; id: string } | { type: 'unpinned' } | { type: 'proof' };

export interface PacedPullOptions {
  nc: NatsConnection;
  /** The connection's inbox prefix (its NATS user may subscribe to nothing else). */
  inboxPrefix?: string;
  stream: string;
  consumer: string;
  group: string;
  /** How long one pull waits at the server; the pin timeout must allow several. */
  expiresMs: number;
  heartbeatMs: number;
  pacing: PullPacing;
  /** Keys of this partition the worker holds now (waiting or being reconciled). */
  held(): number;
  onMessage(message: WorkMessage): void;
  onStatus(status: PullStatus): void;
}

const decoder = new TextDecoder();

interface OpenPull {
  reply: string;
  keepAlive: boolean;
  /** Items it may still deliver. */
  left: number;
  /** Ends a pull whose end the server never told (a lost connection, a restarted server). */
  timer: NodeJS.Timeout;
}

/**
 * Pulls one work partition (a durable consumer under a pinned-client priority group) asking only
 * for the room the worker has: see pull-pacing.ts for why nats.js's `consume()` cannot bound what
 * a worker holds. One subscription on an inbox of its own; each pull gets a reply subject of its
 * own, so the end of an old pull is never mistaken for the end of the current one. It re-pulls
 * when a pull ends (filled, expired, refused) and when the worker says it has room (`wake`), and
 * never sends more than one pull that may deliver at a time. `closed` settles when it stops:
 * by `stop()`, or with an error when the server says the consumer cannot be pulled (deleted, a
 * bad request) — the caller decides whether to start another.
 */
export class PacedPull {
  private readonly inbox: string;
  private readonly sub: Subscription;
  private serial = 0;
  private pinId: string | undefined;
  private pull: OpenPull | undefined;
  private keepAlive: OpenPull | undefined;
  private lastSentAtMs: number | undefined;
  /** No pull is sent before this (performance.now()): after a refusal, not at once again. */
  private notBeforeMs = 0;
  private wakeTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private settle: (error?: Error) => void = () => undefined;
  readonly closed: Promise<void>;

  constructor(private readonly options: PacedPullOptions) {
    this.closed = new Promise<void>((resolve, reject) => {
      this.settle = (error) => (error ? reject(error) : resolve());
    });
    this.inbox = createInbox(options.inboxPrefix);
    this.sub = options.nc.subscribe(`${this.inbox}.*`, {
      callback: (error, msg) => {
        if (error) this.stop(error);
        else this.receive(msg);
      },
    });
    this.wake();
  }

  /** Sends a pull if the worker's room and the pacing allow one now; arms a timer if later. */
  wake(): void {
    if (this.stopped) return;
    const now = performance.now();
    if (now < this.notBeforeMs) {
      this.wakeAt(this.notBeforeMs);
      return;
    }
    const decision = nextPull(
      {
        held: this.options.held(),
        pullOpen: this.pull !== undefined,
        keepAliveOpen: this.keepAlive !== undefined,
        lastSentAtMs: this.lastSentAtMs,
        now,
      },
      this.options.pacing,
    );
    if (decision.kind === 'pull') this.pull = this.send(decision.batch, false);
    else if (decision.kind === 'keepalive') this.keepAlive = this.send(1, true);
    else if (decision.atMs !== undefined) this.wakeAt(decision.atMs);
  }

  stop(error?: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const open of [this.pull, this.keepAlive]) if (open) clearTimeout(open.timer);
    clearTimeout(this.wakeTimer);
    this.sub.unsubscribe();
    this.settle(error);
  }

  private wakeAt(atMs: number): void {
    clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(() => this.wake(), Math.max(1, atMs - performance.now()));
    this.wakeTimer.unref();
  }

  private send(batch: number, keepAlive: boolean): OpenPull {
    const { nc, stream, consumer, group, expiresMs, heartbeatMs } = this.options;
    const reply = `${this.inbox}.${++this.serial}`;
    const request = {
      batch,
      expires: expiresMs * 1_000_000,
      idle_heartbeat: heartbeatMs * 1_000_000,
      group,
      // Every item is larger than this: the server ends a keep-alive with a 409 rather than deliver.
      ...(keepAlive ? { max_bytes: 1 } : {}),
      ...(this.pinId ? { id: this.pinId } : {}),
    };
    this.lastSentAtMs = performance.now();
    nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`, JSON.stringify(request), { reply });
    const open: OpenPull = {
      reply,
      keepAlive,
      left: batch,
      // The server ends a pull at its expiry; silence past two heartbeats after it means it is gone.
      timer: setTimeout(() => this.ended(open), expiresMs + 2 * heartbeatMs),
    };
    open.timer.unref();
    return open;
  }

  private ended(open: OpenPull, refused = false): void {
    clearTimeout(open.timer);
    if (this.pull === open) this.pull = undefined;
    else if (this.keepAlive === open) this.keepAlive = undefined;
    else return;
    // A refused pull is not repeated at once: that would be a loop while the refusal holds.
    if (refused) this.notBeforeMs = performance.now() + this.options.expiresMs;
    this.wake();
  }

  private openFor(reply: string): OpenPull | undefined {
    if (this.pull?.reply === reply) return this.pull;
    if (this.keepAlive?.reply === reply) return this.keepAlive;
    return undefined;
  }

  private receive(msg: Msg): void {
    const code = msg.headers?.code ?? 0;
    // Items come with their own subject; the server's statuses on the pull's reply subject.
    if (msg.reply?.startsWith('$JS.ACK.') && code === 0) {
      const message = workMessage(this.options.nc, msg);
      if (message.pinId && message.pinId !== this.pinId) {
        this.pinId = message.pinId;
        this.options.onStatus({ type: 'pinned', id: message.pinId });
      }
      // Delivered even when its pull is over: the server counts it as ours until acknowledged.
      // Only one pull that may deliver is open at a time (a keep-alive delivers nothing); an
      // item late from one given up for lost ends the current one sooner, never later. Taken
      // before the worker sees the item: what it does may send the next pull.
      const open = this.pull;
      if (open) open.left--;
      this.options.onMessage(message);
      if (open && open.left <= 0) this.ended(open);
      return;
    }
    if (this.stopped) return;
    const open = this.openFor(msg.subject);
    switch (code) {
      case 100:
        // An idle heartbeat on an open pull: the server still holds it (with our pin id, if any).
        this.options.onStatus({ type: 'proof' });
        return;
      case 404:
      case 408:
        // The pull expired (or found nothing): the server answered a pull of ours.
        this.options.onStatus({ type: 'proof' });
        if (open) this.ended(open);
        return;
      case 423:
        // Another worker holds the pin: pull on as a standby, without an id.
        this.pinId = undefined;
        this.options.onStatus({ type: 'unpinned' });
        if (open) this.ended(open, true);
        return;
      case 400:
        this.stop(new Error(`the server refused a pull of ${this.options.consumer}: ${msg.headers?.description}`));
        return;
      case 409: {
        const description = msg.headers?.description ?? '';
        if (/consumer (is )?deleted|push based/i.test(description)) {
          this.stop(new Error(`cannot pull ${this.options.consumer}: ${description}`));
          return;
        }
        // A keep-alive met an item (max bytes), a leader changed, too many pulls waiting.
        if (/max ?bytes/i.test(description)) this.options.onStatus({ type: 'proof' });
        if (open) this.ended(open, !open.keepAlive);
        return;
      }
      default:
        // 503 (no JetStream) and the like: this pull is over; the next one after a pause.
        if (open) this.ended(open, true);
    }
  }
}

/** The delivery facts JetStream puts in the reply subject, in its old and its new form. */
export function parseAckSubject(reply: string): { deliveryCount: number; seq: number; storedAtMs: number } {
  const tokens = reply.split('.');
  // $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
  // $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>.<token>
  const at = tokens.length === 9 ? 4 : 6;
  const deliveryCount = Number(tokens[at]);
  const seq = Number(tokens[at + 1]);
  if (tokens.length < 9 || !Number.isInteger(deliveryCount) || !Number.isInteger(seq))
    throw new Error(`not a JetStream delivery: ${reply}`);
  // Nanoseconds since the epoch: past 2^53, so the last six digits go before the conversion.
  const storedAtMs = Number((tokens[at + 3] ?? '').slice(0, -6));
  return { deliveryCount, seq, storedAtMs: Number.isFinite(storedAtMs) ? storedAtMs : 0 };
}

function workMessage(nc: NatsConnection, msg: Msg): WorkMessage {
  const reply = msg.reply as string;
  const { deliveryCount, seq, storedAtMs } = parseAckSubject(reply);
  return {
    subject: msg.subject,
    data: msg.data,
    seq,
    deliveryCount,
    storedAtMs,
    pinId: msg.headers?.get('Nats-Pin-Id') || undefined,
    string: () => decoder.decode(msg.data),
    ack: () => nc.publish(reply, '+ACK'),
    nak: (delayMs) =>
      nc.publish(reply, delayMs ? `-NAK ${JSON.stringify({ delay: delayMs * 1_000_000 })}` : '-NAK'),
    term: (reason) => nc.publish(reply, reason ? `+TERM ${reason}` : '+TERM'),
  };
}
