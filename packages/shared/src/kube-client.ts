import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

/**
 * A small Kubernetes REST client: what the services need (get, list, watch, create, server-side
 * apply, merge patch, delete) over keep-alive HTTPS, with credentials from a kubeconfig or the
 * pod's service account.
 *
 * Why not @kubernetes/client-node at run time: importing it loads its whole generated API surface
 * and costs ~75 MB of resident memory before a single request, which alone breaks the 100 MB
 * per-service budget. We still use its types (erased at compile time) and use it in tests.
 */

export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    message: string,
    /** HTTP status: 404 not found, 409 conflict, 410 gone (relist), 422 invalid, … */
    readonly code: number,
    readonly reason?: string,
    readonly body?: unknown,
  ) {
    super(message);
  }
}

export const isNotFound = (error: unknown): boolean => error instanceof KubeApiError && error.code === 404;

interface Credentials {
  server: URL;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecure?: boolean;
  token?: () => string | undefined;
  basic?: string;
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

function fileOrData(base: string, file?: string, data?: string): Buffer | undefined {
  if (data) return Buffer.from(data, 'base64');
  if (file) return readFileSync(file.startsWith('/') ? file : join(base, file));
  return undefined;
}

/** Re-reads a token file at most every minute: projected service account tokens rotate. */
function rotatingToken(path: string): () => string {
  let value = '';
  let readAt = 0;
  return () => {
    if (Date.now() - readAt > 60_000) {
      value = readFileSync(path, 'utf8').trim();
      readAt = Date.now();
    }
    return value;
  };
}

type Named<T> = { name: string } & T;
interface KubeconfigFile {
  'current-context'?: string;
  clusters?: Named<{ cluster: Record<string, string | boolean | undefined> }>[];
  users?: Named<{ user: Record<string, unknown> }>[];
  contexts?: Named<{ context: { cluster: string; user: string } }>[];
}

export function loadCredentials(env: NodeJS.ProcessEnv = process.env): Credentials {
  const path = env.KUBECONFIG?.split(':')[0] || join(homedir(), '.kube', 'config');
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    text = undefined;
  }
  if (text === undefined) {
    if (env.KUBERNETES_SERVICE_HOST) {
      const host = env.KUBERNETES_SERVICE_HOST.includes(':') ? `[${env.KUBERNETES_SERVICE_HOST}]` : env.KUBERNETES_SERVICE_HOST;
      return {
        server: new URL(`https://${host}:${env.KUBERNETES_SERVICE_PORT ?? '443'}`),
        ca: readFileSync(`${SERVICE_ACCOUNT_DIR}/ca.crt`),
        token: rotatingToken(`${SERVICE_ACCOUNT_DIR}/token`),
      };
    }
    throw new Error(
      `no Kubernetes credentials: ${path} does not exist and this is not a pod; set KUBECONFIG (scripts/cluster env prints one for the local cluster)`,
    );
  }
  const base = join(path, '..');
  const config = parseYaml(text) as KubeconfigFile;
  const contextName = config['current-context'];
  const context = config.contexts?.find((c) => c.name === contextName)?.context ?? config.contexts?.[0]?.context;
  if (!context) throw new Error(`${path} has no context to use`);
  const cluster = config.clusters?.find((c) => c.name === context.cluster)?.cluster;
  const user = config.users?.find((u) => u.name === context.user)?.user ?? {};
  if (!cluster?.server) throw new Error(`${path}: cluster '${context.cluster}' has no server`);
  if (user.exec || user['auth-provider']) {
    throw new Error(`${path}: user '${context.user}' uses a credential plugin; StreamSpace services need a token or a client certificate`);
  }
  const credentials: Credentials = { server: new URL(String(cluster.server)) };
  const ca = fileOrData(base, cluster['certificate-authority'] as string | undefined, cluster['certificate-authority-data'] as string | undefined);
  if (ca) credentials.ca = ca;
  if (cluster['insecure-skip-tls-verify'] === true) credentials.insecure = true;
  const cert = fileOrData(base, user['client-certificate'] as string | undefined, user['client-certificate-data'] as string | undefined);
  const key = fileOrData(base, user['client-key'] as string | undefined, user['client-key-data'] as string | undefined);
  if (cert) credentials.cert = cert;
  if (key) credentials.key = key;
  if (typeof user.token === 'string') {
    const token = user.token;
    credentials.token = () => token;
  } else if (typeof user.tokenFile === 'string') credentials.token = rotatingToken(user.tokenFile);
  if (typeof user.username === 'string') credentials.basic = Buffer.from(`${user.username}:${String(user.password ?? '')}`).toString('base64');
  return credentials;
}

