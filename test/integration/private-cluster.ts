import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { eventually, repo } from './harness.js';

const run = promisify(execFile);

/**
 * A control plane of a test's own (a second kwokctl cluster with its own name and work dir, from
 * the same cached binaries as scripts/cluster), for tests that restart kube-apiserver and so must
 * never touch the shared cluster.
 */
export interface PrivateCluster {
  name: string;
  workdir: string;
  kubeconfig: string;
  /** Env for child processes (kubectl, services) that should talk to this cluster. */
  env: NodeJS.ProcessEnv;
  kubectl(args: string[], input?: string): Promise<{ stdout: string; stderr: string; code: number }>;
  /** SIGKILL kube-apiserver and start it again with the same command line, log and pid file. */
  restartApiserver(): Promise<void>;
  /** `kwokctl delete cluster` and remove the work dir. */
  delete(): Promise<void>;
}

function toolchain(...args: string[]): string {
  return execFileSync(`${repo}/scripts/toolchain`, args, { encoding: 'utf8' }).trim();
}

/** The same kwokctl configuration scripts/cluster writes (binaries, stages, scheduler config). */
function kwokctlConfig(): string {
  const versions = readFileSync(`${repo}/scripts/versions.env`, 'utf8');
  const kubeVersion = /^KUBE_VERSION=(\S+)/m.exec(versions)?.[1] ?? '';
  const k = toolchain('path', 'kubernetes');
  const e = toolchain('path', 'etcd');
  const w = toolchain('path', 'kwok');
  let text = `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeVersion: ${kubeVersion}
  kubeApiserverBinary: ${k}/kube-apiserver
  kubeControllerManagerBinary: ${k}/kube-controller-manager
  kubeSchedulerBinary: ${k}/kube-scheduler
  kubectlBinary: ${k}/kubectl
  kwokControllerBinary: ${w}/kwok
  etcdBinary: ${e}/etcd
  disableQPSLimits: true
  kubeSchedulerConfig: ${repo}/scripts/kwok/kube-scheduler-config.yaml
`;
  const stages = toolchain('kwok-stages');
  for (const file of readdirSync(stages).filter((f) => f.endsWith('.yaml'))) {
    let body = readFileSync(join(stages, file), 'utf8');
    if (basename(file) === 'pod-ready.yaml') {
      body = body.replace(
        /^( {4}matchExpressions:\n)/m,
        "$1    - key: '.spec.containers.[0].image'\n      operator: 'NotIn'\n      values: ['streamspace.invalid/never-starts:latest']\n",
      );
    }
    text += `---\n${body}`;
  }
  text += `---\n${readFileSync(`${repo}/scripts/kwok/image-pull-failure-stage.yaml`, 'utf8')}`;
  return text;
}

export async function startPrivateCluster(prefix = 'chaos', nodes = 2): Promise<PrivateCluster> {
  const name = `${prefix}-${process.pid}`;
  const workdir = mkdtempSync(join(tmpdir(), `streamspace-${prefix}-`));
  const bins = ['kubernetes', 'etcd', 'kwok'].map((t) => toolchain('path', t)).join(':');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KWOK_WORKDIR: workdir,
    PATH: `${bins}:${process.env.PATH ?? ''}`,
  };
  const configFile = join(workdir, 'kwokctl.yaml');
  writeFileSync(configFile, kwokctlConfig());
  const clusterDir = join(workdir, 'clusters', name);
  const kubeconfig = join(clusterDir, 'kubeconfig.yaml');
  env.KUBECONFIG = kubeconfig;

  const kwokctl = (args: string[]) => run('kwokctl', args, { env, maxBuffer: 16 << 20 });
  await kwokctl([
    '--config',
    configFile,
    'create',
    'cluster',
    '--name',
    name,
    '--kubeconfig',
    '',
    '--wait',
    '3m',
  ]);
  await kwokctl(['scale', 'node', '--name', name, '--replicas', String(nodes)]);

  const kubectl = (args: string[], input?: string) =>
    new Promise<{ stdout: string; stderr: string; code: number }>((resolve) => {
      const child = spawn('kubectl', ['--kubeconfig', kubeconfig, ...args], { env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => {
        stdout += d;
      });
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      child.on('close', (code) => resolve({ stdout, stderr, code: code ?? -1 }));
      child.stdin.end(input ?? '');
    });

  await eventually(
    async () => {
      const r = await kubectl(['wait', '--for=condition=Ready', 'node', '--all', '--timeout=5s']);
      if (r.code !== 0) throw new Error(r.stderr);
    },
    120_000,
    500,
  );

  const pidFile = join(clusterDir, 'pids', 'kube-apiserver.pid');
  return {
    name,
    workdir,
    kubeconfig,
    env,
    kubectl,
    async restartApiserver() {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      process.kill(pid, 'SIGKILL');
      await eventually(
        () => {
          let alive = true;
          try {
            process.kill(pid, 0);
          } catch {
            alive = false;
          }
          if (alive) throw new Error('kube-apiserver still alive');
        },
        10_000,
        50,
      );
      const log = openSync(join(clusterDir, 'logs', 'kube-apiserver.log'), 'a');
      const child: ChildProcess = spawn(argv[0] as string, argv.slice(1), {
        cwd: clusterDir,
        detached: true,
        stdio: ['ignore', log, log],
      });
      closeSync(log);
      child.unref();
      writeFileSync(pidFile, String(child.pid));
      await eventually(
        async () => {
          const r = await kubectl(['get', '--raw', '/readyz']);
          if (r.code !== 0) throw new Error(`kube-apiserver not ready: ${r.stderr}`);
        },
        60_000,
        250,
      );
    },
    async delete() {
      await kwokctl(['delete', 'cluster', '--name', name]).catch(() => undefined);
      rmSync(workdir, { recursive: true, force: true });
    },
  };
}
