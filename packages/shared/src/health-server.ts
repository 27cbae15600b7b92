import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Readiness } from './readiness.js';
import { httpDate } from './utc-time.js';

export interface HealthServer {
  server: Server;
  /** The address it actually bound, useful when the configured port was 0. */
  address: AddressInfo;
  close(): Promise<void>;
}

export type ExtraRoute = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => boolean | Promise<boolean>;

/**
 * /healthz answers while the process can serve HTTP at all (liveness); /readyz reflects the
 * service's readiness checks (503 with the failing reasons); /metrics is the Prometheus text
 * format of the service's registry. `extra` lets a service add its own routes (it returns true
 * when it handled the request).
 */
export async function startHealthServer(options: {
  host: string;
  port: number;
  readiness: Readiness;
  registry: Registry;
  extra?: ExtraRoute;
}): Promise<HealthServer> {
  const { readiness, registry } = options;
  const server = createServer(async (req, res) => {
    // Our own Date header: Node's would format it with V8 (utc-time.ts says what that costs).
    res.setHeader('date', httpDate());
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (req.method === 'GET' && path === '/readyz') {
        const body = JSON.stringify({ ready: readiness.ready, checks: readiness.snapshot() });
        res.writeHead(readiness.ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${body}\n`);
      } else if (req.method === 'GET' && path === '/metrics') {
        const text = await registry.metrics();
        res.writeHead(200, { 'content-type': registry.contentType }).end(text);
      } else if (!(options.extra && (await options.extra(req, res)))) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    } catch (error) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`internal error: ${(error as Error).message}\n`);
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
