// What the output buffers of zlib's one-shot calls leave resident: N bench Sessions (watcher-
// cache-samples/session.json, each with its own name) deflated as packed-session.ts deflates them
// (its dictionary aside), or inflated back three times over (three resyncs; deflated with 1 KiB
// chunks first, and the peak counted from the first inflate), with zlib's output buffer of
// <chunkSize> bytes (0: Node's default, 16 KiB). Prints the peak resident memory.
//
//   node --max-semi-space-size=1 --optimize-for-size bench/zlib-chunk-memory.mjs <deflate|inflate> <chunkSize> [sessions]
import { readFileSync } from 'node:fs';
import { deflateRawSync, inflateRawSync } from 'node:zlib';

const mode = process.argv[2] ?? 'deflate';
const chunkSize = Number(process.argv[3] ?? 0);
const n = Number(process.argv[4] ?? 10000);
const sized = chunkSize > 0 ? { chunkSize } : {};
const sample = readFileSync(new URL('watcher-cache-samples/session.json', import.meta.url), 'utf8');
const json = JSON.stringify(JSON.parse(sample));
const name = JSON.parse(sample).metadata.name;
const deflateOptions = { windowBits: 11, memLevel: 2, ...(mode === 'deflate' ? sized : { chunkSize: 1024 }) };
const inflateOptions = { windowBits: 11, ...(mode === 'inflate' ? sized : {}) };

let peak = 0;
const sample_ = () => {
  peak = Math.max(peak, process.memoryUsage().rss);
};
const packed = [];
for (let i = 0; i < n; i++) {
  packed.push(deflateRawSync(json.replaceAll(name, `bench-${i}`), deflateOptions).toString('latin1'));
  if (mode === 'deflate' && i % 100 === 0) sample_();
}
let bytes = 0;
if (mode === 'inflate') peak = 0;
if (mode === 'inflate')
  for (let round = 0; round < 3; round++)
    for (let i = 0; i < n; i++) {
      bytes += inflateRawSync(Buffer.from(packed[i], 'latin1'), inflateOptions).length;
      if (i % 100 === 0) sample_();
    }
console.log(
  `${mode}, chunkSize ${chunkSize || 'default (16384)'}: ${n} Sessions of ${json.length} bytes of JSON,`,
  `peak RSS ${(peak / 2 ** 20).toFixed(1)} MiB${bytes ? `, ${bytes} bytes inflated` : ''}`,
);
