import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  API_GROUP,
  API_VERSION,
  FIELD_MANAGER,
  homeClaimName,
  LABELS,
  STREAMS,
  sessionChildName,
  sessionHostLabel,
  sessionLabelValue,
  subjects,
} from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionObject, templateObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  installCrds,
  kube,
  kubectl,
  ServiceProcess,
} from './harness.js';
import { overlaps, readIntervals } from './reconcile-intervals.js';

/**
 * The user's walkthrough and the failure cases of issue 3, on the real control plane with two
 * watchers and three reconciler workers.
 */

const k = kube();
let namespace: string;
const watchers: ServiceProcess[] = [];
const reconcilers: ServiceProcess[] = [];
let nc: NatsConnection;

/** Where each worker records its reconciles (RECONCILE_INTERVALS_FILE), one file per process. */
const intervalsDir = mkdtempSync(join(tmpdir(), 'streamspace-lifecycle-'));
const intervalFiles: string[] = [];
const reconcilerEnv = () => {
  const file = join(intervalsDir, `worker-${intervalFiles.length}.jsonl`);
  intervalFiles.push(file);
  return {
    STARTUP_DEADLINE: '4s',
    INGRESS_DOMAIN: 'desktops.test',
    WATCH_NAMESPACE: namespace,
    RECONCILE_INTERVALS_FILE: file,
  };
};

function template(name: string, image = 'lscr.io/linuxserver/firefox:latest') {
  return templateObject(namespace, name, {
    description: 'A browser for tests',
    category: 'browsers',
    baseImage: image,
    defaultResources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '2Gi' } },
    homePath: '/config',
    shmSize: '1Gi',
    tags: ['test'],
  });
}

function session(name: string, user: string, templateName: string, extra: Record<string, unknown> = {}) {
  return sessionObject(namespace, name, user, templateName, extra);
}

async function apply(object: object): Promise<void> {
  const result = await kubectl(['apply', '-f', '-'], JSON.stringify(object));
  if (result.code !== 0) throw new Error(`kubectl apply failed: ${result.stderr}`);
}

async function getSession(name: string) {
  return (await k.custom.getNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
    name,
  })) as {
    spec: Record<string, unknown>;
    status?: {
      phase?: string;
      url?: string;
      podName?: string;
      conditions?: { type: string; status: string; reason: string; message: string }[];
    };
  };
}

async function waitPhase(name: string, phase: string, timeoutMs = 30_000) {
  return eventually(async () => {
    const s = await getSession(name);
    expect(s.status?.phase, JSON.stringify(s.status)).toBe(phase);
    return s;
  }, timeoutMs);
}

async function setState(name: string, state: string): Promise<void> {
  const result = await kubectl([
    'patch',
    'session',
    name,
    '-n',
    namespace,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { state } }),
  ]);
  if (result.code !== 0) throw new Error(result.stderr);
}

async function exists(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('lifecycle');
  for (let i = 0; i < 2; i++)
    watchers.push(new ServiceProcess('watcher', { WATCH_NAMESPACE: namespace, RESYNC_INTERVAL: '30s' }));
  for (let i = 0; i < 3; i++) reconcilers.push(new ServiceProcess('reconciler', reconcilerEnv()));
  await Promise.all([...watchers, ...reconcilers].map((s) => s.waitReady()));
  await apply(template('firefox'));
  nc = await connect({ servers: process.env.NATS_URL as string });
});

afterAll(async () => {
  await Promise.all([...watchers, ...reconcilers].map((s) => s.stop()));
  await nc?.close();
  await deleteNamespace(namespace);
  rmSync(intervalsDir, { recursive: true, force: true });
});

