import * as http2 from 'node:http2';
import { isIP, type Socket } from 'node:net';
import * as tls from 'node:tls';
import { readText, type TextSink } from './body-text.js';

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
 * Streams one connection carries until the server's SETTINGS say how many it allows
 * (SETTINGS_MAX_CONCURRENT_STREAMS; kube-apiserver's is 250, Go's default).
 */
const DEFAULT_STREAM_LIMIT = 100;

/** One HTTP/2 connection and the streams (requests, watches) open on it. */
interface Connection {
  session: Promise<http2.ClientHttp2Session | undefined>;
  /** Streams open on it, requests and watches: while any is, the connection holds the process. */
  active: number;
  /** Long-lived streams (watches) open on it. */
  watches: number;
  /** The server's limit on concurrent streams. */
  limit: number;
}

/** Watches a connection takes: half the server's limit, the other half left to requests. */
function watchRoom(connection: Connection): number {
  return Math.max(1, Math.floor(connection.limit / 2));
}

/**
 * Requests and watches over multiplexed HTTP/2 connections to the API server, as client-go makes
 * them. Measured against kube-apiserver with the workers' V8 flags (2026-11-30): 0.47-0.53 ms of
 * CPU per server-side apply instead of 0.62-0.77 ms over HTTP/1.1 keep-alive: no socket pool, no
 * per-request HTTP/1.1 parser and header handling in JavaScript, one TLS connection instead of
 * up to maxConnections (each ~110 KiB of native memory). The watcher's 80 watches (8 kinds x 10
 * namespaces) on one connection instead of 80 TLS sockets: 1.5 MiB of resident memory instead of
 * 11.2 (BENCHMARKS.md, W1-W4).
 *
 * Requests share the first connection; past the server's limit on concurrent streams they wait
 * in the client for a stream, briefly. A watch holds its stream for minutes, so it goes on a
 * connection with room for it (half the server's limit, the rest left to requests) and another is
 * opened when none has, as Go's HTTP/2 transport does: a watch never waits behind others for a
 * stream (a watch waiting unseen for a connection once hid changes for minutes, issue 13). A connection is opened again after it ends (the server's GOAWAY, an error,
 * a close); a request that times out has its connection pinged, and a connection that does not
 * answer within PING_TIMEOUT_MS is dropped, so a dead one (a half-open TCP connection) is not
 * kept for every later request.
 */
export class Http2Requests {
  private connections: Connection[] = [];
  /** The server chose HTTP/1.1 when offered h2: send() and stream() answer undefined from then on. */
  private unsupported = false;

  /**
   * `connect` opens the connection: a TLS one on which ALPN chose h2 (connectTls), or undefined
   * when the server chose HTTP/1.1; in tests, a plain one (h2c).
   */
  constructor(
    private readonly origin: URL,
    private readonly connect: () => Promise<Socket | undefined>,
  ) {}

  /** Connections open or opening now. */
  get connectionCount(): number {
    return this.connections.length;
  }

  /** Drops the connections (new credentials): requests and watches on them end with ECONNRESET. */
  reset(): void {
    for (const connection of this.connections.splice(0))
      void connection.session.then((session) => session?.destroy()).catch(() => undefined);
  }

  close(): void {
    this.reset();
  }

  private forget(connection: Connection): void {
    const at = this.connections.indexOf(connection);
    if (at >= 0) this.connections.splice(at, 1);
  }

