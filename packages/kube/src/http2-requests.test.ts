import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Http2Requests } from './http2-requests.js';

/** A plain-text HTTP/2 server (h2c): the transport is the same once TLS has chosen h2. */
async function h2cServer(
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: string) => void,
  settings: http2.Settings = {},
) {
  const server = http2.createServer({ settings });
  let open = 0;
  let maxOpen = 0;
  const sessions = new Set<http2.ServerHttp2Session>();
  let connections = 0;
  server.on('session', (session) => {
    connections++;
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  server.on('stream', (stream, headers) => {
    // A stream the test resets ends with an error on this side too.
    stream.on('error', () => undefined);
    maxOpen = Math.max(maxOpen, ++open);
    stream.on('close', () => open--);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => onStream(stream, headers, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    connections: () => connections,
    maxOpen: () => maxOpen,
    goaway: () => {
      for (const session of sessions) session.close();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  };
}

const plain = (port: number) => () =>
  new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe('requests over one HTTP/2 connection', () => {
  it('sends method, target, headers and body, and reads status, body and Retry-After', async () => {
    const seen: string[] = [];
    const server = await h2cServer((stream, headers, body) => {
      seen.push(`${headers[':method']} ${headers[':path']} ${headers['content-type']} ${body}`);
      stream.respond({ ':status': 429, 'retry-after': '3', 'content-type': 'application/json' });
      stream.end('{"kind":"Status"}');
    });
    cleanups.push(server.close);
    const requests = new Http2Requests(new URL(`http://127.0.0.1:${server.port}`), plain(server.port));
    cleanups.push(() => requests.close());
    const answer = await requests.send(
      'PATCH',
      '/api/v1/namespaces/a/services/b?fieldManager=m&force=true',
      '/api/v1/namespaces/a/services/b',
      { 'content-type': 'application/apply-patch+yaml', 'content-length': 7 },
      '{"a":1}',
      5_000,
    );
    expect(answer).toEqual({ status: 429, text: '{"kind":"Status"}', retryAfter: '3' });
    expect(seen).toEqual([
      'PATCH /api/v1/namespaces/a/services/b?fieldManager=m&force=true application/apply-patch+yaml {"a":1}',
    ]);
  });

  it('sends the body of a DELETE (DeleteOptions), which Node would otherwise not', async () => {
    const bodies: string[] = [];
    const server = await h2cServer((stream, _headers, body) => {
      bodies.push(body);
      stream.respond({ ':status': 200 });
      stream.end('{}');
    });
    cleanups.push(server.close);
    const requests = new Http2Requests(new URL(`http://127.0.0.1:${server.port}`), plain(server.port));
    cleanups.push(() => requests.close());
    const options = '{"kind":"DeleteOptions","propagationPolicy":"Background"}';
    expect((await requests.send('DELETE', '/x', '/x', {}, options, 5_000))?.status).toBe(200);
    expect(bodies).toEqual([options]);
  });

  it("gives a 2xx answer's text to the sink as it arrives, and a refusal's text whole", async () => {
    const server = await h2cServer((stream, headers) => {
      stream.respond({ ':status': headers[':path'] === '/ok' ? 200 : 410 });
      stream.write('{"items":[1,');
      setTimeout(() => stream.end('2]}'), 20);
    });
    cleanups.push(server.close);
    const requests = new Http2Requests(new URL(`http://127.0.0.1:${server.port}`), plain(server.port));
    cleanups.push(() => requests.close());
    const seen: string[] = [];
    const statuses: number[] = [];
    const sink = (status: number) => {
      statuses.push(status);
      return status === 200 ? { write: (chunk: string) => seen.push(chunk), end: () => 'the rest' } : undefined;
    };
    const ok = await requests.send('GET', '/ok', '/ok', {}, undefined, 5_000, sink);
    expect(ok).toEqual({ status: 200, text: 'the rest', retryAfter: undefined });
    expect(seen).toEqual(['{"items":[1,', '2]}']);
    const refused = await requests.send('GET', '/gone', '/gone', {}, undefined, 5_000, sink);
    expect(refused?.text).toBe('{"items":[1,2]}');
    expect(statuses).toEqual([200, 410]);
  });

  it('shares one connection between requests, and opens a new one after the server closed it', async () => {
    const server = await h2cServer((stream) => {
      stream.respond({ ':status': 200 });
      stream.end('{}');
    });
    cleanups.push(server.close);
    const requests = new Http2Requests(new URL(`http://127.0.0.1:${server.port}`), plain(server.port));
    cleanups.push(() => requests.close());
    const get = () => requests.send('GET', '/version', '/version', {}, undefined, 5_000);
    await Promise.all([get(), get(), get()]);
    expect(server.connections()).toBe(1);
    server.goaway();
    await expect.poll(async () => (await get())?.status, { timeout: 5_000 }).toBe(200);
    expect(server.connections()).toBe(2);
  });

  it("waits for the server's limit on concurrent streams before the first requests", async () => {
    const server = await h2cServer(
      (stream) =>
        setTimeout(() => {
          stream.respond({ ':status': 200 });
          stream.end('{}');
        }, 20),
      { maxConcurrentStreams: 2 },
    );
    cleanups.push(server.close);
    const requests = new Http2Requests(new URL(`http://127.0.0.1:${server.port}`), plain(server.port));
    cleanups.push(() => requests.close());
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => requests.send('GET', '/version', '/version', {}, undefined, 5_000)),
    );
    expect(answers.map((a) => a?.status)).toEqual(Array(8).fill(200));
    expect(server.maxOpen()).toBe(2);
  });

  it('carries long-lived streams (watches) beside requests, and opens another connection past the server limit', async () => {
    const open: http2.ServerHttp2Stream[] = [];
    const server = await h2cServer(
      (stream, headers) => {
        stream.respond({ ':status': 200 });
        if (String(headers[':path']).startsWith('/watch')) {
          stream.write(`{"type":"BOOKMARK","path":"${headers[':path']}"}\n`);
          open.push(stream);
        } else stream.end('{}');
      },
      { maxConcurrentStreams: 6 },
    );
    cleanups.push(server.close);
    const requests = new Http2Requests(new URL(`http://127.0.0.1:${server.port}`), plain(server.port));
    cleanups.push(() => requests.close());
    const watches = await Promise.all(
      Array.from({ length: 5 }, (_, i) => requests.stream('GET', `/watch${i}`, `/watch${i}`, {})),
    );
    const firstLines = await Promise.all(
      watches.map(
        (stream) =>
          new Promise<string>((resolve) => {
            stream?.setEncoding('utf8');
            stream?.once('data', (chunk: string) => resolve(chunk.trim()));
          }),
      ),
    );
    expect(firstLines).toEqual(Array.from({ length: 5 }, (_, i) => `{"type":"BOOKMARK","path":"/watch${i}"}`));
    // Five watches, three a connection (half the server's six): two connections, none waiting for a stream.
    expect(server.connections()).toBe(2);
    expect(requests.connectionCount).toBe(2);
    // A request goes on the first connection, beside its watches; a sixth watch fills the second.
    expect((await requests.send('GET', '/version', '/version', {}, undefined, 5_000))?.status).toBe(200);
    const sixth = await requests.stream('GET', '/watch5', '/watch5', {});
    expect(server.connections()).toBe(2);
    // Both full of watches: a closed watch gives its place back, the next watch takes it, no third connection.
    watches[0]?.close(http2.constants.NGHTTP2_CANCEL);
    await new Promise((resolve) => watches[0]?.once('close', resolve));
    const seventh = await requests.stream('GET', '/watch6', '/watch6', {});
    await new Promise((resolve) => seventh?.once('response', resolve));
    expect(server.connections()).toBe(2);
    sixth?.close();
    seventh?.close();
    for (const stream of open) stream.end();
  });

  it('answers a stream undefined, sending nothing, when the server chose HTTP/1.1', async () => {
    const requests = new Http2Requests(new URL('https://127.0.0.1:1'), async () => undefined);
    expect(await requests.stream('GET', '/watch', '/watch', {})).toBeUndefined();
  });

  it('says a stream the server refused never reached it (ECONNREFUSED: safe to send again)', async () => {
    const server = await h2cServer((stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM));
    cleanups.push(server.close);
    const requests = new Http2Requests(new URL(`http://127.0.0.1:${server.port}`), plain(server.port));
    cleanups.push(() => requests.close());
    await expect(requests.send('POST', '/x', '/x', {}, '{}', 5_000)).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
  });

  it('answers undefined, sending nothing, when the server chose HTTP/1.1', async () => {
    let connects = 0;
    const requests = new Http2Requests(new URL('https://127.0.0.1:1'), async () => {
      connects++;
      return undefined;
    });
    expect(await requests.send('GET', '/version', '/version', {}, undefined, 5_000)).toBeUndefined();
    expect(await requests.send('GET', '/version', '/version', {}, undefined, 5_000)).toBeUndefined();
    expect(connects).toBe(1);
  });
});
