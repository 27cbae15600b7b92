import { request } from 'node:http';
import WebSocket from 'ws';

/**
 * What a browser does that the desktop-auth test needs, on loopback: resolve every host to the
 * address the test says (as a wildcard DNS record would send *.<domain> to the ingress
 * controller), keep cookies by domain and path, follow redirects, submit a form, open a websocket.
 * Only http: the TLS part of the Ingress is checked on the object, not on the wire.
 */

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  url: string;
}

interface Cookie {
  name: string;
  value: string;
  /** Leading dot: the domain and its subdomains; otherwise that host only. */
  domain: string;
  path: string;
}

export class Browser {
  private cookies: Cookie[] = [];

  /** @param route host → "127.0.0.1:port" that serves it (the default serves every other host). */
  constructor(private readonly route: (host: string) => string) {}

  private cookieHeader(url: URL): string | undefined {
    const host = url.hostname;
    const matching = this.cookies.filter(
      (c) =>
        (c.domain.startsWith('.')
          ? host === c.domain.slice(1) || host.endsWith(c.domain)
          : host === c.domain) && url.pathname.startsWith(c.path),
    );
    return matching.length > 0 ? matching.map((c) => `${c.name}=${c.value}`).join('; ') : undefined;
  }

  private store(url: URL, setCookie: string | string[] | undefined): void {
    for (const line of [setCookie ?? []].flat()) {
      const [pair = '', ...attributes] = line.split(';').map((p) => p.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let domain = url.hostname;
      let path = '/';
      let expired = value === '';
      for (const attribute of attributes) {
        const [key = '', v = ''] = attribute.split('=');
        if (key.toLowerCase() === 'domain') domain = `.${v.replace(/^\./, '')}`;
        if (key.toLowerCase() === 'path') path = v;
        if (key.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
        if (key.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
      }
      this.cookies = this.cookies.filter((c) => !(c.name === name && c.domain === domain && c.path === path));
      if (!expired) this.cookies.push({ name, value, domain, path });
    }
  }

  cookieNames(): string[] {
    return this.cookies.map((c) => c.name);
  }

  /** One request, no redirect followed. */
  send(
    method: string,
    target: string,
    options: { headers?: Record<string, string>; body?: string } = {},
  ): Promise<Response> {
    const url = new URL(target);
    const [address, port] = this.route(url.host).split(':');
    const cookie = this.cookieHeader(url);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: address,
          port: Number(port),
          method,
          path: `${url.pathname}${url.search}`,
          headers: {
            host: url.host,
            ...(cookie ? { cookie } : {}),
            ...(options.body !== undefined
              ? {
                  'content-type': 'application/x-www-form-urlencoded',
                  'content-length': String(Buffer.byteLength(options.body)),
                }
              : {}),
            ...(options.headers ?? {}),
          },
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk) => {
            body += chunk;
          });
          res.on('end', () => {
            this.store(url, res.headers['set-cookie']);
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body, url: url.toString() });
          });
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${target}: no answer within 10 s`)));
      req.on('error', reject);
      req.end(options.body);
    });
  }

  /** GET (or the given request), following redirects as a browser would (a 303/302 after POST becomes GET). */
  async go(
    target: string,
    options: { method?: string; headers?: Record<string, string>; body?: string; maxRedirects?: number } = {},
  ): Promise<Response & { redirects: string[] }> {
    const redirects: string[] = [];
    let method = options.method ?? 'GET';
    let body = options.body;
    let url = target;
    for (let hop = 0; hop <= (options.maxRedirects ?? 10); hop++) {
      const response = await this.send(method, url, {
        ...(options.headers ? { headers: options.headers } : {}),
        ...(body !== undefined ? { body } : {}),
      });
      const location = response.headers.location as string | undefined;
      if (![301, 302, 303, 307, 308].includes(response.status) || !location)
        return { ...response, redirects };
      url = new URL(location, url).toString();
      redirects.push(url);
      if (response.status !== 307 && response.status !== 308) {
        method = 'GET';
        body = undefined;
      }
    }
    throw new Error(
      `more than ${options.maxRedirects ?? 10} redirects from ${target}: ${redirects.join(' -> ')}`,
    );
  }

  /**
   * Opens a websocket through the route with this browser's cookies. Resolves with the open
   * socket, or with the HTTP status that refused the upgrade.
   */
  websocket(
    target: string,
    headers: Record<string, string> = {},
  ): Promise<{ socket: WebSocket } | { refused: number; location?: string }> {
    const url = new URL(target);
    const cookie = this.cookieHeader(new URL(target.replace(/^ws/, 'http')));
    const socket = new WebSocket(`ws://${this.route(url.host)}${url.pathname}${url.search}`, {
      headers: { host: url.host, ...(cookie ? { cookie } : {}), ...headers },
      handshakeTimeout: 10_000,
    });
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve({ socket }));
      socket.once('unexpected-response', (_req, res) => {
        resolve({
          refused: res.statusCode ?? 0,
          ...(res.headers.location ? { location: res.headers.location } : {}),
        });
        res.resume();
        socket.terminate();
      });
      socket.once('error', reject);
    });
  }
}

/** Sends one text message and waits for the first answer. */
export function roundTrip(socket: WebSocket, message: string): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once('message', (data) => resolve(String(data)));
    socket.once('error', reject);
    socket.send(message);
  });
}