export interface ResourceRef {
  group?: string;
  version: string;
  plural: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** `/api/v1/namespaces/ns/pods/name`, `/apis/apps/v1/namespaces/ns/deployments`, … */
export function resourcePath(ref: ResourceRef): string {
  let path = ref.group ? `/apis/${ref.group}/${ref.version}` : `/api/${ref.version}`;
  if (ref.namespace) path += `/namespaces/${encodeURIComponent(ref.namespace)}`;
  path += `/${ref.plural}`;
  if (ref.name) path += `/${encodeURIComponent(ref.name)}`;
  if (ref.subresource) path += `/${ref.subresource}`;
  return path;
}

export interface KubeList<T> {
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

type Query = Record<string, string | number | boolean | undefined>;

export class KubeClient {
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;

  constructor(
    private readonly credentials: Credentials,
    private readonly timeoutMs = 30_000,
  ) {
    const tls = credentials.server.protocol === 'https:';
    this.transport = tls ? https : http;
    this.agent = tls
      ? new https.Agent({
          keepAlive: true,
          maxSockets: 64,
          ...(credentials.ca ? { ca: credentials.ca } : {}),
          ...(credentials.cert ? { cert: credentials.cert } : {}),
          ...(credentials.key ? { key: credentials.key } : {}),
          rejectUnauthorized: !credentials.insecure,
        })
      : new http.Agent({ keepAlive: true, maxSockets: 64 });
  }

  static fromEnvironment(env: NodeJS.ProcessEnv = process.env): KubeClient {
    return new KubeClient(loadCredentials(env));
  }

  get server(): string {
    return this.credentials.server.origin;
  }

  private url(path: string, query: Query = {}): URL {
    const url = new URL(path, this.credentials.server);
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
    return url;
  }

  private headers(contentType?: string): http.OutgoingHttpHeaders {
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
    if (contentType) headers['content-type'] = contentType;
    const token = this.credentials.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
    else if (this.credentials.basic) headers.authorization = `Basic ${this.credentials.basic}`;
    return headers;
  }

