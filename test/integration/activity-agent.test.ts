import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KV, Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ANNOTATIONS, API_GROUP, API_VERSION, BUCKETS, sessionActivityToken } from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionObject, templateObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  deployedValues,
  eventually,
  freePort,
  installCrds,
  kube,
  kubectl,
  repo,
  ServiceProcess,
} from './harness.js';
import { readStoredActivity } from '../../services/idle-reaper/src/activity-store.js';
import { parseMetrics } from './metrics-scrape.js';
import { readSession, waitSessionPhase } from './session-steps.js';

/**
 * The activity agent end to end on loopback: the real reconciler puts it in the Deployment (the
 * real API server holds it), the agent runs as a process beside the test, reading this host's
 * real socket tables for a stand-in desktop port that real TCP clients connect to, and reports
 * to the real idle reaper with the token the reconciler wrote into the Session's Secret.
 */

const k = kube();
const KEY = randomBytes(32).toString('hex');
const REPORT_INTERVAL_MS = 2_000;
const ALICE_IDLE_MS = 5_000;
const BOB_IDLE_MS = 20_000;
/** How long the reaper is down while bob's client stays connected: four report intervals, 40 % of his idleTimeout. */
const OUTAGE_MS = 8_000;
let namespace: string;
let keyFile: string;
let work: string;
let reaperPort: number;
let nc: NatsConnection;
let kv: KV;
const pipeline: ServiceProcess[] = [];
let reaper: ServiceProcess;
const agents: ChildProcess[] = [];
const desktops: Server[] = [];
const clients: Socket[] = [];

interface StoredSession {
  metadata: { name: string; uid: string; annotations?: Record<string, string> };
  spec: { state: string };
  status?: { phase?: string };
}

async function apply(object: object): Promise<void> {
  const result = await kubectl(['apply', '-f', '-'], JSON.stringify(object));
  if (result.code !== 0) throw new Error(`kubectl apply failed: ${result.stderr}`);
}

const template = (name: string, extra: Record<string, unknown> = {}) =>
  templateObject(namespace, name, {
    displayName: name,
    baseImage: 'lscr.io/linuxserver/webtop:latest',
    ...extra,
  });

const session = (name: string, templateName: string, idleTimeout: string) =>
  sessionObject(namespace, name, `${name}@example.com`, templateName, {
    idleTimeout,
    maxSessionDuration: '0',
  });

function getSession(name: string): Promise<StoredSession> {
  return readSession<StoredSession>(namespace, name);
}

function startReaper(): ServiceProcess {
  reaper = new ServiceProcess('idle-reaper', {
    WATCH_NAMESPACE: namespace,
    HTTP_PORT: String(reaperPort),
    ACTIVITY_SESSION_KEY_FILE: keyFile,
    LAST_ACTIVITY_WRITE_INTERVAL: '1s',
    // Reports reach the activity bucket, and a restarted reaper decides again, within this.
    ACTIVITY_FLUSH_INTERVAL: '500ms',
    COMMAND_RETRY_INTERVAL: '5s',
  });
  return reaper;
}

async function post(body: unknown, token: string | null) {
  const response = await fetch(`http://127.0.0.1:${reaperPort}/activity`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as { result?: string; error?: string } };
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const { body } = await reaper.get('/metrics');
  return parseMetrics(body)
    .filter((m) => m.name === name && Object.entries(labels).every(([k, v]) => m.labels[k] === v))
    .reduce((sum, m) => sum + m.value, 0);
}

/** A stand-in desktop: a real TCP server that answers like a VNC server and ignores what it is sent. */
async function standInDesktop(): Promise<number> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.write('RFB 003.008\n');
  });
  desktops.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

async function connectClient(port: number): Promise<Socket> {
  const socket = tcpConnect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('connect', resolve));
  // Whatever a client sends (here: not even RFB) is not the agent's business.
  socket.write(randomBytes(64));
  clients.push(socket);
  return socket;
}