  private open(): Connection {
    const connection: Connection = {
      session: Promise.resolve(undefined),
      active: 0,
      watches: 0,
      limit: DEFAULT_STREAM_LIMIT,
    };
    connection.session = this.connect().then(async (socket) => {
      if (!socket) {
        this.unsupported = true;
        return undefined;
      }
      const session = http2.connect(this.origin, { createConnection: () => socket });
      const forget = () => this.forget(connection);
      // A GOAWAY lets the streams the server took finish; new ones go to another connection.
      session.on('goaway', forget);
      session.on('close', forget);
      session.on('error', forget);
      // Until the server's SETTINGS arrive the client knows no limit on concurrent streams, and
      // the server refuses those beyond its own; once they have, streams beyond the limit would
      // wait in the client for a free one, so no more than the limit are put on a connection.
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
        session.once('remoteSettings', (settings) => {
          session.removeListener('close', failed);
          session.removeListener('error', failed);
          if (settings.maxConcurrentStreams) connection.limit = settings.maxConcurrentStreams;
          resolve();
        });
        session.once('close', failed);
        session.once('error', failed);
      });
      // Like an idle keep-alive socket of http.Agent, an idle connection does not hold the process.
      session.unref();
      return session;
    });
    connection.session.catch(() => this.forget(connection));
    this.connections.push(connection);
    return connection;
  }

  /**
   * A connection with a stream to spare, the stream counted against it until `release`; undefined
   * when the server does not speak HTTP/2.
   */
  private async acquire(
    what: string,
    longLived: boolean,
  ): Promise<{ session: http2.ClientHttp2Session; release: () => void } | undefined> {
    for (;;) {
      // A request takes the first connection (past the server's limit it waits in the client
      // for a stream, briefly); a watch one with room for it, or a new one.
      const connection =
        (longLived ? this.connections.find((c) => c.watches < watchRoom(c)) : this.connections[0]) ??
        this.open();
      // The server's limit is known once the connection is open: a stream is counted only then.
      const session = await connection.session;
      if (!session) return undefined;
      if (session.closed || session.destroyed) {
        // Closed between opening and now: a request never sent.
        throw new Http2RequestError(`${what}: the HTTP/2 connection closed`, 'ECONNREFUSED');
      }
      // Filled by other watches while this one waited for the connection: another (or a new) one.
      if (longLived && connection.watches >= watchRoom(connection)) continue;
      if (longLived) connection.watches++;
      if (connection.active++ === 0) session.ref();
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        if (longLived) connection.watches--;
        if (--connection.active === 0 && !session.destroyed) session.unref();
      };
      return { session, release };
    }
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
   * A stream whose answer the caller reads as it comes (a watch): undefined, without sending
   * anything, when the server does not speak HTTP/2. The stream holds its place on its connection
   * until it closes.
   */
  async stream(
    method: string,
    target: string,
    path: string,
    headers: Record<string, string | number>,
  ): Promise<http2.ClientHttp2Stream | undefined> {
    if (this.unsupported) return undefined;
    const acquired = await this.acquire(`${method} ${path}`, true);
    if (!acquired) return undefined;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = acquired.session.request({ ':method': method, ':path': target, ...headers }, { endStream: true });
    } catch (error) {
      acquired.release();
      throw new Http2RequestError(`${method} ${path}: ${(error as Error).message}`, 'ECONNREFUSED');
    }
    stream.on('close', acquired.release);
    return stream;
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
    sink?: (status: number) => TextSink | undefined,
  ): Promise<HttpAnswer | undefined> {
    if (this.unsupported) return undefined;
    const acquired = await this.acquire(`${method} ${path}`, false);
    if (!acquired) return undefined;
    const { session, release } = acquired;
    return new Promise<HttpAnswer | undefined>((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        // endStream said outright: Node ends a DELETE's stream at once by default, and ours
        // carries DeleteOptions.
        stream = session.request(
          { ':method': method, ':path': target, ...headers },
          { endStream: payload === undefined },
        );
      } catch (error) {
        release();
        reject(new Http2RequestError(`${method} ${path}: ${(error as Error).message}`, 'ECONNREFUSED'));
        return;
      }
      let status = 0;
      let retryAfter: string | undefined;
      let responded = false;
      stream.on('response', (responseHeaders) => {
        responded = true;
        status = Number(responseHeaders[':status'] ?? 0);
        const value = responseHeaders['retry-after'];
        retryAfter = Array.isArray(value) ? value[0] : value;
      });
      readText(
        stream,
        (text) => resolve({ status, text, retryAfter }),
        sink && (() => sink(status)),
      );
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
        release();
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
