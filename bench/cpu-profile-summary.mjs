// Sums a V8 .cpuprofile (node --cpu-prof) by function and by module, so two profiles of a service
// can be compared: where its CPU went, not only how much.
//
//   node bench/cpu-profile-summary.mjs <file.cpuprofile> [top=25] [inclusive]
//
// With `inclusive`, also the samples with a function (or a module) anywhere on their stack: what a
// call costs with everything it calls, each sample counted once per function however deep the
// recursion.
//
// The session-pipeline bench writes them with, for example,
//   BENCH_WATCHER_NODE_ARGS='<the chart's watcher flags> --cpu-prof --cpu-prof-dir=/tmp/prof/w'
//   BENCH_WORKER_NODE_ARGS='<the chart's reconciler flags> --cpu-prof --cpu-prof-dir=/tmp/prof/r|<flags>'
// (a profile is written when the service exits; profiling slows a service by about a third).
//
// Samples are counted (each is one tick of the sampler, ~1 ms of the thread's running time) and
// shares are of the samples that were not idle. The profile's timeDeltas are not summed: they are
// wall time, and a sample taken after the thread was descheduled (a socket write that woke its
// reader on a busy machine) carries the whole gap.
import { readFileSync } from 'node:fs';

const [file, topArg, mode] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/cpu-profile-summary.mjs <file.cpuprofile> [top]');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));

/** A module's short name: a package under node_modules, or the path below services/ or packages/. */
function moduleOf(url) {
  if (!url) return '(native)';
  const pkg = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  return url.replace(/^file:\/\//, '').replace(/.*\/((?:services|packages)\/[^/]+)\/.*\/([^/]+)$/, '$1/$2');
}
/** A frame's file: its module, and for a package the file in it. */
function fileOf(url) {
  const mod = moduleOf(url);
  return url?.includes('node_modules') ? `${mod}/${url.split('/').pop()}` : mod;
}
const frameOf = (node) =>
  `${node.callFrame.functionName || '(anonymous)'} ${fileOf(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`;

const parentOf = new Map();
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);

const byFunction = new Map();
const inclusiveFunction = new Map();
const inclusiveModule = new Map();
const byModule = new Map();
let idle = 0;
for (const id of profile.samples) {
  const node = nodes.get(id);
  if (node.callFrame.functionName === '(idle)') {
    idle++;
    continue;
  }
  const fn = frameOf(node);
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + 1);
  const mod = moduleOf(node.callFrame.url);
  byModule.set(mod, (byModule.get(mod) ?? 0) + 1);
  if (mode !== 'inclusive') continue;
  const frames = new Set();
  const modules = new Set();
  for (let at = id; at !== undefined; at = parentOf.get(at)) {
    const frame = nodes.get(at);
    if (frame.callFrame.functionName === '(root)') break;
    frames.add(frameOf(frame));
    modules.add(moduleOf(frame.callFrame.url));
  }
  for (const f of frames) inclusiveFunction.set(f, (inclusiveFunction.get(f) ?? 0) + 1);
  for (const m of modules) inclusiveModule.set(m, (inclusiveModule.get(m) ?? 0) + 1);
}
const busy = profile.samples.length - idle;
const rows = (counts) =>
  [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, n]) => `${String(n).padStart(8)} ${((100 * n) / busy).toFixed(1).padStart(5)}%  ${name}`)
    .join('\n');
console.log(
  `${file}: ${profile.samples.length} samples over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s, ${busy} not idle`,
);
console.log('--- samples by module (self)');
console.log(rows(byModule));
console.log('--- samples by function (self)');
console.log(rows(byFunction));
if (mode === 'inclusive') {
  console.log('--- samples by module (inclusive: the module anywhere on the stack)');
  console.log(rows(inclusiveModule));
  console.log('--- samples by function (inclusive)');
  console.log(rows(inclusiveFunction));
}