/** The agent as a process, configured as the reconciler configures its container. */
function startAgent(name: string, port: number): { process: ChildProcess; tokenFile: string } {
  const tokenFile = join(work, `${name}.token`);
  const nodeArgs = String((deployedValues().activityAgent as { nodeArgs: string }).nodeArgs)
    .split(' ')
    .filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, `${repo}/services/activity-agent/dist/main.js`], {
    env: {
      PATH: process.env.PATH,
      STREAMSPACE_NAMESPACE: namespace,
      STREAMSPACE_SESSION: name,
      DESKTOP_PORT: String(port),
      ACTIVITY_URL: `http://127.0.0.1:${reaperPort}/activity`,
      ACTIVITY_TOKEN_FILE: tokenFile,
      REPORT_INTERVAL_MS: String(REPORT_INTERVAL_MS),
      CHECK_INTERVAL_MS: '250',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  agents.push(child);
  return { process: child, tokenFile };
}

/** Copies the token from the Secret the reconciler wrote, as the kubelet mounts it. */
async function mountToken(name: string, tokenFile: string): Promise<string> {
  const secret = await eventually(
    () => k.core.readNamespacedSecret({ namespace, name: `ss-${name}-activity` }),
    30_000,
    200,
  );
  const token = Buffer.from(secret.data?.token ?? '', 'base64').toString('utf8');
  writeFileSync(tokenFile, token);
  return token;
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

async function waitRunning(name: string): Promise<void> {
  await waitSessionPhase(namespace, name, 'Running', 60_000);
}

let alice: { process: ChildProcess; tokenFile: string };
let bob: { process: ChildProcess; tokenFile: string };
let alicePort: number;
let bobPort: number;

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('agent');
  work = mkdtempSync(join(tmpdir(), 'activity-agent-'));
  keyFile = join(work, 'key');
  writeFileSync(keyFile, KEY);
  reaperPort = await freePort();
  nc = await connect({ servers: process.env.NATS_URL as string });
  pipeline.push(new ServiceProcess('watcher', { WATCH_NAMESPACE: namespace, RESYNC_INTERVAL: '30s' }));
  pipeline.push(
    new ServiceProcess('reconciler', {
      INGRESS_DOMAIN: 'desktops.test',
      WATCH_NAMESPACE: namespace,
      ACTIVITY_AGENT_IMAGE: 'ghcr.io/streamspace/streamspace:test',
      ACTIVITY_AGENT_URL: `http://127.0.0.1:${reaperPort}/activity`,
      ACTIVITY_SESSION_KEY_FILE: keyFile,
    }),
  );
  startReaper();
  await Promise.all([...pipeline, reaper].map((s) => s.waitReady()));
  kv = await new Kvm(nc).open(BUCKETS.activity);
  await apply({
    apiVersion: 'v1',
    kind: 'List',
    items: [template('desk'), template('reports-itself', { activity: { agent: false } })],
  });
  await apply({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      session('alice', 'desk', `${ALICE_IDLE_MS / 1000}s`),
      session('bob', 'desk', `${BOB_IDLE_MS / 1000}s`),
      session('carol', 'reports-itself', '1h'),
      session('dave', 'reports-itself', '1h'),
    ],
  });
  // Clients connect before the desktops are up: their agents report from the first moment.
  alicePort = await standInDesktop();
  bobPort = await standInDesktop();
  alice = startAgent('alice', alicePort);
  bob = startAgent('bob', bobPort);
  await connectClient(alicePort);
  await connectClient(bobPort);
  await Promise.all([mountToken('alice', alice.tokenFile), mountToken('bob', bob.tokenFile)]);
}, 120_000);

afterAll(async () => {
  for (const client of clients) client.destroy();
  for (const agent of agents) agent.kill('SIGTERM');
  for (const server of desktops) server.close();
  await Promise.all([...pipeline, reaper].map((s) => s?.stop()));
  await nc?.close();
  await deleteNamespace(namespace);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the Deployment the reconciler writes', () => {
  it('carries the agent for a Template with a VNC endpoint: small, non-root, read-only, its own token', async () => {
    const sessionUid = (await getSession('alice')).metadata.uid;
    const deployment = await k.apps.readNamespacedDeployment({ namespace, name: 'ss-alice' });
    const pod = deployment.spec?.template;
    const agent = pod?.spec?.containers.find((c) => c.name === 'activity-agent');
    expect(agent?.image).toBe('ghcr.io/streamspace/streamspace:test');
    expect(agent?.args).toEqual(['activity-agent']);
    expect(agent?.resources).toEqual({
      requests: { cpu: '5m', memory: '48Mi' },
      limits: { cpu: '50m', memory: '64Mi' },
    });
    expect(agent?.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(pod?.spec?.automountServiceAccountToken).toBe(false);
    expect(agent?.env).toContainEqual({ name: 'DESKTOP_PORT', value: '3000' });
    expect(JSON.stringify(deployment)).not.toContain(KEY);
    expect(pod?.spec?.volumes).toContainEqual(
      expect.objectContaining({ secret: expect.objectContaining({ secretName: 'ss-alice-activity' }) }),
    );
    // The token lives in a Secret the Session owns, and is this Session's.
    const secret = await k.core.readNamespacedSecret({ namespace, name: 'ss-alice-activity' });
    expect(secret.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: 'Session',
      uid: sessionUid,
      controller: true,
    });
    expect(Buffer.from(secret.data?.token ?? '', 'base64').toString()).toBe(
      sessionActivityToken(KEY, namespace, 'alice', sessionUid),
    );
    // `kubectl describe` of the pod says what the extra container is.
    const pods = await k.core.listNamespacedPod({
      namespace,
      labelSelector: 'stream.streamspace.io/session=alice',
    });
    const described = await kubectl([
      'describe',
      'pod',
      '-n',
      namespace,
      pods.items[0]?.metadata?.name ?? '',
    ]);
    expect(described.stdout).toContain('reports to the idle reaper while a client is connected to port 3000');
    expect(described.stdout).toMatch(
      /\n {2}activity-agent:\n(?:.*\n){0,3}\s+Image:\s+ghcr\.io\/streamspace\/streamspace:test\n/,
    );
  });

  it('leaves it out (and writes no token) when the Template opts out', async () => {
    const deployment = await eventually(() =>
      k.apps.readNamespacedDeployment({ namespace, name: 'ss-carol' }),
    );
    expect(deployment.spec?.template.spec?.containers.map((c) => c.name)).toEqual(['desktop']);
    await expect(k.core.readNamespacedSecret({ namespace, name: 'ss-carol-activity' })).rejects.toThrow();
  });
});

