import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { type ExecConfig, ExecCredentialPlugin } from './exec-credential.js';

/** A bearer token read again when it may have changed. */
export interface TokenSource {
  get(): string | undefined;
  /** The API server refused the token (401): read it again on the next request. */
  invalidate(): void;
}

/** How to reach and authenticate to one API server. */
export interface Credentials {
  server: URL;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecure?: boolean;
  tlsServerName?: string;
  token?: TokenSource;
  basic?: string;
  exec?: ExecCredentialPlugin;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Projected service-account tokens rotate (the kubelet rewrites the file well before expiry); a minute-old copy is still valid. */
const TOKEN_FILE_REREAD_MS = 60_000;

export function tokenFile(path: string, now: () => number = Date.now): TokenSource {
  let value = '';
  let readAt = Number.NEGATIVE_INFINITY;
  return {
    get() {
      if (now() - readAt >= TOKEN_FILE_REREAD_MS) {
        value = readFileSync(path, 'utf8').trim();
        readAt = now();
      }
      return value;
    },
    invalidate() {
      readAt = Number.NEGATIVE_INFINITY;
    },
  };
}

const staticToken = (token: string): TokenSource => ({ get: () => token, invalidate: () => {} });

type Named<T> = { name: string } & T;
interface KubeconfigFile {
  'current-context'?: string;
  clusters?: Named<{ cluster: Record<string, unknown> }>[] | null;
  users?: Named<{ user: Record<string, unknown> }>[] | null;
  contexts?: Named<{ context: { cluster: string; user: string } }>[] | null;
}

/** An entry with the directory of the file that defined it: relative paths in it are relative to that file. */
interface Located<T> {
  value: T;
  baseDir: string;
  file: string;
}

/**
 * Every file of a KUBECONFIG list merged as kubectl merges them: the first file that sets the
 * current context, or defines a cluster, user or context of a given name, wins.
 */
export interface MergedKubeconfig {
  files: string[];
  currentContext?: string;
  clusters: Map<string, Located<Record<string, unknown>>>;
  users: Map<string, Located<Record<string, unknown>>>;
  contexts: Map<string, Located<{ cluster: string; user: string }>>;
}

/**
 * A kubeconfig file's content. JSON (which YAML contains: a JSON kubeconfig means the same read
 * either way) is read by JSON.parse; anything else by the yaml package, loaded only then, on the
 * first YAML kubeconfig. Loading it (72 modules) cost an idle watcher or worker about 1 MiB of V8
 * heap for good (BENCHMARKS.md, runs M4-M6), and a service in a pod never reads a kubeconfig: it
 * uses its service account. scripts/cluster hands out its kubeconfig as JSON for that reason. One
 * difference, for a file JSON says should not exist: a key repeated in one object is taken
 * last-wins, where yaml refuses it.
 */
export function parseKubeconfig(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // Not JSON: YAML (or neither, which yaml reports).
  }
  const { parse } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return parse(text);
}

export function kubeconfigPaths(env: NodeJS.ProcessEnv): string[] {
  if (env.KUBECONFIG) return env.KUBECONFIG.split(delimiter).filter((p) => p.length > 0);
  return [join(env.HOME ?? homedir(), '.kube', 'config')];
}

/** undefined when none of the files exists (then a pod uses its service account). */
export function readKubeconfig(paths: readonly string[]): MergedKubeconfig | undefined {
  const merged: MergedKubeconfig = { files: [], clusters: new Map(), users: new Map(), contexts: new Map() };
  for (const file of paths) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new Error(`cannot read kubeconfig ${file}: ${(error as Error).message}`);
    }
    const config = (parseKubeconfig(text) ?? {}) as KubeconfigFile;
    const baseDir = dirname(file);
    merged.files.push(file);
    merged.currentContext ??= config['current-context'] || undefined;
    for (const c of config.clusters ?? [])
      if (!merged.clusters.has(c.name))
        merged.clusters.set(c.name, { value: c.cluster ?? {}, baseDir, file });
    for (const u of config.users ?? [])
      if (!merged.users.has(u.name)) merged.users.set(u.name, { value: u.user ?? {}, baseDir, file });
    for (const c of config.contexts ?? [])
      if (!merged.contexts.has(c.name)) merged.contexts.set(c.name, { value: c.context, baseDir, file });
  }
  return merged.files.length > 0 ? merged : undefined;
}

