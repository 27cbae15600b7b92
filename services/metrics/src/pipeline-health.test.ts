import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  type JetStreamReader,
  oldestAgeSeconds,
  probePipeline,
  registerPipelineMetrics,
} from './pipeline-health.js';

const now = Date.parse('2030-01-01T10:00:00Z');

const healthy: JetStreamReader = {
  async streamState(name) {
    if (name === 'STREAMSPACE_WORK') return { messages: 7, firstTs: '2030-01-01T09:59:30Z' };
    if (name === 'STREAMSPACE_DEADLETTER') return { messages: 2, firstTs: '2030-01-01T08:00:00Z' };
    return { messages: 0, firstTs: '0001-01-01T00:00:00Z' };
  },
  async consumerState(_stream, name) {
    // Partition 1 has no worker pinned yet.
    return { pending: 2, ackPending: name.endsWith('1') ? 0 : 3, redelivered: 1, waiting: 2, pinned: name.endsWith('1') ? 0 : 1 };
  },
  async workConsumers() {
    return ['reconciler-p0', 'reconciler-p1'];
  },
};

const fakeProbe = async (url: string) => {
  if (url.includes('down')) throw new Error('connect ECONNREFUSED');
  return url.includes('notready') ? 503 : 200;
};

describe('pipeline health', () => {
  it('reads the work queue, the consumer backlog, dead letters and the watchers', async () => {
    const figures = await probePipeline({
      jetstream: () => healthy,
      watcherReadyUrls: ['http://w1/readyz', 'http://notready/readyz', 'http://down/readyz'],
      timeoutMs: 1000,
      now: () => now,
      probeStatus: fakeProbe,
    });
    expect(figures).toEqual({
      jetstreamUp: true,
      streams: {
        work: { messages: 7, oldestAgeSeconds: 30 },
        deadLetter: { messages: 2, oldestAgeSeconds: 7200 },
        commands: { messages: 0, oldestAgeSeconds: 0 },
      },
      // Summed over the partition consumers.
      consumer: { pending: 4, ackPending: 3, redelivered: 2, waiting: 4, pinned: 1 },
      watchers: [
        { target: 'http://w1/readyz', ready: true },
        { target: 'http://notready/readyz', ready: false },
        { target: 'http://down/readyz', ready: false },
      ],
    });
  });

  it('leaves out what JetStream cannot say (absent, not zero) and reports it down', async () => {
    const registry = new Registry();
    const errors: string[] = [];
    registerPipelineMetrics(registry, {
      jetstream: () => ({
        streamState: () => new Promise(() => undefined),
        consumerState: () => Promise.reject(new Error('consumer not found')),
        workConsumers: async () => ['reconciler-p0'],
      }),
      watcherReadyUrls: [],
      timeoutMs: 50,
      onError: (what) => errors.push(what),
    });
    const text = await registry.metrics();
    expect(text).toContain('streamspace_jetstream_up 0');
    expect(text).not.toMatch(/^streamspace_work_queue_depth\{/m);
    expect(text).not.toMatch(/^streamspace_dead_letter_messages\{/m);
    expect(text).not.toMatch(/^streamspace_work_consumer_pending_messages/m);
    expect(text).not.toContain('streamspace_watcher_probe_ready');
    expect(errors.sort()).toEqual([
      'consumers of STREAMSPACE_WORK',
      'stream STREAMSPACE_COMMANDS',
      'stream STREAMSPACE_DEADLETTER',
      'stream STREAMSPACE_WORK',
    ]);
  });

  it('exports the figures under their metric names', async () => {
    const registry = new Registry();
    registerPipelineMetrics(registry, {
      jetstream: () => healthy,
      watcherReadyUrls: ['http://w1/readyz'],
      timeoutMs: 1000,
      probeStatus: fakeProbe,
    });
    const text = await registry.metrics();
    for (const line of [
      'streamspace_jetstream_up 1',
      'streamspace_work_queue_depth{stream="STREAMSPACE_WORK"} 7',
      'streamspace_work_queue_oldest_age_seconds{stream="STREAMSPACE_WORK"}',
      'streamspace_work_consumer_pending_messages{consumer="reconcilers"} 4',
      'streamspace_work_consumer_ack_pending_messages{consumer="reconcilers"} 3',
      'streamspace_work_consumer_redelivered_messages{consumer="reconcilers"} 2',
      'streamspace_work_consumer_waiting_pulls{consumer="reconcilers"} 4',
      'streamspace_work_partitions_pinned{consumer="reconcilers"} 1',
      'streamspace_dead_letter_messages{stream="STREAMSPACE_DEADLETTER"} 2',
      'streamspace_command_queue_depth{stream="STREAMSPACE_COMMANDS"} 0',
      'streamspace_watcher_probe_ready{target="http://w1/readyz"} 1',
    ]) {
      expect(text).toContain(line);
    }
  });

  it('says an empty stream has no oldest message', () => {
    expect(oldestAgeSeconds(0, '2030-01-01T09:00:00Z', now)).toBe(0);
    expect(oldestAgeSeconds(3, '2030-01-01T09:59:59.500Z', now)).toBe(0.5);
    expect(oldestAgeSeconds(3, 'garbage', now)).toBe(0);
  });
});
