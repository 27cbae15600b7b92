// What loading modules costs a Node process before it does anything: imports each module named
// (resolved from the working directory, as the service there would), collects garbage, and
// prints the resident memory split into anonymous pages (V8's heap, malloc) and file pages (the
// node binary's, mostly), with V8's heap. Run it from a service's directory with the chart's
// NODE_OPTIONS, one module set at a time (a second import of a module costs nothing):
//
//   cd services/reconciler
//   NODE_OPTIONS='--max-old-space-size=64 --max-semi-space-size=2' node --expose-gc ../../bench/module-memory.mjs zod
//   (no module: the bare process; several: their sum; ./dist/kube-writer.js: our own modules)
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';

const resolve = createRequire(`${process.cwd()}/`).resolve;
for (const name of process.argv.slice(2)) await import(pathToFileURL(resolve(name)).href);
// Let module evaluation's own timers and promises settle before measuring.
await new Promise((r) => setTimeout(r, 300));
globalThis.gc?.();

const rollup = readFileSync('/proc/self/smaps_rollup', 'utf8');
const kib = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
const heap = v8.getHeapStatistics();
console.log(
  `${process.argv.slice(2).join(' ') || '(nothing)'}: rss ${mib(kib('Rss') * 1024)} MiB = anon ${mib(kib('Anonymous') * 1024)}` +
    ` + file ${mib((kib('Rss') - kib('Anonymous')) * 1024)}; V8 heap ${mib(heap.total_heap_size)} MiB committed,` +
    ` ${mib(heap.used_heap_size)} used`,
);
