import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ANNOTATIONS, API_GROUP, API_VERSION, BUCKETS, subjects } from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemberSet } from '../../services/idle-reaper/src/session-ownership.js';
import { sessionObject, templateObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  followSessions,
  installCrds,
  kube,
  kubectl,
  ServiceProcess,
} from './harness.js';

/**
 * Two idle-reaper replicas sharing the Sessions (docs/idle-reaper.md#replicas-share-the-sessions),
 * on the real control plane and NATS, with the real watcher and reconciler bringing Sessions to
 * Running: each replica owns a part; one is SIGKILLed; the other takes its part over within
 * seconds and hibernates the dead one's Sessions on time, once each.
 */

const k = kube();
const MEMBER_TTL_MS = 3_000;
const IDLE_TIMEOUT_MS = 30_000;
const LATE = Array.from({ length: 12 }, (_, i) => `late-${i}`);
let namespace: string;
let nc: NatsConnection;
const services: ServiceProcess[] = [];
const reapers: ServiceProcess[] = [];
const becameRunning = new Map<string, number>();
let stopWatch: (() => void) | undefined;
let reporting = true;

interface StoredSession {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { state: string };
  status?: { phase?: string; conditions?: { type: string; status: string; lastTransitionTime: string }[] };
}

async function apply(object: object): Promise<void> {
  const result = await kubectl(['apply', '-f', '-'], JSON.stringify(object));
  if (result.code !== 0) throw new Error(`kubectl apply failed: ${result.stderr}`);
}

async function getSession(name: string): Promise<StoredSession> {
  return (await k.custom.getNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
    name,
  })) as StoredSession;
}

