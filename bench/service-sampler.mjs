// Samples the StreamSpace services a bench started from this checkout, beside the bench, until
// stopped (SIGINT/SIGTERM), then prints each one's peaks as JSON:
//
//   node bench/service-sampler.mjs [interval-ms] > sampler.json &
//
// Every interval: each service process's VmRSS and VmHWM (/proc, whole process, kB), and from its
// /metrics the reconcilers' streamspace_reconciler_queued_keys and in-flight reconciles, and the
// V8 heap figures every service exports (nodejs_heap_size_used_bytes, nodejs_heap_size_total_bytes).
// Processes are found by their command line (services/<name>/dist/main.js under this checkout),
// their HTTP port by their listening socket.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { normalize } from 'node:path';
import { procStatus } from './process-cost.mjs';

const repo = new URL('..', import.meta.url).pathname;
const intervalMs = Number(process.argv[2] ?? 2_000);

function services() {
  const found = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmdline;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    // The harness names the script `${repo}/services/…` with its repo ending in a slash: normalise.
    const main = cmdline
      .map((arg) => normalize(arg))
      .find((arg) => arg.startsWith(`${repo}services/`) && arg.endsWith('/dist/main.js'));
    if (main) found.push({ pid: Number(pid), service: main.slice(`${repo}services/`.length).split('/')[0] });
  }
  return found;
}

/** Listening TCP ports by pid, from `ss -ltnpH`. */
function ports() {
  const byPid = new Map();
  const out = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' });
  for (const line of out.split('\n')) {
    const port = /:(\d+)\s/.exec(line)?.[1];
    for (const match of line.matchAll(/pid=(\d+)/g)) {
      const pid = Number(match[1]);
      byPid.set(pid, [...(byPid.get(pid) ?? []), Number(port)]);
    }
  }
  return byPid;
}

function status(pid) {
  return { rssKb: procStatus(pid, 'VmRSS') / 1024, hwmKb: procStatus(pid, 'VmHWM') / 1024 };
}

const WANTED = [
  'streamspace_reconciler_queued_keys',
  'streamspace_reconciler_in_flight',
  'nodejs_heap_size_used_bytes',
  'nodejs_heap_size_total_bytes',
];

async function scrape(port) {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2_000) });
  if (!response.ok) return undefined;
  const figures = {};
  for (const line of (await response.text()).split('\n')) {
    const [name, value] = line.split(' ');
    if (WANTED.includes(name)) figures[name] = Number(value);
  }
  return figures;
}

/** Per process: the highest of each figure, and when. */
const peaks = new Map();
let samples = 0;
function record(key, figures) {
  const peak = peaks.get(key) ?? {};
  for (const [name, value] of Object.entries(figures))
    if (!(name in peak) || value > peak[name].value) peak[name] = { value, at: new Date().toISOString() };
  peaks.set(key, peak);
}

let stopping = false;
const finish = () => {
  stopping = true;
  const report = {};
  for (const [key, peak] of peaks) report[key] = Object.fromEntries(Object.entries(peak).map(([n, p]) => [n, p]));
  console.log(JSON.stringify({ samples, intervalMs, peaks: report }, null, 1));
  process.exit(0);
};
process.on('SIGINT', finish);
process.on('SIGTERM', finish);

while (!stopping) {
  const started = performance.now();
  const listening = ports();
  await Promise.all(
    services().map(async ({ pid, service }) => {
      const key = `${service}-${pid}`;
      try {
        const figures = { ...status(pid) };
        for (const port of listening.get(pid) ?? []) {
          const scraped = await scrape(port).catch(() => undefined);
          if (scraped) Object.assign(figures, scraped);
        }
        record(key, figures);
      } catch {
        // It exited between the listing and the read.
      }
    }),
  );
  samples++;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, intervalMs - (performance.now() - started))));
}
