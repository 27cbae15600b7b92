import type { ServerResponse } from 'node:http';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeApiServer, send } from './fake-api-server.test-support.js';
import { KubeClient, parseRetryAfter } from './kube-client.js';
import type { TokenSource } from './kube-credentials.js';
import {
  isConflict,
  isGone,
  isNotFound,
  isTooManyRequests,
  KubeApiError,
  statusCode,
  statusError,
} from './kube-error.js';
import type { KubeClientMetrics } from './kube-metrics.js';

const sessions = { group: 'stream.streamspace.io', version: 'v1alpha1', plural: 'sessions', namespace: 'a' };

function recordingMetrics() {
  const seen = {
    retried: [] as string[],
    exhausted: [] as string[],
    throttledMs: 0,
    malformed: 0,
    consumerErrors: 0,
    watchesRequested: 0,
    watchesAnswered: 0,
  };
  const metrics: KubeClientMetrics = {
    retried: (method, reason) => seen.retried.push(`${method} ${reason}`),
    exhausted: (method, reason) => seen.exhausted.push(`${method} ${reason}`),
    throttled: (ms) => {
      seen.throttledMs += ms;
    },
    malformedWatchLine: () => seen.malformed++,
    consumerError: () => seen.consumerErrors++,
    watchRequested: () => seen.watchesRequested++,
    watchAnswered: () => seen.watchesAnswered++,
    watchEnded: (answered) => {
      seen.watchesRequested--;
      if (answered) seen.watchesAnswered--;
    },
  };
  return { seen, metrics };
}

let api: FakeApiServer;
beforeEach(async () => {
  api = await FakeApiServer.start();
});
afterEach(() => api.close());