async function metric(reaper: ServiceProcess, name: string, labels: Record<string, string> = {}) {
  const { body } = await reaper.get('/metrics');
  let total = 0;
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`)))
      total += Number(line.split(' ').at(-1));
  }
  return total;
}

async function idleEvents(name: string) {
  const list = await k.core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.name=${name},reason=Idle`,
  });
  return list.items;
}

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('shard');
  stopWatch = await followSessions<StoredSession>(
    k.kc,
    `/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace}/sessions`,
    (object) => {
      const ready = object.status?.conditions?.find((c) => c.type === 'Ready');
      if (object.status?.phase !== 'Running' || ready?.status !== 'True') return;
      if (!becameRunning.has(object.metadata.name))
        becameRunning.set(object.metadata.name, Date.parse(ready.lastTransitionTime));
    },
  );
  nc = await connect({ servers: process.env.NATS_URL as string });
  services.push(new ServiceProcess('watcher', { WATCH_NAMESPACE: namespace, RESYNC_INTERVAL: '30s' }));
  services.push(
    new ServiceProcess('reconciler', { INGRESS_DOMAIN: 'desktops.test', WATCH_NAMESPACE: namespace }),
  );
  for (let i = 0; i < 2; i++)
    reapers.push(
      new ServiceProcess('idle-reaper', {
        WATCH_NAMESPACE: namespace,
        REAPER_MEMBER_TTL: `${MEMBER_TTL_MS}ms`,
        ACTIVITY_FLUSH_INTERVAL: '1s',
        COMMAND_RETRY_INTERVAL: '5s',
      }),
    );
  await Promise.all([...services, ...reapers].map((s) => s.waitReady()));
  await apply(
    templateObject(namespace, 'firefox', {
      displayName: 'Firefox',
      description: 'A browser',
      category: 'browsers',
    }),
  );
  await apply({
    apiVersion: 'v1',
    kind: 'List',
    items: ['busy', ...LATE].map((name) =>
      sessionObject(namespace, name, `${name}@example.com`, 'firefox', {
        idleTimeout: `${IDLE_TIMEOUT_MS / 1_000}s`,
        maxSessionDuration: '0',
      }),
    ),
  });
  // One desktop in use throughout, reporting over NATS: each report reaches either replica.
  void (async () => {
    while (reporting) {
      nc.publish(subjects.activity(namespace, 'busy'), JSON.stringify({ namespace, session: 'busy' }));
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
});

afterAll(async () => {
  reporting = false;
  stopWatch?.();
  await Promise.all([...reapers, ...services].map((s) => s.stop()));
  await nc?.close();
  await deleteNamespace(namespace);
});

describe('two idle-reaper replicas share the Sessions', () => {
  it("splits them, takes a killed replica's part over within seconds, and hibernates its Sessions on time, once", async () => {
    const total = LATE.length + 1;
    // Each replica owns a part, and together exactly all of them.
    const owned = await eventually(async () => {
      const counts = await Promise.all(reapers.map((r) => metric(r, 'streamspace_reaper_owned_sessions')));
      expect(counts.reduce((a, b) => a + b, 0)).toBe(total);
      for (const n of counts) expect(n).toBeGreaterThan(0);
      for (const r of reapers) expect(await metric(r, 'streamspace_reaper_members')).toBe(2);
      return counts;
    }, 30_000);

    // Which Sessions the replica to be killed owns, from the members it announced.
    const members = await (async () => {
      const kv = await new Kvm(nc).open(BUCKETS.reaperMembers);
      const ours = reapers.map((r) => `-${r.pid}-`);
      const keys: string[] = [];
      for await (const key of await kv.keys()) if (ours.some((p) => key.includes(p))) keys.push(key);
      // <group>.<member>
      return keys.map((key) => key.slice(key.indexOf('.') + 1));
    })();
    const victim = reapers[1]!;
    const victimId = members.find((m) => m.includes(`-${victim.pid}-`));
    expect(victimId, `no member of pid ${victim.pid} among ${members.join(', ')}`).toBeDefined();
    const ownership = new MemberSet(victimId!, members);
    const victims = LATE.filter((name) => ownership.ownerOf(`${namespace}.${name}`) === victimId);
    expect(victims.length).toBe(owned[1]! - (ownership.ownerOf(`${namespace}.busy`) === victimId ? 1 : 0));
    expect(victims.length).toBeGreaterThan(0);

    // Reports reached the replica owning "busy" from the other too.
    await eventually(async () => {
      const sent = await Promise.all(
        reapers.map((r) => metric(r, 'streamspace_reaper_forwarded_reports_total', { direction: 'sent' })),
      );
      expect(sent.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    });

    // Every Session Running, with its idle deadline still ahead: then kill one replica.
    await eventually(() => expect(becameRunning.size).toBe(total), 60_000);
    const firstDeadline = Math.min(...LATE.map((n) => becameRunning.get(n)!)) + IDLE_TIMEOUT_MS;
    expect(firstDeadline - Date.now(), 'the sessions took too long to start').toBeGreaterThan(8_000);
    const killedAt = Date.now();
    await victim.kill();
    const survivor = reapers[0]!;
    await eventually(
      async () => {
        expect(await metric(survivor, 'streamspace_reaper_members')).toBe(1);
        expect(await metric(survivor, 'streamspace_reaper_owned_sessions')).toBe(total);
      },
      20_000,
      100,
    );
    const takeoverMs = Date.now() - killedAt;
    console.log(`takeover: the survivor owned every Session ${takeoverMs} ms after the SIGKILL`);
    expect(takeoverMs).toBeLessThan(MEMBER_TTL_MS + 5_000);

    // Every idle Session hibernated within 2 s of its deadline, the dead replica's included, once.
    for (const name of LATE) {
      const s = await eventually(
        async () => {
          const s = await getSession(name);
          expect(s.spec.state, name).toBe('hibernated');
          return s;
        },
        IDLE_TIMEOUT_MS + 20_000,
        100,
      );
      const delay =
        Date.parse(s.metadata.annotations?.[ANNOTATIONS.stateChangedAt] ?? 'NaN') -
        (becameRunning.get(name)! + IDLE_TIMEOUT_MS);
      expect(
        delay,
        `${name}${victims.includes(name) ? " (the killed replica's)" : ''}`,
      ).toBeGreaterThanOrEqual(0);
      expect(delay, name).toBeLessThan(2_000);
    }
    for (const name of LATE) await eventually(async () => expect(await idleEvents(name)).toHaveLength(1));
    expect(await metric(survivor, 'streamspace_reaper_decisions_total', { reason: 'Idle' })).toBe(
      LATE.length,
    );
    // The desktop in use is not hibernated: its reports all reach the survivor now.
    expect((await getSession('busy')).spec.state).toBe('running');
    expect(survivor.running).toBe(true);
  });
});