  /** One request; a non-2xx answer becomes a KubeApiError carrying the API server's own message. */
  request<T>(method: string, path: string, options: { query?: Query; body?: unknown; contentType?: string } = {}): Promise<T> {
    const url = this.url(path, options.query);
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    return new Promise<T>((resolve, reject) => {
      const request = this.transport.request(
        url,
        { method, agent: this.agent, headers: this.headers(payload === undefined ? undefined : (options.contentType ?? 'application/json')) },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', reject);
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = response.statusCode ?? 0;
            let body: unknown;
            try {
              body = text ? JSON.parse(text) : undefined;
            } catch {
              body = text;
            }
            if (status >= 200 && status < 300) return resolve(body as T);
            const answer = body as { message?: string; reason?: string } | undefined;
            reject(new KubeApiError(`${method} ${url.pathname}: ${status} ${answer?.message ?? String(text).slice(0, 300)}`, status, answer?.reason, body));
          });
        },
      );
      request.setTimeout(this.timeoutMs, () => request.destroy(new Error(`${method} ${url.pathname} timed out after ${this.timeoutMs} ms`)));
      request.on('error', reject);
      request.end(payload);
    });
  }

  get<T>(ref: ResourceRef): Promise<T> {
    return this.request<T>('GET', resourcePath(ref));
  }

  /** undefined when the object does not exist. */
  async find<T>(ref: ResourceRef): Promise<T | undefined> {
    try {
      return await this.get<T>(ref);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  list<T>(ref: ResourceRef, query: Query = {}): Promise<KubeList<T>> {
    return this.request<KubeList<T>>('GET', resourcePath(ref), { query });
  }

  /** Every page of a list, and the resourceVersion to watch from. */
  async listAll<T>(ref: ResourceRef, query: Query = {}, pageSize = 500): Promise<KubeList<T>> {
    const items: T[] = [];
    let next: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.list<T>(ref, { ...query, limit: pageSize, continue: next });
      items.push(...page.items);
      next = page.metadata.continue || undefined;
      resourceVersion = page.metadata.resourceVersion;
    } while (next);
    return { metadata: { resourceVersion }, items };
  }

  create<T>(ref: ResourceRef, body: unknown): Promise<T> {
    return this.request<T>('POST', resourcePath(ref), { body });
  }

  /** Server-side apply: the object is what this field manager wants; `force` takes over fields others set. */
  apply<T>(ref: ResourceRef, body: unknown, fieldManager: string, force = true): Promise<T> {
    return this.request<T>('PATCH', resourcePath(ref), { body, query: { fieldManager, force }, contentType: 'application/apply-patch+yaml' });
  }

  mergePatch<T>(ref: ResourceRef, body: unknown, fieldManager?: string): Promise<T> {
    return this.request<T>('PATCH', resourcePath(ref), { body, query: { fieldManager }, contentType: 'application/merge-patch+json' });
  }

  /** Deletes; a missing object counts as deleted. */
  async delete(ref: ResourceRef, propagationPolicy: 'Background' | 'Foreground' | 'Orphan' = 'Background'): Promise<void> {
    try {
      await this.request('DELETE', resourcePath(ref), { body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy } });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /**
   * Streams watch events until the server ends the watch, `abort()` is called, or an error;
   * `done` is called exactly once with the reason (undefined for a normal end). An ERROR event
   * (410 Gone: the resourceVersion is too old) arrives as a KubeApiError in `done`.
   */
  watch<T>(
    target: ResourceRef | string,
    query: Query,
    onEvent: (event: WatchEvent<T>) => void,
    done: (error?: Error) => void,
  ): { abort(): void } {
    const path = typeof target === 'string' ? target : resourcePath(target);
    const url = this.url(path, { ...query, watch: true, allowWatchBookmarks: true });
    let finished = false;
    const finish = (error?: Error) => {
      if (finished) return;
      finished = true;
      done(error);
    };
    const request = this.transport.request(url, { method: 'GET', agent: this.agent, headers: this.headers() }, (response) => {
      if ((response.statusCode ?? 0) !== 200) {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let message = text.slice(0, 300);
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? message;
          } catch {
            // keep the text
          }
          finish(new KubeApiError(`watch ${url.pathname}: ${response.statusCode} ${message}`, response.statusCode ?? 0));
        });
        return;
      }
      let buffer = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffer += chunk;
        let newline = buffer.indexOf('\n');
        while (newline >= 0) {
          const line = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          newline = buffer.indexOf('\n');
          if (!line) continue;
          let event: WatchEvent<T>;
          try {
            event = JSON.parse(line) as WatchEvent<T>;
          } catch {
            continue;
          }
          if (event.type === 'ERROR') {
            const status = event.object as { code?: number; message?: string; reason?: string };
            finish(new KubeApiError(`watch ${url.pathname}: ${status.code} ${status.message ?? ''}`, status.code ?? 500, status.reason));
            request.destroy();
            return;
          }
          try {
            onEvent(event);
          } catch {
            // A consumer's bug must not end the watch.
          }
        }
      });
      response.on('end', () => finish());
      response.on('error', (error) => finish(error));
      response.on('close', () => finish());
    });
    request.on('error', (error) => finish(error));
    request.end();
    return {
      abort: () => {
        finish();
        request.destroy();
      },
    };
  }

  close(): void {
    this.agent.destroy();
  }
}
