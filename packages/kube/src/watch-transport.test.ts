import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient } from './kube-client.js';
import { isGone, KubeApiError } from './kube-error.js';
import { kubeWatchTransport, type WatchTarget } from './watch-transport.js';

const session: WatchTarget = {
  path: '/apis/stream.streamspace.io/v1alpha1/sessions',
  plural: 'sessions',
  apiVersion: 'stream.streamspace.io/v1alpha1',
  objectKind: 'Session',
  custom: true,
};
const pods = (namespace?: string): WatchTarget => ({
  path: namespace ? `/api/v1/namespaces/${namespace}/pods` : '/api/v1/pods',
  plural: 'pods',
  apiVersion: 'v1',
  objectKind: 'Pod',
  labelSelector: 'app.kubernetes.io/managed-by=streamspace',
});

/** A stand-in API server answering lists only; the real one is exercised by the integration tests. */
let server: Server;
let kube: KubeClient;
const requests: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const url = new URL(req.url ?? '/', 'http://x');
    const send = (status: number, body: unknown) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (url.pathname === '/api/v1/namespaces/team-a/pods') {
      if (url.searchParams.get('continue') === 'expired') {
        return send(410, { kind: 'Status', code: 410, message: 'the continue token has expired' });
      }
      return send(200, {
        kind: 'PodList',
        metadata: { resourceVersion: '77', continue: 'page-2' },
        items: [{ metadata: { name: 'p1', namespace: 'team-a' } }],
      });
    }
    if (url.pathname === '/apis/stream.streamspace.io/v1alpha1/sessions') {
      return send(404, {
        kind: 'Status',
        code: 404,
        message: 'the server could not find the requested resource',
      });
    }
    send(403, { kind: 'Status', code: 403, message: 'pods is forbidden' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  kube = new KubeClient({ server: new URL(`http://127.0.0.1:${port}`) }, { maxRetries: 0 });
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('kubeWatchTransport list', () => {
  it('lists raw JSON with the selector, fills in apiVersion and kind, and passes the continue token on', async () => {
    const page = await kubeWatchTransport(kube, pods('team-a')).list({ limit: 2 });
    expect(page).toEqual({
      items: [{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p1', namespace: 'team-a' } }],
      resourceVersion: '77',
      continueToken: 'page-2',
    });
    const query = new URL(requests.at(-1) ?? '', 'http://x').searchParams;
    expect(query.get('labelSelector')).toBe('app.kubernetes.io/managed-by=streamspace');
    expect(query.get('limit')).toBe('2');
  });

  it('reports an expired list as 410, so the watch starts the list over', async () => {
    const failure = kubeWatchTransport(kube, pods('team-a')).list({ limit: 2, continueToken: 'expired' });
    await expect(failure).rejects.toBeInstanceOf(KubeApiError);
    expect(isGone(await failure.catch((error: unknown) => error))).toBe(true);
  });

  it('says what to check when the API server refuses', async () => {
    await expect(kubeWatchTransport(kube, session).list({ limit: 1 })).rejects.toThrow(
      /: 404 the server could not find the requested resource \(is the CustomResourceDefinition installed\?/,
    );
    await expect(kubeWatchTransport(kube, pods()).list({ limit: 1 })).rejects.toThrow(
      /: 403 pods is forbidden \(.*check the service's RBAC\)/,
    );
  });
});