describe('a session through its whole life', () => {
  it('runs, hibernates, wakes, terminates and is deleted, keeping the home', async () => {
    await apply(session('walk', 'alice@example.com', 'firefox', { persistentHome: true }));
    const running = await waitPhase('walk', 'Running');
    expect(running.status?.url).toBe(`http://walk.${namespace}.desktops.test/`);
    expect(running.status?.podName).toMatch(/^ss-walk-/);

    const child = sessionChildName('walk');
    const listed = await kubectl([
      'get',
      'deployments,services,ingresses,pvc',
      '-n',
      namespace,
      '-o',
      'name',
    ]);
    expect(listed.stdout).toContain(`deployment.apps/${child}`);
    expect(listed.stdout).toContain(`service/${child}`);
    expect(listed.stdout).toContain(`ingress.networking.k8s.io/${child}`);
    expect(listed.stdout).toContain(`persistentvolumeclaim/${homeClaimName('alice@example.com')}`);

    const table = await kubectl(['get', 'ss', '-n', namespace]);
    expect(table.stdout).toMatch(/NAME\s+USER\s+TEMPLATE\s+STATE\s+PHASE\s+URL\s+AGE/);
    expect(table.stdout).toMatch(
      new RegExp(
        `walk\\s+alice@example.com\\s+firefox\\s+running\\s+Running\\s+http://walk\\.${namespace}\\.desktops\\.test/`,
      ),
    );

    const deployment = await k.apps.readNamespacedDeployment({ namespace, name: child });
    const pod = deployment.spec?.template.spec;
    expect(pod?.containers[0]?.image).toBe('lscr.io/linuxserver/firefox:latest');
    expect(pod?.containers[0]?.resources?.requests).toEqual({ cpu: '250m', memory: '512Mi' });
    expect(pod?.volumes?.find((v) => v.name === 'dshm')?.emptyDir?.medium).toBe('Memory');
    expect(pod?.containers[0]?.volumeMounts?.find((m) => m.name === 'home')?.mountPath).toBe('/config');
    expect(deployment.metadata?.ownerReferences?.[0]?.kind).toBe('Session');

    await setState('walk', 'hibernated');
    const hibernated = await waitPhase('walk', 'Hibernated');
    // The status names no pod once none runs: the field is removed, not left as it was.
    expect(hibernated.status?.podName).toBeUndefined();
    expect(hibernated.status?.url).toBe(running.status?.url);
    const scaled = await k.apps.readNamespacedDeployment({ namespace, name: child });
    expect(scaled.spec?.replicas).toBe(0);
    // Only its replicas were written (a merge patch, cheaper for the API server than applying the
    // whole Deployment again); the rest stays under the reconciler's apply.
    const managers = (scaled.metadata?.managedFields ?? []).filter((m) => m.manager === FIELD_MANAGER);
    expect(managers.map((m) => m.operation).sort()).toEqual(['Apply', 'Update']);
    expect(managers.find((m) => m.operation === 'Update')?.fieldsV1).toEqual({
      'f:spec': { 'f:replicas': {} },
    });
    expect(await exists(() => k.core.readNamespacedService({ namespace, name: child }))).toBe(true);

    await setState('walk', 'running');
    await waitPhase('walk', 'Running');
    expect((await k.apps.readNamespacedDeployment({ namespace, name: child })).spec?.replicas).toBe(1);

    await setState('walk', 'terminated');
    await waitPhase('walk', 'Terminated');
    await eventually(async () => {
      expect(await exists(() => k.apps.readNamespacedDeployment({ namespace, name: child }))).toBe(false);
      expect(await exists(() => k.core.readNamespacedService({ namespace, name: child }))).toBe(false);
      expect(await exists(() => k.networking.readNamespacedIngress({ namespace, name: child }))).toBe(false);
    });
    expect(
      await exists(() =>
        k.core.readNamespacedPersistentVolumeClaim({ namespace, name: homeClaimName('alice@example.com') }),
      ),
    ).toBe(true);

    const described = await kubectl(['describe', 'session', 'walk', '-n', namespace]);
    for (const reason of ['Created', 'Running', 'Hibernated', 'Woken', 'Terminated'])
      expect(described.stdout).toContain(reason);

    await kubectl(['delete', 'session', 'walk', '-n', namespace, '--wait=true']);
    const left = await kubectl([
      'get',
      'deployments,services,ingresses,pvc',
      '-n',
      namespace,
      '-o',
      'name',
      '-l',
      'stream.streamspace.io/session=walk',
    ]);
    expect(left.stdout.trim()).toBe('');
    expect(
      await exists(() =>
        k.core.readNamespacedPersistentVolumeClaim({ namespace, name: homeClaimName('alice@example.com') }),
      ),
    ).toBe(true);
  });

  it('starts ten users at once, one of them twice, without a name collision', async () => {
    const names: string[] = [];
    const creations: Promise<void>[] = [];
    for (let i = 0; i < 10; i++) {
      names.push(`crowd-${i}`);
      creations.push(
        apply(session(`crowd-${i}`, `user${i}@example.com`, 'firefox', { persistentHome: true })),
      );
    }
    names.push('crowd-0-again');
    creations.push(apply(session('crowd-0-again', 'user0@example.com', 'firefox', { persistentHome: true })));
    await Promise.all(creations);
    for (const name of names) await waitPhase(name, 'Running', 60_000);
    const deployments = await k.apps.listNamespacedDeployment({
      namespace,
      labelSelector: 'stream.streamspace.io/template=firefox',
    });
    const crowd = deployments.items.filter((d) =>
      d.metadata?.labels?.['stream.streamspace.io/session']?.startsWith('crowd-'),
    );
    expect(new Set(crowd.map((d) => d.metadata?.name)).size).toBe(11);
    const claims = await k.core.listNamespacedPersistentVolumeClaim({ namespace });
    for (let i = 0; i < 10; i++)
      expect(claims.items.map((c) => c.metadata?.name)).toContain(homeClaimName(`user${i}@example.com`));
    const urls = new Set<string>();
    for (const name of names) urls.add((await getSession(name)).status?.url as string);
    expect(urls.size).toBe(11);
  });
});

