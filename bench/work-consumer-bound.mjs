// How many keys one reconciler holds while a resync replaces the items it holds: a nats-server of
// its own (scripts/toolchain's), the real WorkConsumer over the eight work partitions, a reconcile
// that takes 100 ms, 800 keys published, then republished twice while the worker works (as the
// watcher's periodic resync does). Prints the most keys the worker held at once (waiting or being
// reconciled, sampled every 5 ms), per partition and in all, and what the partitions still hold
// at the end (pnpm run build first):
//
//   node bench/work-consumer-bound.mjs [port]
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Registry } from 'prom-client';
import { startOwnNatsServer } from './own-nats-server.mjs';

const repo = new URL('..', import.meta.url).pathname;
const shared = await import(`${repo}packages/shared/dist/index.js`);
const { WorkConsumer } = await import(`${repo}services/reconciler/dist/work-consumer.js`);

const port = Number(process.argv[2] ?? 17588);
const KEYS = 800;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const nats = await startOwnNatsServer(port, 'work-consumer-bound');
const { nc } = nats;
await shared.ensureStreams(nc);
const jsm = await jetstreamManager(nc);
await shared.ensureWorkConsumers(jsm);
const work = await shared.bindWorkPartitions(nc);
const js = jetstream(nc);

const reconciled = new Set();
const consumer = new WorkConsumer({
  nc,
  js,
  jsm,
  work,
  log: shared.createLogger('work-consumer-bound', 'error'),
  registry: new Registry(),
  workerId: 'bench',
  concurrency: 8,
  maxAttempts: 5,
  reconcile: async (item) => {
    reconciled.add(item.name);
    await sleep(100);
    return {};
  },
  onDeadLetter: async () => undefined,
});
// The queue is private: a bench may look inside.
const queue = consumer.queue;
let heldAtMost = 0;
let heldOfPartitionAtMost = 0;
const sampler = setInterval(() => {
  const byPartition = new Map();
  for (const { partition } of [...queue.dirty.values(), ...queue.processing.values()])
    byPartition.set(partition, (byPartition.get(partition) ?? 0) + 1);
  const keys = new Set([...queue.dirty.keys(), ...queue.processing.keys()]).size;
  heldAtMost = Math.max(heldAtMost, keys);
  heldOfPartitionAtMost = Math.max(heldOfPartitionAtMost, ...byPartition.values(), 0);
}, 5);
void consumer.run();

const publishAll = async (reason) => {
  for (let i = 0; i < KEYS; i++)
    await js.publish(
      shared.subjects.work('session', 'bench', `s-${i}`, work.partitions),
      JSON.stringify({ kind: 'session', namespace: 'bench', name: `s-${i}`, reason }),
    );
};
await publishAll('change');
await sleep(1_500);
await publishAll('resync');
await sleep(1_500);
await publishAll('resync');
for (const deadline = Date.now() + 60_000; reconciled.size < KEYS && Date.now() < deadline; ) await sleep(200);
await sleep(3_000);
const left = await Promise.all(
  work.consumers.map(async (_, p) => {
    const info = await jsm.consumers.info(shared.STREAMS.work, shared.workConsumerName(p));
    return info.num_pending + info.num_ack_pending;
  }),
);
clearInterval(sampler);
console.log(
  JSON.stringify({
    keys: KEYS,
    reconciledKeys: reconciled.size,
    heldAtMost,
    heldOfOnePartitionAtMost: heldOfPartitionAtMost,
    itemsLeftInPartitions: left.reduce((a, b) => a + b, 0),
  }),
);
await consumer.stop(2_000);
await nats.stop();
process.exit(0);
