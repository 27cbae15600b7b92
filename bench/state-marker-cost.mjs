// What delete markers under a Session's pods' filter cost one reconcile's read of the shared state:
// the batched direct get of its five keys and its pods' filter (directReads, as a worker reads),
// with k markers of earlier pods beside the live one, against a real nats-server. Before the
// markers expired (STATE_DELETE_MARKER_TTL), every hibernate and wake left one for good.
//
//   NATS_URL=nats://127.0.0.1:4222 node bench/state-marker-cost.mjs   (pnpm run build first)
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';

const repo = new URL('..', import.meta.url).pathname;
const { directReads } = await import(`${repo}packages/shared/dist/shared-state.js`);
const nc = await connect({ servers: process.env.NATS_URL ?? 'nats://127.0.0.1:4222' });
const jsm = await jetstreamManager(nc);
const bucket = `marker-cost-${process.pid}`;
const kv = await new Kvm(nc).create(bucket, { history: 1 });
const body = JSON.stringify({ metadata: { name: 'x', namespace: 'ns' }, pad: 'p'.repeat(900) });
const reads = directReads(kv, jsm, bucket);
const KINDS = ['session', 'deployment', 'service', 'ingress', 'networkpolicy'];
try {
  for (const markers of [0, 10, 100, 365]) {
    const session = `s${markers}`;
    for (const kind of KINDS) await kv.put(`${kind}.ns.${session}`, body);
    for (let i = 0; i < markers; i++) {
      await kv.put(`pod.ns.${session}.p${i}`, body);
      await kv.delete(`pod.ns.${session}.p${i}`);
    }
    await kv.put(`pod.ns.${session}.live`, body);
    const filters = [...KINDS.map((kind) => `${kind}.ns.${session}`), `pod.ns.${session}.>`];
    for (let i = 0; i < 50; i++) await reads.entries(filters);
    const n = 300;
    const cpu = process.cpuUsage();
    const start = performance.now();
    let entries = 0;
    for (let i = 0; i < n; i++) entries = (await reads.entries(filters)).length;
    const used = process.cpuUsage(cpu);
    console.log(
      JSON.stringify({
        markers,
        entries,
        msPerRead: Number(((performance.now() - start) / n).toFixed(3)),
        clientCpuMsPerRead: Number(((used.user + used.system) / 1000 / n).toFixed(3)),
      }),
    );
  }
} finally {
  await jsm.streams.delete(`KV_${bucket}`);
  await nc.close();
}