describe('the one error type', () => {
  it('answers the four questions and the status code, and nothing for other errors', async () => {
    api.handler = (q, r) =>
      send(r, Number(q.query.get('code')), { kind: 'Status', message: 'no', reason: 'Why' });
    const kube = new KubeClient({ server: api.url }, { maxRetries: 0 });
    const failure = (code: number) =>
      kube.request('GET', '/api/v1/pods', { query: { code } }).catch((e: unknown) => e);
    expect(isNotFound(await failure(404))).toBe(true);
    expect(isConflict(await failure(409))).toBe(true);
    expect(isGone(await failure(410))).toBe(true);
    expect(isTooManyRequests(await failure(429))).toBe(true);
    const invalid = await failure(422);
    expect(invalid).toBeInstanceOf(KubeApiError);
    expect(statusCode(invalid)).toBe(422);
    expect((invalid as KubeApiError).reason).toBe('Why');
    expect(statusCode(new Error('socket hang up'))).toBeUndefined();
    expect(isNotFound(new Error('404'))).toBe(false);
  });

  it('is made of a Kubernetes Status object (a watch ERROR event), which answers the same questions', () => {
    const status = { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' };
    const gone = statusError(status, 'watch error event');
    expect(gone).toBeInstanceOf(KubeApiError);
    expect(isGone(gone)).toBe(true);
    expect(gone.reason).toBe('Expired');
    expect(gone.body).toBe(status);
    expect(gone.message).toBe('watch error event: 410 Expired: too old resource version');
    expect(isGone(statusError({ kind: 'Status', code: 500, message: 'etcd is sad' }, 'w'))).toBe(false);
    // A Status without a code (or not an object at all) is still an error: a 500, retried.
    for (const odd of [{ message: 'what' }, { code: '410' }, null, 'junk']) {
      const error = statusError(odd, 'w');
      expect(statusCode(error)).toBe(500);
      expect(isGone(error)).toBe(false);
    }
  });
});

describe('retries', () => {
  it('sends a 429 again after the Retry-After the server asked for, and counts it', async () => {
    let calls = 0;
    api.handler = (_q, r) => {
      calls++;
      if (calls === 1)
        return send(r, 429, { message: 'slow down', reason: 'TooManyRequests' }, { 'retry-after': '1' });
      send(r, 200, { items: [], metadata: { resourceVersion: '5' } });
    };
    const { seen, metrics } = recordingMetrics();
    const kube = new KubeClient({ server: api.url }, { metrics, backoff: { initialMs: 1, maxMs: 1 } });
    const started = Date.now();
    const list = await kube.list(sessions);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(list.metadata.resourceVersion).toBe('5');
    expect(seen.retried).toEqual(['GET 429']);
  });

  it('retries 5xx with backoff up to the bound, then gives the error to the caller', async () => {
    api.handler = (_q, r) => send(r, 503, { message: 'etcd is sad' });
    const { seen, metrics } = recordingMetrics();
    const kube = new KubeClient(
      { server: api.url },
      { metrics, maxRetries: 3, backoff: { initialMs: 1, maxMs: 2 } },
    );
    const error = await kube.apply({ ...sessions, name: 's' }, {}, 'me').catch((e: unknown) => e);
    expect(statusCode(error)).toBe(503);
    expect(api.requests).toHaveLength(4);
    expect(seen.retried).toEqual(['PATCH 503', 'PATCH 503', 'PATCH 503']);
    expect(seen.exhausted).toEqual(['PATCH 503']);
  });

  it('does not repeat a create that failed with a 5xx the server gave no Retry-After for', async () => {
    api.handler = (_q, r) => send(r, 500, { message: 'internal error' });
    const kube = new KubeClient({ server: api.url }, { backoff: { initialMs: 1, maxMs: 1 } });
    await expect(kube.create(sessions, {})).rejects.toThrow(/500 internal error/);
    expect(api.requests).toHaveLength(1);
  });

  it('does not retry what can never succeed', async () => {
    api.handler = (_q, r) => send(r, 422, { message: 'spec.state: Unsupported value' });
    const kube = new KubeClient({ server: api.url }, { backoff: { initialMs: 1, maxMs: 1 } });
    await expect(kube.mergePatch({ ...sessions, name: 's' }, {})).rejects.toThrow(/422 spec.state/);
    expect(api.requests).toHaveLength(1);
  });

  it('reads Retry-After as seconds or as a date', () => {
    expect(parseRetryAfter('3')).toBe(3);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 5_000)).toBe(5);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });

  it('reads the token again and retries once when the API server answers 401', async () => {
    let current = 'old';
    let invalidated = 0;
    const token: TokenSource = {
      get: () => current,
      invalidate: () => {
        invalidated++;
        current = 'rotated';
      },
    };
    api.handler = (q, r) =>
      q.headers.authorization === 'Bearer rotated'
        ? send(r, 200, { ok: true })
        : send(r, 401, { message: 'Unauthorized' });
    const kube = new KubeClient({ server: api.url, token }, { maxRetries: 0 });
    await expect(kube.get({ ...sessions, name: 's' })).resolves.toEqual({ ok: true });
    expect(invalidated).toBe(1);
    expect(api.requests.map((q) => q.headers.authorization)).toEqual(['Bearer old', 'Bearer rotated']);
  });
});

describe('the client-side rate limit', () => {
  it('lets the burst go at once, then spaces requests at QPS', async () => {
    api.handler = (_q, r) => send(r, 200, {});
    const { seen, metrics } = recordingMetrics();
    const kube = new KubeClient({ server: api.url }, { qps: 20, burst: 5, metrics });
    const started = Date.now();
    await Promise.all(Array.from({ length: 10 }, () => kube.get({ ...sessions, name: 's' })));
    // 5 at once, then 5 more at 20/s: the last leaves 250 ms after the first.
    expect(Date.now() - started).toBeGreaterThanOrEqual(240);
    expect(seen.throttledMs).toBeGreaterThan(0);
  });
});

describe('connections', () => {
  it('keeps at most maxConnections requests open at once; the others wait their turn', async () => {
    let open = 0;
    let most = 0;
    api.handler = (_q, r) => {
      open++;
      most = Math.max(most, open);
      setTimeout(() => {
        open--;
        send(r, 200, {});
      }, 20);
    };
    const kube = new KubeClient({ server: api.url }, { qps: 0, maxConnections: 3 });
    await Promise.all(Array.from({ length: 12 }, () => kube.get({ ...sessions, name: 's' })));
    expect(api.requests).toHaveLength(12);
    expect(most).toBe(3);
    kube.close();
  });
});

