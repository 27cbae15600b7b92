import * as http from 'node:http';
import * as http2 from 'node:http2';
import { setMaxListeners } from 'node:events';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { urlToHttpOptions } from 'node:url';
import { type BackoffOptions, backoffDelay, sleep } from '@streamspace/shared';
import { readText, type TextSink } from './body-text.js';
import { ListItemSplitter } from './list-items.js';
import { type Credentials, loadCredentials } from './kube-credentials.js';
import { connectTls, type HttpAnswer, Http2Requests } from './http2-requests.js';
import { errorText, isNotFound, KubeApiError, statusError } from './kube-error.js';
import type { KubeClientMetrics } from './kube-metrics.js';
import { TokenBucket } from './rate-limiter.js';
import { type Query, type ResourceRef, requestTarget, resourcePath } from './resource-path.js';

/**
 * Every request waiting (for the rate limit, a retry) listens to the client's close signal, so a
 * burst of throttled requests has hundreds of listeners at once, each removed when its wait ends:
 * not the leak Node's default limit of 10 warns about.
 */
function unlimitedListeners(controller: AbortController): AbortController {
  setMaxListeners(0, controller.signal);
  return controller;
}

/**
 * The one Kubernetes REST client of the services: get, paged list, watch with bookmarks, create,
 * server-side apply, merge patch, delete, over keep-alive HTTPS, with a client-side rate limit
 * and bounded retries of 429/5xx that honour Retry-After.
 *
 * Why not @kubernetes/client-node at run time: importing it loads its whole generated API surface.
 * Measured on Node 20 (2026-11-29, `node -e "const b=process.memoryUsage().rss;
 * import('@kubernetes/client-node').then(()=>console.log(process.memoryUsage().rss-b))"` in
 * packages/kube): ~77 MiB RSS for the import alone, before a single request; +51 MiB even on top of
 * what a service already loads (@streamspace/shared with NATS, zod, pino, prom-client), where this
 * package adds 2 MiB. That alone breaks the 100 MB per-service budget. We use its types only
 * (erased at compile time); test/unit/no-client-node-runtime.test.ts fails the default test run
 * if a built file imports it.
 */

export interface KubeList<T> {
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** Where the client says what it skipped or retried; a pino logger fits. */
export interface KubeLog {
  warn(fields: object, message: string): void;
}

export type { Query } from './resource-path.js';

export interface KubeClientOptions {
  timeoutMs?: number;
  /** Requests per second after the burst; 0 turns the client-side limit off. */
  qps?: number;
  burst?: number;
  /**
   * HTTP/1.1 connections to the API server kept open at most for requests (keep-alive; requests
   * beyond it queue for one) when the server does not offer HTTP/2. Not the watches': each has a
   * connection of its own then, for as long as it lasts, however many there are.
   * Each TLS connection costs its process about 110 KiB of native memory that is not given back
   * when the connection closes (64 of them: +7 MiB; BENCHMARKS.md run S5).
   */
  maxConnections?: number;
  /** Retries of a 429, a 5xx or a refused connection before the error reaches the caller. */
  maxRetries?: number;
  backoff?: BackoffOptions;
  /** The longest Retry-After honoured; a server asking for more gets this. */
  maxRetryAfterMs?: number;
  metrics?: KubeClientMetrics;
  log?: KubeLog;
  /**
   * Requests and watches to an https server over HTTP/2 when it offers it (ALPN), as client-go
   * does; false keeps requests on HTTP/1.1 keep-alive connections and each watch on one of its own.
   */
  http2?: boolean;
}

export const DEFAULT_QPS = 100;
export const DEFAULT_BURST = 200;
export const DEFAULT_MAX_CONNECTIONS = 64;

/** Statuses that say the request was not (or need not have been) carried out: sending it again is safe. */
const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);

/**
 * An API server's refusal of a request or a watch as the one error type: its Status object's
 * message and reason when it sent one (`body`, parsed), else the start of its text.
 */
function refusal(
  context: string,
  status: number,
  body: unknown,
  text: string,
  retryAfterSeconds: number | undefined,
): KubeApiError {
  const fields = body && typeof body === 'object' ? (body as { message?: string; reason?: string }) : undefined;
  return new KubeApiError(
    `${context}: ${status} ${fields?.message ?? String(text).slice(0, 300)}`,
    status,
    fields?.reason,
    body,
    retryAfterSeconds,
  );
}

