import { type JetStreamManager, jetstreamManager, RetentionPolicy } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { STREAMS, subjects } from '@streamspace/shared';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, eventually, installCrds, ServiceProcess } from './harness.js';
import { Scrape } from './metrics-scrape.js';
import { type NatsCluster, startNatsCluster } from './nats-cluster.js';
import { startRestartableNats } from './private-nats.js';

/**
 * A topology that exists with another replica count (issue 15): a watcher that ran with
 * NATS_REPLICAS=1 on a three-server cluster left every stream, durable consumer and KV bucket with
 * one copy; the next watcher, with the default `auto`, must move all of them to three (NATS copies
 * the data while they stay in use). docs/deploy.md says it does; the three-server failure test
 * (nats-cluster.test.ts) starts on an empty cluster and never sees it. And a cluster without
 * JetStream quorum keeps the watcher not ready with a message saying so, until a majority is back
 * (and the reconciler, the idle reaper and metrics, which bind to what it declared, say the same);
 * so does a stream that exists with a setting NATS will not change, the message naming it.
 */

let namespace: string;
let cluster: NatsCluster;
let nc: NatsConnection;
let jsm: JetStreamManager;
const services: ServiceProcess[] = [];

function start(service: string, extra: Record<string, string> = {}): ServiceProcess {
  const process = new ServiceProcess(service, {
    ...cluster.as(service),
    WATCH_NAMESPACE: namespace,
    ...extra,
  });
  services.push(process);
  return process;
}

function watcher(extra: Record<string, string> = {}): ServiceProcess {
  return start('watcher', extra);
}

/** The reasons of a service's checks that are not ready, by check, and its /readyz status. */
async function notReady(
  service: ServiceProcess,
): Promise<{ status: number; reasons: Record<string, string> }> {
  const { status, body } = await service.get('/readyz');
  const checks = JSON.parse(body).checks as Record<string, { ok: boolean; reason: string }>;
  const reasons: Record<string, string> = {};
  for (const [name, check] of Object.entries(checks)) if (!check.ok) reasons[name] = check.reason;
  return { status, reasons };
}

/** Every stream's replica count, and every durable consumer's, by name (`stream` or `stream/consumer`). */
async function replicaCounts(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for await (const stream of jsm.streams.list()) {
    counts[stream.config.name] = stream.config.num_replicas;
    for await (const consumer of jsm.consumers.list(stream.config.name))
      if (consumer.config.durable_name)
        counts[`${stream.config.name}/${consumer.config.durable_name}`] = consumer.config.num_replicas ?? 0;
  }
  return counts;
}

/**
 * The replica count of each of `names`, each asked for by itself: while streams move to new
 * servers a listing can leave out one whose leader is being elected (seen here once).
 */
async function replicaCountsOf(names: string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const name of names) {
    const [stream, consumer] = name.split('/') as [string, string | undefined];
    counts[name] = consumer
      ? ((await jsm.consumers.info(stream, consumer)).config.num_replicas ?? 0)
      : (await jsm.streams.info(stream)).config.num_replicas;
  }
  return counts;
}

beforeAll(async () => {
  await installCrds();
  // A cluster of this file's own: a watcher with NATS_REPLICAS=1 moves every stream it finds to one copy.
  [namespace, cluster] = await Promise.all([createNamespace('nats-replicas'), startNatsCluster(3)]);
  nc = await cluster.admin();
  jsm = await jetstreamManager(nc);
}, 120_000);

afterAll(async () => {
  await Promise.all(services.map((w) => w.kill()));
  await nc?.close();
  await cluster?.dispose();
  if (namespace) await deleteNamespace(namespace);
});

describe('a topology that exists with another replica count', () => {
  it('is moved to three replicas by a watcher with NATS_REPLICAS=auto on a cluster', async () => {
    const single = watcher({ NATS_REPLICAS: '1' });
    await single.waitReady(90_000);
    const before = await replicaCounts();
    // The streams, the KV buckets' streams, and the durable consumers (work partitions, command executor).
    expect(Object.keys(before).length).toBeGreaterThanOrEqual(7 + 2);
    expect(Object.entries(before).filter(([, n]) => n !== 1)).toEqual([]);
    await single.kill();

    const auto = watcher();
    await auto.waitReady(90_000);
    expect((await Scrape.of(auto)).value('streamspace_watcher_jetstream_replicas')).toBe(3);
    // The copies are real: every stream has a leader and two current replicas.
    await cluster.waitCurrent(jsm);
    const after = await replicaCountsOf(Object.keys(before));
    expect(Object.entries(after).filter(([, n]) => n !== 3)).toEqual([]);
  }, 240_000);

  it('keeps a watcher and the services that bind to its topology not ready while the cluster has no JetStream quorum, saying so, and ready once it has', async () => {
    await Promise.all(services.map((w) => w.kill()));
    const [, second, third] = cluster.servers;
    if (!second || !third) throw new Error('a cluster of three was asked for');
    await second.stop();
    await third.stop();
    const alone = watcher();
    let reason = '';
    await eventually(async () => {
      const { status, body } = await alone.get('/readyz');
      expect(status).toBe(503);
      reason = JSON.parse(body).checks.jetstream?.reason ?? '';
      expect(reason).toMatch(/quorum/);
    }, 60_000);
    console.log(`[nats-replicas] without quorum the watcher says: ${reason}`);
    // The services that bind to what the watcher declared say the same where they bind, not
    // NATS's "JetStream system temporarily unavailable" alone.
    const binders = [
      start('reconciler', { INGRESS_DOMAIN: 'desktops.test' }),
      start('idle-reaper'),
      start('metrics'),
    ];
    for (const service of binders) {
      let reasons: Record<string, string> = {};
      await eventually(async () => {
        const answer = await notReady(service);
        reasons = answer.reasons;
        expect(answer.status).toBe(503);
        expect(
          Object.values(reasons).some((r) => /no JetStream quorum/.test(r)),
          JSON.stringify(reasons),
        ).toBe(true);
      }, 60_000);
      console.log(`[nats-replicas] without quorum the ${service.service} says: ${JSON.stringify(reasons)}`);
    }
    await second.start();
    await third.start();
    await Promise.all([alone, ...binders].map((service) => service.waitReady(90_000)));
  }, 300_000);
});

describe('a stream that exists with settings NATS will not change', () => {
  it('keeps the watcher not ready, naming the stream and what to do', async () => {
    const single = await startRestartableNats();
    const admin = await connect({ servers: single.url });
    try {
      // The work stream as a release before work queues, or a person, might have made it.
      const manager = await jetstreamManager(admin);
      await manager.streams.add({
        name: STREAMS.work,
        subjects: [subjects.workAll],
        retention: RetentionPolicy.Limits,
      });
      const refused = watcher({ NATS_URL: single.url, NATS_USER: '', NATS_PASSWORD: '' });
      await eventually(async () => {
        const { status, body } = await refused.get('/readyz');
        expect(status).toBe(503);
        expect(JSON.parse(body).checks.jetstream?.reason).toMatch(
          /the stream STREAMSPACE_WORK exists with settings NATS will not change.*nats stream rm STREAMSPACE_WORK/,
        );
      }, 60_000);
      // Nothing was changed behind the operator's back.
      expect((await manager.streams.info(STREAMS.work)).config.retention).toBe(RetentionPolicy.Limits);
    } finally {
      await admin.close();
      await single.dispose();
    }
  }, 120_000);
});
