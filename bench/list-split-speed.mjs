// A list page of 500 Pod-like objects read whole (its chunks joined, one JSON.parse) against item by
// item as it arrives (ListItemSplitter, one JSON.parse per item): milliseconds per page (BENCHMARKS.md,
// U1-U12). Run after `pnpm run build`: node bench/list-split-speed.mjs
import { ListItemSplitter } from '../packages/kube/dist/list-items.js';

const pod = (i) => ({
  metadata: {
    name: `bench-${i}-x7k2p`,
    namespace: 'bench-a',
    uid: '8f1c0c7e-3d1b-4f55-9a0e-2c6f1d1e5b7a',
    resourceVersion: String(100000 + i),
    labels: { app: 'streamspace', 'streamspace.io/session': `bench-${i}` },
    annotations: { note: JSON.stringify({ a: 'b "q" \\ x' }) },
    managedFields: Array.from({ length: 4 }, (_, k) => ({
      manager: `m${k}`,
      operation: 'Update',
      apiVersion: 'v1',
      time: '2026-12-01T00:00:00Z',
      fieldsType: 'FieldsV1',
      fieldsV1: { 'f:spec': { 'f:containers': { 'k:{"name":"desktop"}': { '.': {}, 'f:image': {} } } } },
    })),
  },
  spec: { containers: [{ name: 'desktop', image: 'lscr.io/linuxserver/firefox:latest', ports: [{ containerPort: 3000 }] }] },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }], podIP: '10.0.0.1' },
});
const text = JSON.stringify({
  kind: 'PodList',
  apiVersion: 'v1',
  metadata: { resourceVersion: '1', continue: 'abc' },
  items: Array.from({ length: 500 }, (_, i) => pod(i)),
});
const chunks = [];
for (let i = 0; i < text.length; i += 16384) chunks.push(text.slice(i, i + 16384));
const whole = () => {
  let joined = '';
  for (const chunk of chunks) joined += chunk;
  return JSON.parse(joined).items.length;
};
const split = () => {
  let n = 0;
  const splitter = new ListItemSplitter((json) => {
    JSON.parse(json);
    n++;
  });
  for (const chunk of chunks) splitter.write(chunk);
  JSON.parse(splitter.end());
  return n;
};
console.log(`page: ${text.length} bytes, 500 items`);
for (const [name, read] of [['whole', whole], ['item by item', split], ['whole', whole], ['item by item', split]]) {
  const start = performance.now();
  for (let round = 0; round < 20; round++) read();
  console.log(`${name}: ${((performance.now() - start) / 20).toFixed(2)} ms a page`);
}