function fileOrData(baseDir: string, file: unknown, data: unknown): Buffer | undefined {
  if (typeof data === 'string' && data) return Buffer.from(data, 'base64');
  if (typeof file === 'string' && file) return readFileSync(isAbsolute(file) ? file : join(baseDir, file));
  return undefined;
}

/** Credentials of one context of a (merged) kubeconfig; the current context unless one is named. */
export function credentialsFromKubeconfig(
  config: MergedKubeconfig,
  contextName = config.currentContext,
): Credentials {
  const where = config.files.join(delimiter);
  const name = contextName ?? config.contexts.keys().next().value;
  const context = name === undefined ? undefined : config.contexts.get(name)?.value;
  if (!context) throw new Error(`${where}: no context ${name === undefined ? 'at all' : `named '${name}'`}`);
  const cluster = config.clusters.get(context.cluster);
  if (!cluster || typeof cluster.value.server !== 'string')
    throw new Error(`${where}: cluster '${context.cluster}' has no server`);
  const user = config.users.get(context.user) ?? { value: {}, baseDir: cluster.baseDir, file: cluster.file };
  const c = cluster.value;
  const u = user.value;
  if (u['auth-provider']) {
    throw new Error(
      `${user.file}: user '${context.user}' uses an auth-provider, which Kubernetes removed; use an exec credential plugin`,
    );
  }
  const credentials: Credentials = { server: new URL(c.server as string) };
  const ca = fileOrData(cluster.baseDir, c['certificate-authority'], c['certificate-authority-data']);
  if (ca) credentials.ca = ca;
  if (c['insecure-skip-tls-verify'] === true) credentials.insecure = true;
  if (typeof c['tls-server-name'] === 'string') credentials.tlsServerName = c['tls-server-name'];
  const cert = fileOrData(user.baseDir, u['client-certificate'], u['client-certificate-data']);
  const key = fileOrData(user.baseDir, u['client-key'], u['client-key-data']);
  if (cert) credentials.cert = cert;
  if (key) credentials.key = key;
  if (typeof u.token === 'string' && u.token) credentials.token = staticToken(u.token);
  else if (typeof u.tokenFile === 'string' && u.tokenFile) {
    credentials.token = tokenFile(isAbsolute(u.tokenFile) ? u.tokenFile : join(user.baseDir, u.tokenFile));
  }
  if (typeof u.username === 'string')
    credentials.basic = Buffer.from(`${u.username}:${String(u.password ?? '')}`).toString('base64');
  if (u.exec) {
    credentials.exec = new ExecCredentialPlugin(u.exec as ExecConfig, user.baseDir, {
      server: c.server as string,
      ...(typeof c['certificate-authority-data'] === 'string'
        ? { caData: c['certificate-authority-data'] }
        : {}),
      ...(credentials.insecure ? { insecure: true } : {}),
    });
  }
  return credentials;
}

export function inClusterCredentials(env: NodeJS.ProcessEnv, dir = SERVICE_ACCOUNT_DIR): Credentials {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const bracketed = host.includes(':') ? `[${host}]` : host;
  return {
    server: new URL(`https://${bracketed}:${env.KUBERNETES_SERVICE_PORT ?? '443'}`),
    ca: readFileSync(join(dir, 'ca.crt')),
    token: tokenFile(join(dir, 'token')),
  };
}

/**
 * What kubectl would use: the KUBECONFIG list (or ~/.kube/config) when a file of it exists, else
 * the pod's service account. KUBE_CONTEXT picks a context other than the current one.
 */
export function loadCredentials(env: NodeJS.ProcessEnv = process.env): Credentials {
  const paths = kubeconfigPaths(env);
  const config = readKubeconfig(paths);
  if (config) return credentialsFromKubeconfig(config, env.KUBE_CONTEXT || undefined);
  if (env.KUBERNETES_SERVICE_HOST) return inClusterCredentials(env);
  throw new Error(
    `no Kubernetes credentials: ${paths.join(delimiter)} does not exist and this is not a pod; set KUBECONFIG (scripts/cluster env prints one for the local cluster)`,
  );
}
