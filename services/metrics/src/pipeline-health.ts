import type { JetStreamManager } from '@nats-io/jetstream';
import { recordedPartitions, STREAMS, WORK_PRIORITY_GROUP, workConsumerNames } from '@streamspace/shared';
import { Gauge, type Registry } from 'prom-client';
import { httpStatusProbe, type StatusProbe } from './http-status-probe.js';

/**
 * Health of the pipeline between the watcher and the reconcilers, read when Prometheus scrapes:
 * JetStream's own counts (work queue depth, the partition consumers' backlog summed, dead letters) and,
 * when configured, the watcher's /readyz. One probe serves all the gauges of one scrape.
 */

export interface StreamFigures {
  messages: number;
  /** Age of the oldest message, 0 when the stream is empty. */
  oldestAgeSeconds: number;
}

export interface ConsumerFigures {
  pending: number;
  ackPending: number;
  redelivered: number;
  waiting: number;
  /** Partition consumers whose priority group has a worker pinned (1 or 0 for one consumer). */
  pinned: number;
}

export interface PipelineFigures {
  jetstreamUp: boolean;
  streams: Partial<Record<'work' | 'deadLetter' | 'commands', StreamFigures>>;
  consumer: ConsumerFigures | undefined;
  watchers: { target: string; ready: boolean }[];
}

/** What the probe needs of JetStream; the real one is a JetStreamManager. */
export interface JetStreamReader {
  streamState(name: string): Promise<{ messages: number; firstTs: string | undefined }>;
  consumerState(stream: string, consumer: string): Promise<ConsumerFigures>;
  /** The work partition consumers, as many as the work stream records. */
  workConsumers(): Promise<string[]>;
}

export function jetStreamReader(jsm: JetStreamManager): JetStreamReader {
  return {
    async streamState(name) {
      const info = await jsm.streams.info(name);
      return { messages: info.state.messages, firstTs: info.state.first_ts };
    },
    async consumerState(stream, consumer) {
      const info = await jsm.consumers.info(stream, consumer);
      return {
        pending: info.num_pending,
        ackPending: info.num_ack_pending,
        redelivered: info.num_redelivered,
        waiting: info.num_waiting,
        // nats-server ≥ 2.11 reports each priority group's pinned client (ADR-42); nats.js 3.4 has no type for it.
        pinned: (info as { priority_groups?: { pinned_client_id?: string }[] }).priority_groups?.some(
          (group) => group.pinned_client_id,
        )
          ? 1
          : 0,
      };
    },
    async workConsumers() {
      const partitions = recordedPartitions((await jsm.streams.info(STREAMS.work)).config.metadata);
      if (partitions === undefined) throw new Error(`the stream ${STREAMS.work} records no work partitions yet`);
      return workConsumerNames(partitions);
    },
  };
}

export function oldestAgeSeconds(messages: number, firstTs: string | undefined, nowMs: number): number {
  if (messages === 0 || !firstTs) return 0;
  const first = Date.parse(firstTs);
  return Number.isFinite(first) ? Math.max(0, (nowMs - first) / 1000) : 0;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms}ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface PipelineProbeOptions {
  /** undefined while NATS is not connected yet. */
  jetstream(): JetStreamReader | undefined;
  watcherReadyUrls: string[];
  timeoutMs: number;
  now?: () => number;
  /** How a watcher's /readyz is asked (the real HTTP probe unless a test gives another). */
  probeStatus?: StatusProbe;
  onError?(what: string, error: unknown): void;
}

export async function probePipeline(options: PipelineProbeOptions): Promise<PipelineFigures> {
  const now = options.now ?? Date.now;
  const js = options.jetstream();
  const figures: PipelineFigures = { jetstreamUp: false, streams: {}, consumer: undefined, watchers: [] };
  const work = async () => {
    if (!js) return;
    const names = { work: STREAMS.work, deadLetter: STREAMS.deadLetter, commands: STREAMS.commands } as const;
    let answered = 0;
    await Promise.all([
      ...Object.entries(names).map(async ([key, stream]) => {
        try {
          const state = await withTimeout(js.streamState(stream), options.timeoutMs, `stream ${stream}`);
          figures.streams[key as keyof typeof names] = {
            messages: state.messages,
            oldestAgeSeconds: oldestAgeSeconds(state.messages, state.firstTs, now()),
          };
          answered++;
        } catch (error) {
          options.onError?.(`stream ${stream}`, error);
        }
      }),
      (async () => {
        // The reconcilers' backlog is spread over one consumer per partition: report the sums.
        try {
          figures.consumer = await withTimeout(
            (async () => {
              const states = await Promise.all(
                (await js.workConsumers()).map((name) => js.consumerState(STREAMS.work, name)),
              );
              const sum = (field: keyof ConsumerFigures) => states.reduce((total, s) => total + s[field], 0);
              return {
                pending: sum('pending'),
                ackPending: sum('ackPending'),
                redelivered: sum('redelivered'),
                waiting: sum('waiting'),
                pinned: sum('pinned'),
              };
            })(),
            options.timeoutMs,
            'the work partition consumers',
          );
          answered++;
        } catch (error) {
          options.onError?.(`consumers of ${STREAMS.work}`, error);
        }
      })(),
    ]);
    figures.jetstreamUp = answered > 0;
  };
  const watchers = async () => {
    const probe = options.probeStatus ?? httpStatusProbe;
    figures.watchers = await Promise.all(
      options.watcherReadyUrls.map(async (target) => {
        try {
          return { target, ready: (await probe(target, options.timeoutMs)) === 200 };
        } catch (error) {
          options.onError?.(`watcher readiness ${target}`, error);
          return { target, ready: false };
        }
      }),
    );
  };
  await Promise.all([work(), watchers()]);
  return figures;
}