describe('any name Kubernetes accepts', () => {
  it('runs Sessions named with 63 and 253 characters, and keeps apart long names that share 60', async () => {
    const names = [
      'n'.repeat(63),
      `${'l'.repeat(62)}.${'o'.repeat(63)}.${'n'.repeat(63)}.${'g'.repeat(62)}`,
      `${'p'.repeat(60)}-first`,
      `${'p'.repeat(60)}-second`,
    ];
    expect(names[1]).toHaveLength(253);
    for (const name of names) await apply(session(name, 'dana@example.com', 'firefox'));
    for (const name of names) {
      const running = await waitPhase(name, 'Running');
      const child = sessionChildName(name);
      expect(child.length).toBeLessThanOrEqual(53);
      // Running stands for the pod being Ready; the Deployment's own status is written by
      // kube-controller-manager after it sees that pod, so it may trail the phase a little.
      const deployment = await eventually(async () => {
        const d = await k.apps.readNamespacedDeployment({ namespace, name: child });
        expect(d.status?.readyReplicas).toBe(1);
        return d;
      });
      expect(deployment.metadata?.ownerReferences?.[0]?.name).toBe(name);
      const service = await k.core.readNamespacedService({ namespace, name: child });
      expect(service.metadata?.ownerReferences?.[0]?.name).toBe(name);
      const ingress = await k.networking.readNamespacedIngress({ namespace, name: child });
      const host = ingress.spec?.rules?.[0]?.host;
      expect(running.status?.url).toBe(`http://${host}/`);
      expect(host).toBe(`${sessionHostLabel(name)}.${namespace}.desktops.test`);
      // The pod is found through the shortened label, and its name is in the status.
      const pods = await k.core.listNamespacedPod({
        namespace,
        labelSelector: `${LABELS.session}=${sessionLabelValue(name)}`,
      });
      expect(pods.items.map((p) => p.metadata?.name)).toContain(running.status?.podName);
    }
    const [, , first, second] = names as [string, string, string, string];
    expect(sessionChildName(first)).not.toBe(sessionChildName(second));
    expect(sessionHostLabel(first)).not.toBe(sessionHostLabel(second));

    // A change reaches the long-named Session through its pods' annotation: hibernate and wake it.
    await setState(names[1] as string, 'hibernated');
    await waitPhase(names[1] as string, 'Hibernated');
    await setState(names[1] as string, 'running');
    await waitPhase(names[1] as string, 'Running');
    for (const name of names) await kubectl(['delete', 'session', name, '-n', namespace, '--wait=false']);
  });

  it('refuses a name that ends like a shortened one, saying why', async () => {
    const result = await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify(session('desk-0123456789abcdef', 'dana@example.com', 'firefox')),
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('reserved for the shortened names');
  });
});

