import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { loadCredentials } from '@streamspace/kube';

/**
 * A plain-HTTP proxy on loopback in front of a real kube-apiserver, authenticating upstream with
 * the kubeconfig's client certificate (as `kubectl proxy` does), so a test can break the path
 * between a client and the API server in the ways networks and API servers break it:
 * - `silent`: requests go through but no answer byte comes back (a watch that hangs without
 *   closing, as behind a stuck load balancer);
 * - `refuse`: every open stream is cut and new requests get 503;
 * - `throttle(n)`: the next n matching requests get 429 with a Retry-After.
 */
export class ApiProxy {
  mode: 'forward' | 'silent' | 'refuse' = 'forward';
  /** Requests answered 429 so far. */
  throttled = 0;
  private throttleLeft = 0;
  private throttleRetryAfter = 1;
  private throttleMatch: (req: IncomingMessage) => boolean = () => true;
  private readonly open = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    readonly url: URL,
  ) {}

  static async start(kubeconfig: string): Promise<ApiProxy> {
    const credentials = loadCredentials({ KUBECONFIG: kubeconfig });
    const agent = new Agent({
      keepAlive: true,
      ...(credentials.ca ? { ca: credentials.ca } : {}),
      ...(credentials.cert ? { cert: credentials.cert } : {}),
      ...(credentials.key ? { key: credentials.key } : {}),
    });
    let proxy: ApiProxy | undefined;
    const server = createServer((req, res) => proxy?.handle(req, res, credentials.server, agent));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new ApiProxy(server, new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
    return proxy;
  }

  throttle(
    count: number,
    retryAfterSeconds: number,
    match: (req: IncomingMessage) => boolean = () => true,
  ): void {
    this.throttleLeft = count;
    this.throttleRetryAfter = retryAfterSeconds;
    this.throttleMatch = match;
  }

  /** Cuts every stream open now (watches end with a reset). */
  cutAll(): void {
    for (const res of this.open) res.destroy();
    this.open.clear();
  }

  setMode(mode: ApiProxy['mode']): void {
    this.mode = mode;
    if (mode === 'refuse') this.cutAll();
  }

  private handle(req: IncomingMessage, res: ServerResponse, upstream: URL, agent: Agent): void {
    if (this.mode === 'refuse') {
      res
        .writeHead(503, { 'content-type': 'application/json' })
        .end('{"kind":"Status","code":503,"message":"proxy refuses"}');
      return;
    }
    if (this.throttleLeft > 0 && this.throttleMatch(req)) {
      this.throttleLeft--;
      this.throttled++;
      res
        .writeHead(429, {
          'content-type': 'application/json',
          'retry-after': String(this.throttleRetryAfter),
        })
        .end('{"kind":"Status","code":429,"reason":"TooManyRequests","message":"the proxy says: slow down"}');
      return;
    }
    const { host: _host, authorization: _auth, connection: _connection, ...headers } = req.headers;
    const out = httpsRequest(
      new URL(req.url ?? '/', upstream),
      { method: req.method, headers, agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        // Passed on as they come, as the API server sends them (a watch's at once, before any
        // event: the informer counts it answered then); Node would hold them until the first byte.
        if (this.mode !== 'silent') res.flushHeaders();
        this.open.add(res);
        answer.on('data', (chunk: Buffer) => {
          // Silent: the bytes are swallowed, the connection stays open.
          if (this.mode !== 'silent') res.write(chunk);
        });
        answer.on('end', () => res.end());
        answer.on('error', () => res.destroy());
      },
    );
    res.on('close', () => {
      this.open.delete(res);
      out.destroy();
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  }

  close(): Promise<void> {
    this.cutAll();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