describe('end to end on loopback', () => {
  it('keeps a session with a connected client running across several idle timeouts, and hibernates it once the client leaves', async () => {
    await waitRunning('alice');
    // Three idle timeouts with a client connected: never hibernated.
    const holdUntil = Date.now() + 3 * ALICE_IDLE_MS + 1_000;
    while (Date.now() < holdUntil) {
      expect((await getSession('alice')).spec.state).toBe('running');
      await new Promise((r) => setTimeout(r, 500));
    }
    const [client] = clients;
    const leftAt = Date.now();
    client?.destroy();
    const hibernated = await eventually(
      async () => {
        const s = await getSession('alice');
        expect(s.spec.state).toBe('hibernated');
        return s;
      },
      ALICE_IDLE_MS + REPORT_INTERVAL_MS + 10_000,
      100,
    );
    const after = Date.parse(hibernated.metadata.annotations?.[ANNOTATIONS.stateChangedAt] ?? 'NaN') - leftAt;
    console.log(
      `activity agent: hibernated ${after} ms after the client left (idleTimeout ${ALICE_IDLE_MS} ms, report interval ${REPORT_INTERVAL_MS} ms)`,
    );
    expect(hibernated.metadata.annotations?.[ANNOTATIONS.stateChangeReason]).toBe('Idle');
    expect(after).toBeGreaterThanOrEqual(ALICE_IDLE_MS - 500);
    expect(after).toBeLessThan(ALICE_IDLE_MS + REPORT_INTERVAL_MS);
  });

  it('keeps an active session running through a reaper outage, with the agent backing off in bounded memory', async () => {
    await waitRunning('bob');
    expect((await getSession('bob')).spec.state).toBe('running');
    const pid = bob.process.pid as number;
    const rssBefore = rssBytes(pid);
    await reaper.kill();
    const downUntil = Date.now() + OUTAGE_MS;
    let rssMax = rssBefore;
    while (Date.now() < downUntil) {
      rssMax = Math.max(rssMax, rssBytes(pid));
      await new Promise((r) => setTimeout(r, 500));
    }
    const restartedAt = Date.now();
    startReaper();
    await reaper.waitReady();
    // The agent reaches the reaper again (it backs off no longer than its report interval)...
    await eventually(
      async () => {
        expect(await readStoredActivity(kv, `${namespace}.bob`)).toBeGreaterThan(restartedAt);
      },
      10_000,
      200,
    );
    // ...so bob is not hibernated when his old deadline (his last report before the outage plus
    // his idleTimeout) comes and goes.
    const watchUntil = restartedAt + BOB_IDLE_MS - OUTAGE_MS + 5_000;
    while (Date.now() < watchUntil) {
      expect((await getSession('bob')).spec.state).toBe('running');
      await new Promise((r) => setTimeout(r, 500));
    }
    expect((await getSession('bob')).spec.state).toBe('running');
    expect(await metric('streamspace_reaper_decisions_total', { reason: 'Idle' })).toBe(0);
    console.log(`activity agent RSS: ${rssBefore} bytes before the outage, at most ${rssMax} during it`);
    // Nothing piles up while reports fail: within the container's memory limit, and no growth
    // beyond what the garbage collector lets the heap take.
    expect(rssMax).toBeLessThan(64 * 1024 * 1024);
    expect(rssMax - rssBefore).toBeLessThan(12 * 1024 * 1024);
  });
});

