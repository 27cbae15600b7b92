import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeApiServer, send } from './fake-api-server.test-support.js';
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

let api: FakeApiServer;
let kube: KubeClient;

beforeAll(async () => {
  api = await FakeApiServer.start((q, r) => {
    if (q.path === '/api/v1/namespaces/team-a/pods') {
      if (q.query.get('continue') === 'expired') {
        return send(r, 410, { kind: 'Status', code: 410, message: 'the continue token has expired' });
      }
      return send(r, 200, {
        kind: 'PodList',
        metadata: { resourceVersion: '77', continue: 'page-2' },
        items: [{ metadata: { name: 'p1', namespace: 'team-a' } }, 'not an object', { metadata: { name: 'p2' } }],
      });
    }
    if (q.path === '/apis/stream.streamspace.io/v1alpha1/sessions') {
      return send(r, 404, {
        kind: 'Status',
        code: 404,
        message: 'the server could not find the requested resource',
      });
    }
    send(r, 403, { kind: 'Status', code: 403, message: 'pods is forbidden' });
  });
  kube = new KubeClient({ server: api.url }, { maxRetries: 0 });
});

afterAll(() => api.close());

describe('kubeWatchTransport list', () => {
  it('lists raw JSON item by item with the selector, fills in apiVersion and kind, and passes the continue token on', async () => {
    const items: unknown[] = [];
    const page = await kubeWatchTransport(kube, pods('team-a')).list({ limit: 2 }, (item) => items.push(item));
    expect(page).toEqual({ resourceVersion: '77', continueToken: 'page-2' });
    // What is not an object is handed on as it is, for the informer to report as malformed.
    expect(items).toEqual([
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p1', namespace: 'team-a' } },
      'not an object',
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p2' } },
    ]);
    const query = api.requests.at(-1)?.query ?? new URLSearchParams();
    expect(query.get('labelSelector')).toBe('app.kubernetes.io/managed-by=streamspace');
    expect(query.get('limit')).toBe('2');
  });

  it('reports an expired list as 410, so the watch starts the list over', async () => {
    const failure = kubeWatchTransport(kube, pods('team-a')).list({ limit: 2, continueToken: 'expired' }, () => undefined);
    await expect(failure).rejects.toBeInstanceOf(KubeApiError);
    expect(isGone(await failure.catch((error: unknown) => error))).toBe(true);
  });

  it('says what to check when the API server refuses', async () => {
    await expect(kubeWatchTransport(kube, session).list({ limit: 1 }, () => undefined)).rejects.toThrow(
      /: 404 the server could not find the requested resource \(is the CustomResourceDefinition installed\?/,
    );
    await expect(kubeWatchTransport(kube, pods()).list({ limit: 1 }, () => undefined)).rejects.toThrow(
      /: 403 pods is forbidden \(.*check the service's RBAC\)/,
    );
  });
});
