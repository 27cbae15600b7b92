import { execFile, execFileSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { repo } from './harness.js';

/** The chart, and the helm binary built from the Go module proxy like the control plane's binaries. */
export const chartDir = `${repo}/deploy/helm/streamspace`;

let binary: string | undefined;

/** Builds helm on first use (a cached no-op afterwards) and returns its path. */
export function helmBinary(): string {
  if (!binary) {
    execFileSync(`${repo}/scripts/toolchain`, ['build', 'helm'], { stdio: ['ignore', 'inherit', 'inherit'] });
    binary = `${execFileSync(`${repo}/scripts/toolchain`, ['path', 'helm'], { encoding: 'utf8' }).trim()}/helm`;
  }
  return binary;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(command, args, { env, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ stdout: String(stdout), stderr: String(stderr), code });
    });
  });
}

export async function helm(args: string[]): Promise<RunResult> {
  // Helm keeps its own caches and config under HOME; keep them out of the user's.
  return run(helmBinary(), args, {
    ...process.env,
    HELM_CACHE_HOME: `${repo}/.streamspace-test/helm/cache`,
    HELM_CONFIG_HOME: `${repo}/.streamspace-test/helm/config`,
    HELM_DATA_HOME: `${repo}/.streamspace-test/helm/data`,
  });
}

/** helm (or kubectl) must succeed; the error carries its stderr. */
export function ok(result: RunResult, what: string): string {
  if (result.code !== 0)
    throw new Error(
      `${what} failed (exit ${result.code}):\n${result.stderr}\n${result.stdout.slice(0, 2000)}`,
    );
  return result.stdout;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests are checked field by field
  spec?: any;
  // biome-ignore lint/suspicious/noExplicitAny: as above
  [key: string]: any;
}

/** The objects of a multi-document YAML stream (empty documents dropped). */
export function objects(yamlText: string): K8sObject[] {
  return parseAllDocuments(yamlText)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null && typeof o === 'object' && 'kind' in o);
}

/**
 * What every rendering here starts from: the Secret of each service's NATS password, as an
 * operator sets it (without any NATS authentication the chart refuses to render).
 */
export const NATS_AUTH_VALUES = 'nats.auth.existingSecret=streamspace-nats-users';

export async function template(values: string[] = [], extra: string[] = []): Promise<K8sObject[]> {
  const args = ['template', 'ss', chartDir, '--namespace', 'streamspace', ...extra];
  for (const v of [NATS_AUTH_VALUES, ...values]) args.push('--set', v);
  return objects(ok(await helm(args), `helm template ${values.join(' ')}`));
}

export function find(list: K8sObject[], kind: string, nameEndsWith: string): K8sObject {
  const found = list.find((o) => o.kind === kind && o.metadata.name.endsWith(nameEndsWith));
  if (!found)
    throw new Error(
      `no ${kind} named *${nameEndsWith} among ${list.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`,
    );
  return found;
}

export const COMPONENTS = ['watcher', 'reconciler', 'idle-reaper', 'metrics'] as const;
