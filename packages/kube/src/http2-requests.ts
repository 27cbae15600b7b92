import * as http2 from 'node:http2';
import { isIP, type Socket } from 'node:net';
import * as tls from 'node:tls';

/** What a request's answer is read into, whichever protocol carried it. */
export interface HttpAnswer {
  status: number;
  text: string;
  retryAfter: string | undefined;
}

/**
 * The error of a request that failed on the connection. `code` follows what the HTTP/1.1 path's
 * socket errors say, so the retry rule is one: ECONNREFUSED when the request never reached the
 * server (no connection, or the server refused or never started the stream: GOAWAY, REFUSED_STREAM),
 * ECONNRESET when it may have.
 */
export class Http2RequestError extends Error {
  constructor(
    message: string,
    readonly code: 'ECONNREFUSED' | 'ECONNRESET',
  ) {
    super(message);
    this.name = 'Http2RequestError';
  }
}

/** How long a ping may take before a connection that let a request time out is given up. */
const PING_TIMEOUT_MS = 10_000;

/**
 * Requests over one multiplexed HTTP/2 connection to the API server, as client-go makes them.
 * Measured against kube-apiserver with the workers' V8 flags (2026-11-30): 0.47-0.53 ms of CPU
 * per server-side apply instead of 0.62-0.77 ms over HTTP/1.1 keep-alive: no socket pool, no
 * per-request HTTP/1.1 parser and header handling in JavaScript, one TLS connection instead of
 * up to maxConnections (each ~110 KiB of native memory).
 *
 * The connection is opened at the first request and again after it ends (the server's GOAWAY,
 * an error, a close); a request that times out has the connection pinged, and a connection that
 * does not answer within PING_TIMEOUT_MS is dropped, so a dead one (a half-open TCP connection)
 * is not kept for every later request.
 */
export class Http2Requests {
  private session: Promise<http2.ClientHttp2Session | undefined> | undefined;
  private active = 0;
  /** The server chose HTTP/1.1 when offered h2: send() answers undefined from then on. */
  private unsupported = false;

  /**
   * `connect` opens the connection: a TLS one on which ALPN chose h2 (connectTls), or undefined
   * when the server chose HTTP/1.1; in tests, a plain one (h2c).
   */
  constructor(
    private readonly origin: URL,
    private readonly connect: () => Promise<Socket | undefined>,
  ) {}

  /** Drops the connection (new credentials): requests in flight on it end with ECONNRESET. */
  reset(): void {
    const current = this.session;
    this.session = undefined;
    void current?.then((session) => session?.destroy()).catch(() => undefined);
  }

  close(): void {
    this.reset();
  }

  private open(): Promise<http2.ClientHttp2Session | undefined> {
    if (this.session) return this.session;
    const opening = this.connect().then(async (socket) => {
      if (!socket) {
        this.unsupported = true;
        return undefined;
      }
      const session = http2.connect(this.origin, { createConnection: () => socket });
      const forget = () => {
        if (this.session === opening) this.session = undefined;
      };
      // A GOAWAY lets the streams the server took finish; new requests go to a new connection.
      session.on('goaway', forget);
      session.on('close', forget);
      session.on('error', forget);
      // Until the server's SETTINGS arrive the client knows no limit on concurrent streams, and
      // the server refuses those beyond its own (kube-apiserver: 250, Go's default); once they
      // have, streams beyond the limit wait in the client for a free one.
      await new Promise<void>((resolve, reject) => {
        const failed = (error?: Error) => {
          session.destroy();
          reject(
            new Http2RequestError(
              `the HTTP/2 connection to ${this.origin.host} ended before the server's settings${error ? `: ${error.message}` : ''}`,
              'ECONNREFUSED',
            ),
          );
        };
        session.once('remoteSettings', () => {
          session.removeListener('close', failed);
          session.removeListener('error', failed);
          resolve();
        });
        session.once('close', failed);
        session.once('error', failed);
      });
      // Like an idle keep-alive socket of http.Agent, an idle connection does not hold the process.
      session.unref();
      return session;
    });
    this.session = opening;
    opening.catch(() => {
      if (this.session === opening) this.session = undefined;
    });
    return opening;
  }