describe('waiting, failing and repairing', () => {
  it('waits for a missing template and proceeds when it appears', async () => {
    await apply(session('patient', 'bob', 'late-template'));
    const waiting = await eventually(async () => {
      const s = await getSession('patient');
      const resolved = s.status?.conditions?.find((c) => c.type === 'TemplateResolved');
      expect(resolved?.reason).toBe('TemplateNotFound');
      return s;
    });
    expect(waiting.status?.phase).toBe('Pending');
    expect(waiting.status?.conditions?.find((c) => c.type === 'TemplateResolved')?.message).toContain(
      'late-template',
    );
    await apply(template('late-template'));
    await waitPhase('patient', 'Running');
  });

  it('fails with the pod’s own reason when the image never starts', async () => {
    await apply(template('broken', 'streamspace.invalid/never-starts:latest'));
    await apply(session('doomed', 'carol', 'broken'));
    const failed = await waitPhase('doomed', 'Failed', 30_000);
    const ready = failed.status?.conditions?.find((c) => c.type === 'Ready');
    expect(ready?.reason).toBe('StartupDeadlineExceeded');
    expect(ready?.message).toContain('ErrImagePull');
  });

  it('puts back a child deleted or changed by hand', async () => {
    await apply(session('drift', 'dave', 'firefox'));
    await waitPhase('drift', 'Running');
    const child = sessionChildName('drift');
    await k.core.deleteNamespacedService({ namespace, name: child });
    await eventually(() => k.core.readNamespacedService({ namespace, name: child }), 15_000);
    await kubectl(['scale', 'deployment', child, '-n', namespace, '--replicas=0']);
    await eventually(async () => {
      expect((await k.apps.readNamespacedDeployment({ namespace, name: child })).spec?.replicas).toBe(1);
    }, 15_000);
  });

  it('keeps a running desktop on its template until it next wakes', async () => {
    await apply(template('evolving', 'example.org/app:1'));
    await apply(session('steady', 'erin', 'evolving'));
    await waitPhase('steady', 'Running');
    const child = sessionChildName('steady');
    await apply(template('evolving', 'example.org/app:2'));
    // Give the change time to reach the reconcilers; the running desktop must not move.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(
      (await k.apps.readNamespacedDeployment({ namespace, name: child })).spec?.template.spec?.containers[0]
        ?.image,
    ).toBe('example.org/app:1');
    await setState('steady', 'hibernated');
    await waitPhase('steady', 'Hibernated');
    await setState('steady', 'running');
    await waitPhase('steady', 'Running');
    expect(
      (await k.apps.readNamespacedDeployment({ namespace, name: child })).spec?.template.spec?.containers[0]
        ?.image,
    ).toBe('example.org/app:2');
  });
});

describe('workers under faults', () => {
  it('converges after a worker is killed mid-reconcile, and never runs one key on two workers at once', async () => {
    const names = Array.from({ length: 15 }, (_, i) => `churn-${i}`);
    await Promise.all(names.map((name, i) => apply(session(name, `churner${i}`, 'firefox'))));
    // Kill a worker while the burst is being worked on, then bring up a replacement.
    await new Promise((r) => setTimeout(r, 300));
    const victim = reconcilers.shift() as ServiceProcess;
    await victim.kill();
    const killedAt = Date.now();
    reconcilers.push(new ServiceProcess('reconciler', reconcilerEnv()));
    for (const name of names) await waitPhase(name, 'Running', 60_000);
    await Promise.all(names.slice(0, 5).map((name) => setState(name, 'hibernated')));
    for (const name of names.slice(0, 5)) await waitPhase(name, 'Hibernated');

    // The instrumentation: every worker records each reconcile's key, start and end.
    const victimFile = intervalFiles[0] as string;
    const intervals = readIntervals(intervalFiles, (file) => (file === victimFile ? killedAt : Date.now()));
    expect(overlaps(intervals)).toEqual([]);
    expect(intervals.length).toBeGreaterThan(20);
    expect(new Set(intervals.map((i) => i.worker)).size).toBeGreaterThanOrEqual(2);
  });

  it('dead-letters a malformed work item and keeps running', async () => {
    const jsm = await jetstreamManager(nc);
    const before = (await jsm.streams.info(STREAMS.deadLetter)).state.messages;
    nc.publish(subjects.work('session', namespace, 'garbage'), 'this is not json');
    nc.publish(
      subjects.work('session', namespace, 'wrong-shape'),
      JSON.stringify({ kind: 'session', namespace: 'UPPER', name: 7 }),
    );
    await eventually(async () =>
      expect((await jsm.streams.info(STREAMS.deadLetter)).state.messages).toBeGreaterThanOrEqual(before + 2),
    );
    for (const service of [...watchers, ...reconcilers]) expect(service.running).toBe(true);
    const metrics = await Promise.all(reconcilers.map((r) => r.get('/metrics')));
    const malformed = metrics
      .map((m) =>
        Number(
          /streamspace_reconciler_dead_letters_total\{reason="malformed"\} (\d+)/.exec(m.body)?.[1] ?? 0,
        ),
      )
      .reduce((a, b) => a + b, 0);
    expect(malformed).toBeGreaterThanOrEqual(2);
    // Valid work still flows.
    await apply(session('after-garbage', 'frank', 'firefox'));
    await waitPhase('after-garbage', 'Running');
  });
});
