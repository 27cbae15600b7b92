// The activity agent's footprint (BENCHMARKS.md, "Activity agent"): the built agent
// (services/activity-agent/dist, `pnpm run build` first) runs with the chart's V8 flags and its
// default intervals, watching a stand-in desktop port that N real TCP clients stay connected to,
// and reporting to a stand-in reaper that answers 202. RSS and CPU come from /proc/<pid>.
//
//   node bench/activity-agent.mjs [clients=1,10] [seconds=120]
//   AGENT_NODE_ARGS='...' node bench/activity-agent.mjs   other V8 flags than the chart's
//
// What Kubernetes counts against the container (its memory cgroup: the working set that
// `kubectl top` shows and limits act on) is not the RSS: the ~34 MiB of the `node` binary's pages
// a process maps are page cache, charged to the cgroup that first read them. To measure it, run
// the agent in a memory cgroup of its own (root; cgroup v1 or v2):
//   AGENT_CGROUP=/sys/fs/cgroup/memory/<parent> node bench/activity-agent.mjs
//   AGENT_COLD=1      ... on a fresh copy of `node` whose pages are in no cache yet: the first
//                     desktop on a node, which pays for reading the binary
//   AGENT_MEMORY_LIMIT=40000000   ... under a memory limit (bytes), as a container limit would
//
// As a pod's containers see it (a network namespace of its own, its socket tables nearly empty):
//   unshare -rn sh -c 'ip link set lo up && node bench/activity-agent.mjs'
//
// Needs no cluster: what the agent costs does not depend on what the reaper does with a report.
import { execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { procCpuSeconds, procStatus } from './process-cost.mjs';

const repo = fileURLToPath(new URL('..', import.meta.url));
const counts = (process.argv[2] ?? '1,10').split(',').map(Number);
const seconds = Number(process.argv[3] ?? 120);
const values = parse(readFileSync(`${repo}/deploy/helm/streamspace/values.yaml`, 'utf8'));
const nodeArgs = (process.env.AGENT_NODE_ARGS ?? values.activityAgent.nodeArgs).split(' ').filter(Boolean);
const cgroupParent = process.env.AGENT_CGROUP;
const memoryLimit = process.env.AGENT_MEMORY_LIMIT;
const cold = process.env.AGENT_COLD === '1';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const cpuSeconds = procCpuSeconds;

function memory(pid) {
  return { rss: procStatus(pid, 'VmRSS'), anon: procStatus(pid, 'RssAnon'), file: procStatus(pid, 'RssFile') };
}

const mib = (bytes) => (bytes / 1024 / 1024).toFixed(1);

/** A memory cgroup for one agent; v1 (memory.usage_in_bytes) and v2 (memory.current) alike. */
function makeCgroup(clients) {
  const dir = join(cgroupParent, `agent-bench-${process.pid}-${clients}`);
  mkdirSync(dir);
  const v1 = existsSync(join(dir, 'memory.usage_in_bytes'));
  if (memoryLimit) writeFileSync(join(dir, v1 ? 'memory.limit_in_bytes' : 'memory.max'), memoryLimit);
  const read = (file) => readFileSync(join(dir, file), 'utf8');
  const stat = () =>
    Object.fromEntries(
      read('memory.stat')
        .trim()
        .split('\n')
        .map((l) => l.split(' ')),
    );
  return {
    dir,
    /** usage, and the working set as the kubelet computes it: usage minus inactive page cache. */
    memory() {
      const usage = Number(read(v1 ? 'memory.usage_in_bytes' : 'memory.current'));
      const s = stat();
      const inactiveFile = Number(v1 ? s.total_inactive_file : s.inactive_file);
      return { usage, workingSet: usage - inactiveFile, anon: Number(v1 ? s.total_rss : s.anon) };
    },
    failures: () =>
      v1 ? Number(read('memory.failcnt')) : Number(/max (\d+)/.exec(read('memory.events'))?.[1]),
    remove: () => rmdirSync(dir),
  };
}

async function run(clients) {
  const work = mkdtempSync(join(tmpdir(), 'agent-bench-'));
  writeFileSync(join(work, 'token'), 'v1.bench');
  let reports = 0;
  const reaper = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => {
      reports++;
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"result":"accepted"}');
    });
  });
  await new Promise((r) => reaper.listen(0, '127.0.0.1', r));
  const desktop = createServer((socket) => socket.on('error', () => undefined));
  await new Promise((r) => desktop.listen(0, '127.0.0.1', r));
  const sockets = [];
  for (let i = 0; i < clients; i++) {
    const socket = connect(desktop.address().port, '127.0.0.1');
    socket.on('error', () => undefined);
    sockets.push(socket);
  }
  let nodeBinary = process.execPath;
  if (cold) {
    // A new inode, and its pages dropped from the page cache: nothing else has read this binary.
    nodeBinary = join(work, 'node');
    copyFileSync(process.execPath, nodeBinary, 0);
    execFileSync('chmod', ['+x', nodeBinary]);
    execFileSync('sync');
    execFileSync('dd', [`if=${nodeBinary}`, 'iflag=nocache', 'count=0', 'status=none']);
  }
  const cgroup = cgroupParent ? makeCgroup(clients) : undefined;
  const command = [nodeBinary, ...nodeArgs, `${repo}/services/activity-agent/dist/main.js`];
  // In its cgroup before it runs a single instruction: a shell joins it, then execs node.
  const argv = cgroup
    ? ['sh', ['-c', `echo $$ > ${cgroup.dir}/cgroup.procs && exec "$@"`, 'sh', ...command]]
    : [command[0], command.slice(1)];
  const agent = spawn(argv[0], argv[1], {
    env: {
      STREAMSPACE_NAMESPACE: 'bench',
      STREAMSPACE_SESSION: 'bench',
      DESKTOP_PORT: String(desktop.address().port),
      ACTIVITY_URL: `http://127.0.0.1:${reaper.address().port}/activity`,
      ACTIVITY_TOKEN_FILE: join(work, 'token'),
    },
    stdio: 'ignore',
  });
  // Past start-up (module loading, the first reports), then the steady state.
  await sleep(10_000);
  const cpu0 = cpuSeconds(agent.pid);
  const reports0 = reports;
  let peak = memory(agent.pid);
  const samples = [];
  const charged = [];
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const m = memory(agent.pid);
    samples.push(m.rss);
    if (m.rss > peak.rss) peak = m;
    if (cgroup) charged.push(cgroup.memory());
    await sleep(1_000);
  }
  const cpu = cpuSeconds(agent.pid) - cpu0;
  const last = memory(agent.pid);
  const alive = agent.exitCode === null && agent.signalCode === null;
  agent.kill('SIGTERM');
  await new Promise((r) => (alive ? agent.once('exit', r) : r()));
  let cgroupFigures = {};
  if (cgroup) {
    const range = (pick) => `${mib(Math.min(...charged.map(pick)))}–${mib(Math.max(...charged.map(pick)))}`;
    cgroupFigures = {
      cgroupWorkingSetMiB: range((c) => c.workingSet),
      cgroupUsageMiB: range((c) => c.usage),
      cgroupAnonMiB: range((c) => c.anon),
      cgroupLimitHits: cgroup.failures(),
      ...(memoryLimit ? { memoryLimit: Number(memoryLimit) } : {}),
    };
    cgroup.remove();
  }
  for (const s of sockets) s.destroy();
  desktop.close();
  reaper.close();
  rmSync(work, { recursive: true, force: true });
  const sockets4 = readFileSync('/proc/net/tcp', 'utf8').split('\n').length - 2;
  return {
    clients,
    seconds,
    rssMiB: `${mib(Math.min(...samples))}–${mib(peak.rss)}`,
    anonMiB: mib(last.anon),
    fileMiB: mib(last.file),
    cpuMillicores: ((cpu / seconds) * 1000).toFixed(2),
    reports: reports - reports0,
    socketsInTable: sockets4,
    alive,
    ...(cold ? { coldBinary: true } : {}),
    ...cgroupFigures,
  };
}

for (const clients of counts)
  console.log(JSON.stringify({ nodeArgs: nodeArgs.join(' '), ...(await run(clients)) }));
