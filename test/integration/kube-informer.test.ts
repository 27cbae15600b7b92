import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type CacheChange,
  createKubeClientMetrics,
  Informer,
  KubeClient,
  kubeWatchTransport,
  RESTART_REASONS,
  type RestartReason,
} from '@streamspace/kube';
import { Counter, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiProxy } from './api-proxy.js';
import { eventually } from './harness.js';
import { type PrivateCluster, startPrivateCluster } from './private-cluster.js';

/**
 * packages/kube's client and informer against a real kube-apiserver and etcd, broken the ways
 * they break in production: a 429 with Retry-After, a watch that goes silent, an API-server
 * restart, and a resourceVersion etcd has compacted away (410 Gone). Each must recover on its
 * own, and the metric must count it. A cluster of its own: this file restarts kube-apiserver.
 */

let cluster: PrivateCluster;
let proxy: ApiProxy;
let direct: KubeClient;

beforeAll(async () => {
  cluster = await startPrivateCluster('kube-informer', 1);
  proxy = await ApiProxy.start(cluster.kubeconfig);
  direct = KubeClient.fromEnvironment({}, { KUBECONFIG: cluster.kubeconfig });
}, 300_000);

afterAll(async () => {
  await proxy?.close();
  direct?.close();
  await cluster?.delete();
});

/** etcd's own JSON gateway (there is no etcdctl in the toolchain): where kwokctl put etcd. */
function etcdEndpoint(): string {
  const config = readFileSync(join(cluster.workdir, 'clusters', cluster.name, 'kwok.yaml'), 'utf8');
  const url = /--listen-client-urls=(\S+)/.exec(config)?.[1];
  if (!url) throw new Error('no etcd client URL in the kwok cluster config');
  return url;
}

/** Compacts etcd at its current revision: every resourceVersion before it is gone for good. */
async function compactEtcd(): Promise<number> {
  const etcd = etcdEndpoint();
  const post = async (path: string, body: unknown) => {
    const answer = await fetch(`${etcd}${path}`, { method: 'POST', body: JSON.stringify(body) });
    if (!answer.ok) throw new Error(`etcd ${path}: ${answer.status} ${await answer.text()}`);
    return (await answer.json()) as { header: { revision: string } };
  };
  const revision = Number(
    (await post('/v3/kv/range', { key: Buffer.from('/registry').toString('base64') })).header.revision,
  );
  await post('/v3/kv/compaction', { revision: String(revision), physical: true });
  return revision;
}

