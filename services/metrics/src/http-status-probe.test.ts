import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpStatusProbe } from './http-status-probe.js';

describe('httpStatusProbe', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((request, response) => {
      if (request.url === '/slow') return; // never answers
      response.statusCode = request.url === '/readyz' ? 200 : 503;
      response.end('{"ok":true}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it('answers the status code of a GET', async () => {
    expect(await httpStatusProbe(`${base}/readyz`, 1000)).toBe(200);
    expect(await httpStatusProbe(`${base}/other`, 1000)).toBe(503);
  });

  it('rejects when nothing answers in time, or nothing listens', async () => {
    await expect(httpStatusProbe(`${base}/slow`, 100)).rejects.toThrow(/no answer within 100 ms/);
    await expect(httpStatusProbe('http://127.0.0.1:1/readyz', 1000)).rejects.toThrow(/ECONNREFUSED/);
  });
});