  private ping(session: http2.ClientHttp2Session): void {
    if (session.destroyed) return;
    const timer = setTimeout(() => session.destroy(), PING_TIMEOUT_MS);
    timer.unref();
    try {
      session.ping(() => clearTimeout(timer));
    } catch {
      clearTimeout(timer);
      session.destroy();
    }
  }

  /**
   * One request; undefined, without sending anything, when the server does not speak HTTP/2 (the
   * caller sends it over HTTP/1.1 instead).
   */
  async send(
    method: string,
    target: string,
    path: string,
    headers: Record<string, string | number>,
    payload: string | undefined,
    timeoutMs: number,
  ): Promise<HttpAnswer | undefined> {
    if (this.unsupported) return undefined;
    const session = await this.open();
    if (!session) return undefined;
    if (session.closed || session.destroyed) {
      // Closed between opening and now: a request never sent.
      throw new Http2RequestError(`${method} ${path}: the HTTP/2 connection closed`, 'ECONNREFUSED');
    }
    return new Promise<HttpAnswer | undefined>((resolve, reject) => {
      if (this.active++ === 0) session.ref();
      let stream: http2.ClientHttp2Stream;
      try {
        // endStream said outright: Node ends a DELETE's stream at once by default, and ours
        // carries DeleteOptions.
        stream = session.request(
          { ':method': method, ':path': target, ...headers },
          { endStream: payload === undefined },
        );
      } catch (error) {
        if (--this.active === 0) session.unref();
        reject(new Http2RequestError(`${method} ${path}: ${(error as Error).message}`, 'ECONNREFUSED'));
        return;
      }
      let status = 0;
      let retryAfter: string | undefined;
      let responded = false;
      const chunks: Buffer[] = [];
      stream.on('response', (responseHeaders) => {
        responded = true;
        status = Number(responseHeaders[':status'] ?? 0);
        const value = responseHeaders['retry-after'];
        retryAfter = Array.isArray(value) ? value[0] : value;
      });
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => resolve({ status, text: Buffer.concat(chunks).toString('utf8'), retryAfter }));
      stream.on('error', (error: NodeJS.ErrnoException) => {
        // Refused by the server before it started on the stream (REFUSED_STREAM, or above a
        // GOAWAY's last stream): safe to send again, like a refused connection.
        const notProcessed =
          !responded &&
          (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM ||
            error.code === 'ERR_HTTP2_GOAWAY_SESSION');
        reject(
          new Http2RequestError(
            `${method} ${path}: ${error.message}`,
            notProcessed ? 'ECONNREFUSED' : 'ECONNRESET',
          ),
        );
      });
      stream.on('close', () => {
        if (--this.active === 0 && !session.destroyed) session.unref();
        // Reset without an error event (RST_STREAM with NO_ERROR before the answer ended).
        if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR || !stream.readableEnded)
          reject(
            new Http2RequestError(
              `${method} ${path}: the stream closed before its answer ended (code ${stream.rstCode})`,
              !responded && stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM
                ? 'ECONNREFUSED'
                : 'ECONNRESET',
            ),
          );
      });
      stream.setTimeout(timeoutMs, () => {
        reject(new Error(`${method} ${path} timed out after ${timeoutMs} ms`));
        stream.close(http2.constants.NGHTTP2_CANCEL);
        this.ping(session);
      });
      stream.end(payload);
    });
  }
}

/**
 * Opens a TLS connection offering h2 and HTTP/1.1, and says which the server chose (ALPN): the
 * socket when it is h2, undefined (the socket closed) when the server speaks only HTTP/1.1.
 */
export function connectTls(
  origin: URL,
  options: Pick<tls.ConnectionOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'> & {
    servername?: string;
  },
): Promise<tls.TLSSocket | undefined> {
  const host = origin.hostname.replace(/^\[|\]$/g, '');
  const servername = options.servername ?? (isIP(host) ? undefined : host);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port: Number(origin.port || 443),
      ...options,
      ...(servername ? { servername } : {}),
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    socket.once('secureConnect', () => {
      socket.removeListener('error', reject);
      if (socket.alpnProtocol === 'h2') resolve(socket);
      else {
        socket.destroy();
        resolve(undefined);
      }
    });
    socket.once('error', reject);
  });
}