/** apiserver_cache_list_total of ConfigMaps: lists the API server answered from its watch cache. */
async function cacheListsOfConfigMaps(): Promise<number> {
  const text = await direct.request<string>('GET', '/metrics');
  const line = text
    .split('\n')
    .find((l) => l.startsWith('apiserver_cache_list_total{') && l.includes('resource="configmaps"'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

let namespaces = 0;
async function namespace(): Promise<string> {
  const name = `informer-${process.pid}-${++namespaces}`;
  await direct.create({ version: 'v1', plural: 'namespaces' }, { metadata: { name } });
  return name;
}

const configMap = (ns: string, name: string) =>
  direct.create(
    { version: 'v1', plural: 'configmaps', namespace: ns },
    { metadata: { name, namespace: ns } },
  );

/** An informer of one namespace's ConfigMaps, its restarts counted by reason in a registry of its own. */
function watchConfigMaps(kube: KubeClient, ns: string, silenceTimeoutMs = 120_000) {
  const registry = new Registry();
  const restarts = new Counter({
    name: 'test_informer_restarts_total',
    help: 'Informer restarts by reason.',
    labelNames: ['reason'],
    registers: [registry],
  });
  for (const reason of RESTART_REASONS) restarts.labels(reason).inc(0);
  const changes: string[] = [];
  const informer = new Informer({
    resource: 'configmaps',
    transport: kubeWatchTransport(kube, {
      path: `/api/v1/namespaces/${ns}/configmaps`,
      plural: 'configmaps',
      apiVersion: 'v1',
      objectKind: 'ConfigMap',
    }),
    watchTimeoutSeconds: 300,
    silenceTimeoutMs,
    backoff: { initialMs: 100, maxMs: 1_000 },
    onChanges: (batch: CacheChange[]) => changes.push(...batch.map((c) => `${c.type} ${c.object.name}`)),
    onMalformed: (_raw, reason) => {
      throw new Error(`malformed object: ${reason}`);
    },
    onState: () => {},
    onRestart: (reason) => restarts.labels(reason).inc(),
  });
  const stop = new AbortController();
  const running = informer.run(stop.signal);
  const count = async (reason: RestartReason) =>
    (await restarts.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  return {
    informer,
    changes,
    count,
    has: (name: string) => informer.cache.get(ns, name) !== undefined,
    async stop() {
      stop.abort();
      await running;
    },
  };
}

describe('the kube client and informer against a real API server', () => {
  it('waits what a 429 asks (Retry-After), then succeeds, and counts the retry', async () => {
    const ns = await namespace();
    const registry = new Registry();
    const kube = new KubeClient({ server: proxy.url }, { metrics: createKubeClientMetrics(registry) });
    await configMap(ns, 'listed');
    proxy.throttle(1, 1);
    const started = Date.now();
    const list = await kube.list({ version: 'v1', plural: 'configmaps', namespace: ns });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(list.items.map((c) => (c as { metadata: { name: string } }).metadata.name)).toContain('listed');
    expect(proxy.throttled).toBe(1);
    const retries =
      (await registry.getSingleMetric('streamspace_kube_request_retries_total')?.get())?.values ?? [];
    expect(
      retries.find(
        (v: { labels: Record<string, unknown>; value: number }) =>
          v.labels.method === 'GET' && v.labels.reason === '429',
      )?.value,
    ).toBe(1);

    // A watch refused with 429 is started again after the Retry-After, and misses nothing.
    const watch = watchConfigMaps(kube, ns);
    try {
      await eventually(() => expect(watch.informer.ready).toBe(true));
      proxy.throttle(1, 1, (req) => (req.url ?? '').includes('watch=true'));
      proxy.cutAll();
      await configMap(ns, 'while-throttled');
      await eventually(() => expect(watch.has('while-throttled')).toBe(true));
      expect(proxy.throttled).toBe(2);
      expect(await watch.count('error')).toBeGreaterThanOrEqual(1);
    } finally {
      await watch.stop();
      kube.close();
    }
  });

  it('restarts a watch that went silent without closing (the watchdog), and catches up', async () => {
    const ns = await namespace();
    const kube = new KubeClient({ server: proxy.url });
    const cachedBefore = await cacheListsOfConfigMaps();
    const watch = watchConfigMaps(kube, ns, 2_000);
    try {
      await eventually(() => expect(watch.informer.ready).toBe(true));
      // Its list, consistent and paged, was answered from the watch cache, not read from etcd.
      expect(await cacheListsOfConfigMaps()).toBeGreaterThan(cachedBefore);
      const before = await watch.count('watchdog');
      proxy.setMode('silent');
      await configMap(ns, 'during-silence');
      await eventually(async () => expect(await watch.count('watchdog')).toBeGreaterThan(before), 15_000);
      // Over two seconds after it was made, a silent path has still not delivered it.
      expect(watch.has('during-silence')).toBe(false);
      proxy.setMode('forward');
      await eventually(() => expect(watch.has('during-silence')).toBe(true), 15_000);
      expect(watch.informer.ready).toBe(true);
    } finally {
      proxy.setMode('forward');
      await watch.stop();
      kube.close();
    }
  });

  it('watches more namespaces than KUBE_MAX_CONNECTIONS at once, and sees a change in each', async () => {
    // The watcher holds one watch per kind and namespace (80 with 10 namespaces, against 64
    // connections). Watches counted against the cap waited for a socket while their informers
    // reported them up, and a change in their namespace went unseen (issue 13).
    const names = await Promise.all([1, 2, 3, 4, 5].map(() => namespace()));
    const registry = new Registry();
    const kube = KubeClient.fromEnvironment(
      { maxConnections: 2, metrics: createKubeClientMetrics(registry) },
      { KUBECONFIG: cluster.kubeconfig },
    );
    const watches = names.map((ns) => watchConfigMaps(kube, ns));
    const gauge = async (name: string) => (await registry.getSingleMetric(name)?.get())?.values[0]?.value;
    try {
      // Ready means the API server answered each watch (nothing has changed in these namespaces yet).
      await eventually(() => expect(watches.every((w) => w.informer.ready)).toBe(true));
      expect(watches.every((w) => w.informer.watchAnswered)).toBe(true);
      expect(await gauge('streamspace_kube_watches_requested')).toBe(5);
      expect(await gauge('streamspace_kube_watches_answered')).toBe(5);
      await Promise.all(names.map((ns) => configMap(ns, 'after-start')));
      await eventually(() => expect(watches.map((w) => w.has('after-start'))).toEqual(names.map(() => true)));
    } finally {
      await Promise.all(watches.map((w) => w.stop()));
      kube.close();
    }
  });

  it('comes back after kube-apiserver restarts, and sees what changed after', async () => {
    const ns = await namespace();
    const watch = watchConfigMaps(direct, ns);
    try {
      await eventually(() => expect(watch.informer.ready).toBe(true));
      await configMap(ns, 'before-restart');
      await eventually(() => expect(watch.has('before-restart')).toBe(true));
      await cluster.restartApiserver();
      await configMap(ns, 'after-restart');
      await eventually(() => expect(watch.has('after-restart')).toBe(true), 60_000);
      const restarts = await Promise.all(RESTART_REASONS.map((r) => watch.count(r)));
      expect(restarts.reduce((a: number, b: number) => a + b, 0)).toBeGreaterThanOrEqual(1);
      expect(watch.informer.ready).toBe(true);
    } finally {
      await watch.stop();
    }
  });

  it('relists when its resourceVersion was compacted away (410 Gone), reporting what it missed', async () => {
    const ns = await namespace();
    await configMap(ns, 'a');
    await configMap(ns, 'b');
    const kube = new KubeClient({ server: proxy.url });
    const watch = watchConfigMaps(kube, ns);
    try {
      await eventually(() => expect(watch.has('a') && watch.has('b')).toBe(true));
      // Cut off: its watch fails and is retried from the resourceVersion it last saw...
      proxy.setMode('refuse');
      await eventually(async () => expect(await watch.count('error')).toBeGreaterThanOrEqual(1));
      // ...while the namespace changes, etcd forgets the history, and kube-apiserver's watch
      // cache starts over (restarted), so nothing can serve a watch from that version any more.
      await direct.delete({ version: 'v1', plural: 'configmaps', namespace: ns, name: 'a' });
      await configMap(ns, 'c');
      await compactEtcd();
      await cluster.restartApiserver();
      proxy.setMode('forward');
      await eventually(async () => expect(await watch.count('gone')).toBeGreaterThanOrEqual(1), 60_000);
      await eventually(() => {
        expect(watch.has('a')).toBe(false);
        expect(watch.has('b')).toBe(true);
        expect(watch.has('c')).toBe(true);
      }, 30_000);
      expect(watch.changes).toEqual(expect.arrayContaining(['deleted a', 'added c']));
      // Ready once its new watch is answered, which comes after the relist it reported from.
      await eventually(() => expect(watch.informer.ready).toBe(true));
    } finally {
      proxy.setMode('forward');
      await watch.stop();
      kube.close();
    }
  });
});