describe('a list read item by item', () => {
  it('hands each item on as it arrives and resolves with the list metadata', async () => {
    const seen: string[] = [];
    let firstSeen: () => void = () => undefined;
    const first = new Promise<void>((resolve) => {
      firstSeen = resolve;
    });
    api.handler = (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/json' });
      r.write('{"kind":"PodList","metadata":{"resourceVersion":"5","continue":"c"},"items":[{"a":1},');
      // The rest is sent only once the client has handed the first item on.
      void first.then(() => r.end('{"b":"]"}]}'));
    };
    const kube = new KubeClient({ server: api.url }, { maxRetries: 0 });
    const metadata = await kube.listItems(sessions, { limit: 2 }, (json) => {
      seen.push(json);
      firstSeen();
    });
    expect(metadata).toEqual({ resourceVersion: '5', continue: 'c' });
    expect(seen).toEqual(['{"a":1}', '{"b":"]"}']);
  });

  it('reads a refusal whole into its error, retries it, and hands on only the answer that came', async () => {
    let calls = 0;
    api.handler = (_q, r) =>
      ++calls === 1
        ? send(r, 503, { kind: 'Status', code: 503, message: 'try later', items: [{ no: 1 }] })
        : send(r, 200, { metadata: { resourceVersion: '8' }, items: [{ yes: 1 }] });
    const seen: string[] = [];
    const kube = new KubeClient({ server: api.url }, { maxRetries: 1, backoff: { initialMs: 1, maxMs: 1 } });
    expect(await kube.listItems(sessions, {}, (json) => seen.push(json))).toEqual({ resourceVersion: '8' });
    expect(seen).toEqual(['{"yes":1}']);
    api.handler = (_q, r) => send(r, 410, { kind: 'Status', code: 410, message: 'too old', items: [{ no: 1 }] });
    const gone = await kube.listItems(sessions, {}, (json) => seen.push(json)).catch((e: unknown) => e);
    expect(isGone(gone)).toBe(true);
    expect((gone as Error).message).toMatch(/too old/);
    expect(seen).toEqual(['{"yes":1}']);
  });

  it('fails the list when what takes an item fails, or when the answer ends inside the list', async () => {
    api.handler = (_q, r) => send(r, 200, { metadata: { resourceVersion: '8' }, items: [{ a: 1 }, { b: 2 }] });
    const kube = new KubeClient({ server: api.url }, { maxRetries: 0 });
    await expect(
      kube.listItems(sessions, {}, () => {
        throw new Error('no room');
      }),
    ).rejects.toThrow('no room');
    api.handler = (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/json' });
      r.end('{"metadata":{},"items":[{"a":1},{"b"');
    };
    await expect(kube.listItems(sessions, {}, () => undefined)).rejects.toThrow(/ended inside it \(after 1 items\)/);
  });
});