describe('tokens scoped to one session', () => {
  it("refuses a session's token for another session, and a garbage or missing token: 401, counted, nothing stored", async () => {
    const aliceToken = readFileSync(alice.tokenFile, 'utf8');
    const before = await metric('streamspace_reaper_unauthorized_requests_total');
    const foreign = await post({ namespace, session: 'carol', source: 'test' }, aliceToken);
    expect(foreign.status).toBe(401);
    expect(foreign.body.error).toContain(`${namespace}/carol`);
    expect((await post({ namespace, session: 'carol' }, 'v1.not-a-token')).status).toBe(401);
    expect((await post({ namespace, session: 'carol' }, 'garbage-token-of-some-length')).status).toBe(401);
    expect((await post({ namespace, session: 'carol' }, null)).status).toBe(401);
    // Another namespace with the same session name is another session.
    expect((await post({ namespace: 'elsewhere', session: 'alice' }, aliceToken)).status).toBe(401);
    expect(await metric('streamspace_reaper_unauthorized_requests_total')).toBe(before + 5);
    expect(await readStoredActivity(kv, `${namespace}.carol`)).toBeUndefined();
    // The token does work for its own session.
    expect((await post({ namespace, session: 'alice', source: 'test' }, aliceToken)).status).toBe(202);
  });

  it('refuses the token of a deleted session for a new session of the same name', async () => {
    const oldUid = (await getSession('dave')).metadata.uid;
    const oldToken = sessionActivityToken(KEY, namespace, 'dave', oldUid);
    await eventually(async () =>
      expect((await post({ namespace, session: 'dave' }, oldToken)).status).toBe(202),
    );
    await k.custom.deleteNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace,
      plural: 'sessions',
      name: 'dave',
    });
    await eventually(async () => {
      await apply(session('dave', 'reports-itself', '1h'));
      expect((await getSession('dave')).metadata.uid).not.toBe(oldUid);
    });
    const newToken = sessionActivityToken(KEY, namespace, 'dave', (await getSession('dave')).metadata.uid);
    // Once the reaper knows the new Session, its own token works and the old one does not.
    await eventually(async () =>
      expect((await post({ namespace, session: 'dave' }, newToken)).status).toBe(202),
    );
    // Held by the reaper, the report reaches the activity bucket at its next flush.
    const storedAt = await eventually(async () => {
      const stored = await readStoredActivity(kv, `${namespace}.dave`);
      expect(stored).toBeDefined();
      return stored;
    });
    const stale = await post({ namespace, session: 'dave', source: 'test' }, oldToken);
    expect(stale.status).toBe(401);
    expect(await readStoredActivity(kv, `${namespace}.dave`)).toBe(storedAt);
  });
});

describe('bad input to the agent', () => {
  it('reports nothing from socket tables it cannot read, nor when misconfigured, and stays up (no crash loop)', async () => {
    const reports = new Map<string, number>();
    const standInReaper = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => {
        const { session: name } = JSON.parse(body) as { session: string };
        reports.set(name, (reports.get(name) ?? 0) + 1);
        res.writeHead(202).end('{}');
      });
    });
    await new Promise<void>((resolve) => standInReaper.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(standInReaper.address() as { port: number }).port}/activity`;
    const port = await standInDesktop();
    await connectClient(port);
    // Garbage where the socket tables should be (and no tcp6), a token that is there.
    const proc = mkdtempSync(join(work, 'proc-'));
    writeFileSync(join(proc, 'tcp'), '{"not": "a socket table"}\n0: 0100007F:0BB8 nonsense 01\n');
    writeFileSync(join(work, 'garbage.token'), 'v1.some-token');
    const run = (env: Record<string, string>) => {
      const child = spawn(process.execPath, [`${repo}/services/activity-agent/dist/main.js`], {
        env: { PATH: process.env.PATH, CHECK_INTERVAL_MS: '100', REPORT_INTERVAL_MS: '200', ...env },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      agents.push(child);
      return child;
    };
    const garbage = run({
      STREAMSPACE_NAMESPACE: namespace,
      STREAMSPACE_SESSION: 'garbage',
      DESKTOP_PORT: String(port),
      ACTIVITY_URL: url,
      ACTIVITY_TOKEN_FILE: join(work, 'garbage.token'),
      PROC_NET_DIR: proc,
    });
    const misconfigured = run({ STREAMSPACE_NAMESPACE: namespace, ACTIVITY_URL: 'ftp://reaper' });
    // The same agent with the real tables does report this client: the garbage is what stops it.
    const control = run({
      STREAMSPACE_NAMESPACE: namespace,
      STREAMSPACE_SESSION: 'control',
      DESKTOP_PORT: String(port),
      ACTIVITY_URL: url,
      ACTIVITY_TOKEN_FILE: join(work, 'garbage.token'),
    });
    await eventually(() => expect(reports.get('control')).toBeGreaterThan(3), 10_000, 100);
    control.kill('SIGTERM');
    expect([...reports.keys()]).toEqual(['control']);
    expect(garbage.exitCode).toBeNull();
    expect(misconfigured.exitCode).toBeNull();
    standInReaper.close();
  });
});