/**
 * Registers the pipeline gauges. A value JetStream could not give is left out (absent) rather
 * than reported as 0, so an empty queue and an unknown one never look alike; streamspace_jetstream_up
 * says which.
 */
export function registerPipelineMetrics(
  registry: Registry,
  options: PipelineProbeOptions & { cacheMs?: number },
) {
  const registers = [registry];
  // One label value for the sum over the partition consumers: the reconcilers' priority group.
  const consumer = WORK_PRIORITY_GROUP;
  let cached: { at: number; figures: Promise<PipelineFigures> } | undefined;
  const figures = () => {
    const now = Date.now();
    // One probe per scrape: the gauges are collected one after the other within milliseconds.
    if (!cached || now - cached.at > (options.cacheMs ?? 500))
      cached = { at: now, figures: probePipeline(options) };
    return cached.figures;
  };

  const gauge = (
    name: string,
    help: string,
    labelNames: string[],
    fill: (gauge: Gauge<string>, f: PipelineFigures) => void,
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        const f = await figures();
        this.reset();
        fill(this, f);
      },
    });

  gauge(
    'streamspace_jetstream_up',
    '1 when JetStream answered the last pipeline probe, else 0.',
    [],
    (g, f) => g.set(f.jetstreamUp ? 1 : 0),
  );
  // The stream gauges carry the stream's name: a gauge without labels cannot be left out.
  const work = { stream: STREAMS.work };
  gauge(
    'streamspace_work_queue_depth',
    'Work items in the work stream: waiting, or delivered and not yet acknowledged.',
    ['stream'],
    (g, f) => {
      if (f.streams.work) g.set(work, f.streams.work.messages);
    },
  );
  gauge(
    'streamspace_work_queue_oldest_age_seconds',
    'Age of the oldest work item in the work stream (0 when empty).',
    ['stream'],
    (g, f) => {
      if (f.streams.work) g.set(work, f.streams.work.oldestAgeSeconds);
    },
  );
  gauge(
    'streamspace_work_consumer_pending_messages',
    `Work items not yet delivered to any worker of the consumer (its lag).`,
    ['consumer'],
    (g, f) => {
      if (f.consumer) g.set({ consumer }, f.consumer.pending);
    },
  );
  gauge(
    'streamspace_work_consumer_ack_pending_messages',
    'Work items delivered to a worker and not yet acknowledged (being reconciled, or waiting for a retry).',
    ['consumer'],
    (g, f) => {
      if (f.consumer) g.set({ consumer }, f.consumer.ackPending);
    },
  );
  gauge(
    'streamspace_work_consumer_redelivered_messages',
    'Work items delivered more than once and not yet acknowledged (retries in progress).',
    ['consumer'],
    (g, f) => {
      if (f.consumer) g.set({ consumer }, f.consumer.redelivered);
    },
  );
  gauge(
    'streamspace_work_consumer_waiting_pulls',
    'Pull requests of workers waiting for work (every worker pulls every partition).',
    ['consumer'],
    (g, f) => {
      if (f.consumer) g.set({ consumer }, f.consumer.waiting);
    },
  );
  gauge(
    'streamspace_work_partitions_pinned',
    'Work partitions pinned to a worker now; fewer than the partitions means some wait for a worker (none running, or a failover in progress).',
    ['consumer'],
    (g, f) => {
      if (f.consumer) g.set({ consumer }, f.consumer.pinned);
    },
  );
  gauge(
    'streamspace_dead_letter_messages',
    'Dead letters kept in the dead-letter stream (docs/metrics.md says how to read and purge them).',
    ['stream'],
    (g, f) => {
      if (f.streams.deadLetter) g.set({ stream: STREAMS.deadLetter }, f.streams.deadLetter.messages);
    },
  );
  gauge(
    'streamspace_command_queue_depth',
    'Session commands (hibernate, terminate) waiting in the command stream.',
    ['stream'],
    (g, f) => {
      if (f.streams.commands) g.set({ stream: STREAMS.commands }, f.streams.commands.messages);
    },
  );
  if (options.watcherReadyUrls.length > 0) {
    gauge(
      'streamspace_watcher_probe_ready',
      "1 when the watcher's /readyz at `target` answered 200, else 0 (WATCHER_READY_URL).",
      ['target'],
      (g, f) => {
        for (const { target, ready } of f.watchers) g.set({ target }, ready ? 1 : 0);
      },
    );
  }
}