describe('watch', () => {
  it('asks for bookmarks, skips and counts malformed lines and failing consumers, and goes on', async () => {
    api.handler = (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/json' });
      r.write('{"type":"ADDED","object":{"n":1}}\nnot json\n{"object":{}}\n');
      r.write('{"type":"MODIFIED","object":{"n":2}}\n{"type":"BOOKMARK","object":{"n":3}}\n');
      r.end();
    };
    const { seen, metrics } = recordingMetrics();
    const warnings: string[] = [];
    const kube = new KubeClient({ server: api.url }, { metrics, log: { warn: (_f, m) => warnings.push(m) } });
    const events: string[] = [];
    const ended = await new Promise<Error | undefined>((resolve) =>
      kube.watch<{ n: number }>(
        sessions,
        { resourceVersion: '5' },
        (event) => {
          events.push(`${event.type} ${event.object.n}`);
          if (event.type === 'MODIFIED') throw new Error('consumer bug');
        },
        resolve,
      ),
    );
    expect(ended).toBeUndefined();
    expect(events).toEqual(['ADDED 1', 'MODIFIED 2', 'BOOKMARK 3']);
    expect(seen.malformed).toBe(2);
    expect(seen.consumerErrors).toBe(1);
    expect(warnings).toHaveLength(3);
    expect(api.requests[0]?.query.get('allowWatchBookmarks')).toBe('true');
    expect(api.requests[0]?.query.get('watch')).toBe('true');
  });

  it('says when the API server answered a watch, and counts watches requested and answered', async () => {
    let hold: ServerResponse | undefined;
    api.handler = (_q, r) => {
      hold = r;
    };
    const { seen, metrics } = recordingMetrics();
    const kube = new KubeClient({ server: api.url }, { metrics });
    let answered = 0;
    const watch = kube.watch(
      sessions,
      { resourceVersion: '5' },
      () => {},
      () => {},
      () => answered++,
    );
    try {
      // Sent and received, not answered: requested only.
      await vi.waitFor(() => expect(hold).toBeDefined());
      expect(seen.watchesRequested).toBe(1);
      expect(seen.watchesAnswered).toBe(0);
      expect(answered).toBe(0);
      hold?.writeHead(200, { 'content-type': 'application/json' }).flushHeaders();
      await vi.waitFor(() => expect(answered).toBe(1));
      expect(seen.watchesAnswered).toBe(1);
      watch.abort();
      expect(seen).toMatchObject({ watchesRequested: 0, watchesAnswered: 0 });
    } finally {
      watch.abort();
      hold?.end();
      kube.close();
    }
  });

  it('ends with a 410 KubeApiError on an expired resourceVersion, and carries a refused start’s Retry-After', async () => {
    api.handler = (q, r) => {
      if (q.query.get('resourceVersion') === 'old') {
        r.writeHead(200).end(
          '{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}\n',
        );
      } else send(r, 429, { message: 'slow down' }, { 'retry-after': '7' });
    };
    const kube = new KubeClient({ server: api.url });
    const watchOnce = (resourceVersion: string) =>
      new Promise<Error | undefined>((resolve) =>
        kube.watch(sessions, { resourceVersion }, () => {}, resolve),
      );
    const gone = await watchOnce('old');
    expect(isGone(gone)).toBe(true);
    const refused = await watchOnce('5');
    expect(isTooManyRequests(refused)).toBe(true);
    expect((refused as KubeApiError).retryAfterSeconds).toBe(7);
  });
  it('starts every watch at once however many stay open, and leaves the requests their connections', async () => {
    // Each watch holds its HTTP/1.1 connection for minutes: the watcher has one per kind and
    // namespace (80 with 10 namespaces), more than KUBE_MAX_CONNECTIONS (64). Counted against that
    // pool, the watches beyond it waited for a socket, unseen, while their informers took them
    // for up, and a change in their namespace was not seen until a watch ended (issue 13).
    const open: ServerResponse[] = [];
    api.handler = (q, r) => {
      if (q.query.get('watch') !== 'true') return send(r, 200, { metadata: { name: 's' } });
      r.writeHead(200, { 'content-type': 'application/json' });
      r.write('');
      open.push(r);
    };
    const kube = new KubeClient({ server: api.url }, { maxConnections: 2 });
    const watches = [0, 1, 2, 3].map((n) =>
      kube.watch(
        { ...sessions, namespace: `ns-${n}` },
        { resourceVersion: '1' },
        () => {},
        () => {},
      ),
    );
    try {
      await vi.waitFor(() => expect(open).toHaveLength(4), { timeout: 2_000 });
      expect(api.requests.filter((q) => q.query.get('watch') === 'true')).toHaveLength(4);
      await expect(kube.get({ ...sessions, name: 's' })).resolves.toEqual({ metadata: { name: 's' } });
    } finally {
      for (const watch of watches) watch.abort();
      for (const response of open) response.end();
      kube.close();
    }
  });
});

describe('request framing', () => {
  it('sizes a DELETE body, so the next request on the same connection is read as sent', async () => {
    api.handler = (_q, r) => send(r, 200, {});
    const kube = new KubeClient({ server: api.url });
    await kube.delete({ ...sessions, name: 's' });
    await kube.create(sessions, { metadata: { name: 't' } });
    expect(api.requests.map((q) => [q.method, q.headers['content-length'], q.body])).toEqual([
      [
        'DELETE',
        String(
          JSON.stringify({ kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' }).length,
        ),
        { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' },
      ],
      ['POST', '25', { metadata: { name: 't' } }],
    ]);
  });
});