/** Seconds of a Retry-After header (delta-seconds or an HTTP date); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim());
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

export class KubeClient {
  private agent: http.Agent;
  /**
   * The watches' connections when the server does not speak HTTP/2 (else a watch is a stream of
   * an HTTP/2 connection, see http2-requests.ts), one each for as long as the watch lasts (minutes): not counted
   * against maxConnections. Counted there, the watches beyond it (the watcher holds one per kind
   * and namespace: 80 with 10 namespaces, against 64) waited for a socket while their informers
   * took them for up, and a change in their namespace was seen only minutes later, when another
   * watch ended (issue 13); and they left requests to a server without HTTP/2 no connection.
   */
  private watchAgent: http.Agent;
  private agentCert: Buffer | undefined;
  private agentKey: Buffer | undefined;
  /** Requests and watches to an https server, over HTTP/2 when the server offers it (http2-requests.ts). */
  private readonly http2: Http2Requests | undefined;
  private readonly transport: typeof http | typeof https;
  /** The server's scheme, host (an IPv6 address without brackets) and port. */
  private readonly origin: http.RequestOptions;
  private readonly limiter: TokenBucket | undefined;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly maxRetryAfterMs: number;
  private closed = unlimitedListeners(new AbortController());

  constructor(
    private readonly credentials: Credentials,
    private readonly options: KubeClientOptions = {},
  ) {
    this.transport = credentials.server.protocol === 'https:' ? https : http;
    const { protocol, hostname, port } = urlToHttpOptions(credentials.server);
    this.origin = { protocol, hostname, port };
    this.agentCert = credentials.cert;
    this.agentKey = credentials.key;
    this.agent = this.newAgent(credentials.cert, credentials.key);
    this.watchAgent = this.newAgent(credentials.cert, credentials.key, Number.POSITIVE_INFINITY);
    this.http2 =
      credentials.server.protocol === 'https:' && options.http2 !== false
        ? new Http2Requests(credentials.server, () => connectTls(credentials.server, this.tlsOptions()))
        : undefined;
    const qps = options.qps ?? DEFAULT_QPS;
    this.limiter = qps > 0 ? new TokenBucket(qps, Math.max(1, options.burst ?? DEFAULT_BURST)) : undefined;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxRetries = options.maxRetries ?? 5;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 30_000;
  }

  static fromEnvironment(options: KubeClientOptions = {}, env: NodeJS.ProcessEnv = process.env): KubeClient {
    return new KubeClient(loadCredentials(env), options);
  }

  get server(): string {
    return this.credentials.server.origin;
  }

  /** The TLS options of every connection: the server's CA and name, the client certificate now in use. */
  private tlsOptions(cert = this.agentCert, key = this.agentKey) {
    const { credentials } = this;
    return {
      ...(credentials.ca ? { ca: credentials.ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      ...(credentials.tlsServerName ? { servername: credentials.tlsServerName } : {}),
      rejectUnauthorized: !credentials.insecure,
    };
  }

  private newAgent(
    cert: Buffer | undefined,
    key: Buffer | undefined,
    maxSockets = this.options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
  ): http.Agent {
    const { credentials } = this;
    if (credentials.server.protocol !== 'https:') return new http.Agent({ keepAlive: true, maxSockets });
    return new https.Agent({ keepAlive: true, maxSockets, ...this.tlsOptions(cert, key) });
  }

  /** Where a request goes, for http(s).request: the server's scheme, host and port, and `target` (path and query). */
  private requestOptions(target: string): http.RequestOptions {
    return { ...this.origin, path: target };
  }

  /** Headers with the current credential; an exec plugin's client certificate swaps the agent. */
  private async headers(contentType?: string): Promise<http.OutgoingHttpHeaders> {
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
    if (contentType) headers['content-type'] = contentType;
    const { credentials } = this;
    if (credentials.exec) {
      const result = await credentials.exec.get();
      if (result.cert && result.key && result.cert !== this.agentCert) {
        this.agent.destroy();
        this.agent = this.newAgent(result.cert, result.key);
        this.watchAgent.destroy();
        this.watchAgent = this.newAgent(result.cert, result.key, Number.POSITIVE_INFINITY);
        this.agentCert = result.cert;
        this.agentKey = result.key;
        this.http2?.reset();
      }
      if (result.token) headers.authorization = `Bearer ${result.token}`;
      return headers;
    }
    const token = credentials.token?.get();
    if (token) headers.authorization = `Bearer ${token}`;
    else if (credentials.basic) headers.authorization = `Basic ${credentials.basic}`;
    return headers;
  }

  private invalidateCredentials(): void {
    this.credentials.exec?.invalidate();
    this.credentials.token?.invalidate();
  }

  private async throttle(): Promise<void> {
    const wait = this.limiter?.reserve() ?? 0;
    if (wait <= 0) return;
    this.options.metrics?.throttled(wait);
    await sleep(wait, this.closed.signal);
  }

  private send(
    method: string,
    target: string,
    path: string,
    payload: string | undefined,
    contentType: string | undefined,
    sink?: (status: number) => TextSink | undefined,
  ): Promise<HttpAnswer> {
    return this.headers(payload === undefined ? undefined : contentType).then(async (headers) => {
      // Framed explicitly: Node neither chunks nor sizes the body of a DELETE by itself, so the
      // server would read a DeleteOptions body as the start of the next request on the socket.
      if (payload !== undefined) headers['content-length'] = Buffer.byteLength(payload);
      const overHttp2 = await this.http2?.send(
        method,
        target,
        path,
        headers as Record<string, string | number>,
        payload,
        this.timeoutMs,
        sink,
      );
      return overHttp2 ?? this.sendHttp1(method, target, path, payload, headers, sink);
    });
  }

  private sendHttp1(
    method: string,
    target: string,
    path: string,
    payload: string | undefined,
    headers: http.OutgoingHttpHeaders,
    sink?: (status: number) => TextSink | undefined,
  ): Promise<HttpAnswer> {
    return new Promise<HttpAnswer>((resolve, reject) => {
      const options = { ...this.requestOptions(target), method, agent: this.agent, headers };
      const request = this.transport.request(options, (response) => {
        response.on('error', reject);
        readText(
          response,
          (text) => {
            const retryAfter = response.headers['retry-after'];
            resolve({
              status: response.statusCode ?? 0,
              text,
              retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
            });
          },
          sink && (() => sink(response.statusCode ?? 0)),
        );
      });
      request.setTimeout(this.timeoutMs, () =>
        request.destroy(new Error(`${method} ${path} timed out after ${this.timeoutMs} ms`)),
      );
      request.on('error', reject);
      request.end(payload);
    });
  }

  /**
   * One request; a non-2xx answer becomes a KubeApiError carrying the API server's own message.
   * 429 and 5xx are sent again (5xx of a POST only when the server gave Retry-After: a create
   * that failed half-way must not be repeated blindly), waiting what Retry-After asks or a
   * backoff, at most `maxRetries` times; a refused connection likewise; a 401 once, with the
   * credential read again (a rotated token, an expired exec credential).
   */
  async request<T>(
    method: string,
    path: string,
    options: {
      query?: Query;
      body?: unknown;
      contentType?: string;
      /**
       * A list's items, each handed on as its JSON text as it arrives (list-items.ts); the answer
       * is then the list without them. An answer cut off and sent again hands its first items on
       * again: what takes them must bear a repeat.
       */
      items?: (json: string) => void;
    } = {},
  ): Promise<T> {
    const target = requestTarget(path, options.query);
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const contentType = options.contentType ?? 'application/json';
    const { items } = options;
    let reauthenticated = false;
    for (let attempt = 0; ; attempt++) {
      await this.throttle();
      let answer: HttpAnswer;
      let splitter: ListItemSplitter | undefined;
      const sink = items
        ? (status: number) => {
            if (status < 200 || status >= 300) return undefined;
            splitter = new ListItemSplitter(items);
            return splitter;
          }
        : undefined;
      try {
        answer = await this.send(method, target, path, payload, contentType, sink);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? '';
        // A refused connection never reached the server; a reset one may have, so only reads repeat it.
        const retryable = code === 'ECONNREFUSED' || (code === 'ECONNRESET' && method === 'GET');
        if (!retryable || this.closed.signal.aborted) throw error;
        if (attempt >= this.maxRetries) {
          this.options.metrics?.exhausted(method, code);
          throw error;
        }
        const delay = backoffDelay(attempt, this.options.backoff);
        this.options.metrics?.retried(method, code);
        this.options.log?.warn(
          { method, path, error: errorText(error), delayMs: delay },
          'API request failed; retrying',
        );
        await sleep(delay, this.closed.signal);
        continue;
      }
      const retryAfterSeconds = parseRetryAfter(answer.retryAfter);
      let body: unknown;
      try {
        body = answer.text ? JSON.parse(answer.text) : undefined;
      } catch {
        body = answer.text;
      }
      if (answer.status >= 200 && answer.status < 300) {
        // What took an item failed, or the list ended early: the list is not whole.
        const failure = (splitter as ListItemSplitter | undefined)?.error;
        if (failure !== undefined) throw failure;
        return body as T;
      }
      if (answer.status === 401 && !reauthenticated && (this.credentials.exec || this.credentials.token)) {
        reauthenticated = true;
        this.invalidateCredentials();
        continue;
      }
      const error = refusal(`${method} ${path}`, answer.status, body, answer.text, retryAfterSeconds);
      const retryable =
        RETRYABLE_STATUS.has(answer.status) &&
        (method !== 'POST' || answer.status === 429 || retryAfterSeconds !== undefined);
      if (!retryable || this.closed.signal.aborted) throw error;
      if (attempt >= this.maxRetries) {
        this.options.metrics?.exhausted(method, String(answer.status));
        throw error;
      }
      const delay =
        retryAfterSeconds !== undefined
          ? Math.min(this.maxRetryAfterMs, retryAfterSeconds * 1000)
          : backoffDelay(attempt, this.options.backoff);
      this.options.metrics?.retried(method, String(answer.status));
      this.options.log?.warn(
        { method, path, status: answer.status, delayMs: delay },
        'API server asked us to retry',
      );
      await sleep(delay, this.closed.signal);
    }
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

  /**
   * A list page whose items are handed to `onItem` one by one as they arrive, each as its JSON
   * text, never held together (list-items.ts); resolves with the list's metadata.
   */
  async listItems(
    target: ResourceRef | string,
    query: Query,
    onItem: (json: string) => void,
  ): Promise<KubeList<never>['metadata']> {
    const envelope = await this.request<Partial<KubeList<never>> | undefined>(
      'GET',
      typeof target === 'string' ? target : resourcePath(target),
      { query, items: onItem },
    );
    return envelope?.metadata ?? { resourceVersion: '' };
  }

  list<T>(target: ResourceRef | string, query: Query = {}): Promise<KubeList<T>> {
    return this.request<KubeList<T>>('GET', typeof target === 'string' ? target : resourcePath(target), {
      query,
    });
  }

  create<T>(ref: ResourceRef, body: unknown): Promise<T> {
    return this.request<T>('POST', resourcePath(ref), { body });
  }

  /** Server-side apply: the object is what this field manager wants; `force` takes over fields others set. */
  apply<T>(ref: ResourceRef, body: unknown, fieldManager: string, force = true): Promise<T> {
    return this.request<T>('PATCH', resourcePath(ref), {
      body,
      query: { fieldManager, force },
      contentType: 'application/apply-patch+yaml',
    });
  }

  mergePatch<T>(ref: ResourceRef, body: unknown, fieldManager?: string): Promise<T> {
    return this.request<T>('PATCH', resourcePath(ref), {
      body,
      query: { fieldManager },
      contentType: 'application/merge-patch+json',
    });
  }

  /** Deletes; a missing object counts as deleted. */
  async delete(
    ref: ResourceRef,
    propagationPolicy: 'Background' | 'Foreground' | 'Orphan' = 'Background',
  ): Promise<void> {
    try {
      await this.request('DELETE', resourcePath(ref), {
        body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy },
      });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /**
   * Streams watch events (bookmarks asked for) until the server ends the watch, `abort()` is
   * called, or an error; `done` is called exactly once with the reason (undefined for a normal
   * end). An ERROR event (410 Gone: the resourceVersion is too old) or a refused start (a 429
   * with its Retry-After) arrives as a KubeApiError in `done`. A line that is not a watch event
   * and a consumer that throws are logged and counted; neither ends the watch. `answered` is
   * called once the API server has answered (response headers, status 200), which it does at
   * once when it starts the watch, before any event: until then the request may still be waiting
   * for the rate limit, a socket or the server, and nothing it would report can arrive.
   */
  watch<T>(
    target: ResourceRef | string,
    query: Query,
    onEvent: (event: WatchEvent<T>) => void,
    done: (error?: Error) => void,
    answered?: () => void,
  ): { abort(): void } {
    const path = typeof target === 'string' ? target : resourcePath(target);
    const watchTarget = requestTarget(path, { ...query, watch: true, allowWatchBookmarks: true });
    const { metrics, log } = this.options;
    let finished = false;
    /** Ends the watch's request or stream, whichever carries it. */
    let cancel: (() => void) | undefined;
    let streaming = false;
    metrics?.watchRequested();
    const finish = (error?: Error) => {
      if (finished) return;
      finished = true;
      metrics?.watchEnded(streaming);
      cancel?.();
      done(error);
    };
    /** The server's answer, over HTTP/2 or HTTP/1.1 alike: a refusal, or the stream of events. */
    const onResponse = (status: number, retryAfter: string | string[] | undefined, body: Readable) => {
      if (status !== 200) {
        readText(body, (text) => {
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = text;
          }
          if (status === 401) this.invalidateCredentials();
          finish(refusal(`watch ${path}`, status, parsed, text, parseRetryAfter(retryAfter)));
        });
        body.on('error', (error) => finish(error));
        return;
      }
      if (finished) return;
      streaming = true;
      metrics?.watchAnswered();
      try {
        answered?.();
      } catch (error) {
        metrics?.consumerError();
        log?.warn({ path, error: errorText(error) }, 'a watch consumer failed on its answer; going on');
      }
      let buffer = '';
      body.setEncoding('utf8');
      body.on('data', (chunk: string) => {
        buffer += chunk;
        let newline = buffer.indexOf('\n');
        while (newline >= 0 && !finished) {
          const line = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          newline = buffer.indexOf('\n');
          if (!line) continue;
          let event: WatchEvent<T>;
          try {
            event = JSON.parse(line) as WatchEvent<T>;
            if (typeof event?.type !== 'string') throw new Error('no event type');
          } catch (error) {
            metrics?.malformedWatchLine();
            log?.warn(
              { path, line: line.slice(0, 200), error: errorText(error) },
              'skipped a watch line that is not a watch event',
            );
            continue;
          }
          if (event.type === 'ERROR') {
            finish(statusError(event.object, `watch ${path}`));
            return;
          }
          try {
            onEvent(event);
          } catch (error) {
            // A consumer's bug must not end the watch, nor pass unnoticed.
            metrics?.consumerError();
            log?.warn(
              { path, type: event.type, error: errorText(error) },
              'a watch consumer failed on an event; going on with the next',
            );
          }
        }
      });
      body.on('end', () => finish());
      body.on('error', (error) => finish(error));
      body.on('close', () => finish());
    };
    const start = async () => {
      await this.throttle();
      const headers = await this.headers();
      if (finished) return;
      // Over HTTP/2 when the server speaks it: every watch a stream of a shared connection
      // (http2-requests.ts), where each took a TLS connection of its own.
      const stream = await this.http2?.stream('GET', watchTarget, path, headers as Record<string, string>);
      if (stream) {
        cancel = () => {
          if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        };
        if (finished) return cancel();
        stream.on('response', (answer) => onResponse(Number(answer[':status'] ?? 0), answer['retry-after'], stream));
        stream.on('error', (error) => finish(error));
        // Closed before any answer (a reset, the connection gone): the watch ended.
        stream.on('close', () => finish());
        return;
      }
      if (finished) return;
      const options = { ...this.requestOptions(watchTarget), method: 'GET', agent: this.watchAgent, headers };
      const request = this.transport.request(options, (response) =>
        onResponse(response.statusCode ?? 0, response.headers['retry-after'], response),
      );
      cancel = () => request.destroy();
      request.on('error', (error) => finish(error));
      request.end();
    };
    start().catch((error: unknown) => finish(error instanceof Error ? error : new Error(String(error))));
    return { abort: () => finish() };
  }

  close(): void {
    this.closed.abort();
    this.agent.destroy();
    this.watchAgent.destroy();
    this.http2?.close();
  }
}
