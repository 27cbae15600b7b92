import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  ACTIVITY_REPORTER,
  ANNOTATIONS,
  API_GROUP,
  API_VERSION,
  CONSUMERS,
  homeClaimName,
  inboxPrefix,
  natsUsers,
  passwordVariable,
  renderNatsAuthorization,
  SERVICE_IDENTITIES,
  type SessionCommand,
  STREAMS,
  sessionChildName,
  subjects,
  workConsumerName,
} from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { sessionObject, templateObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  installCrds,
  kube,
  kubectl,
  repo,
  ServiceProcess,
} from './harness.js';
import { template as helmTemplate, run } from './helm.js';
import { Scrape } from './metrics-scrape.js';
import { type SecureNats, startSecureNats } from './secure-nats.js';

/**
 * Issue 7 and 12, security: the services against a nats-server with TLS and one NATS user per
 * service, each allowed only what that service does (packages/shared/src/nats-permissions.ts, the
 * same users scripts/nats-auth gives operators); every credential used outside its permissions is
 * refused and changes nothing; clients without credentials or without TLS are refused; no secret
 * reaches a log line or /readyz; and a Session cannot reach another user's home or privileges its
 * Template does not grant.
 */

const k = kube();
/** An identity, besides the reaper, that the operator allows to issue User commands (a portal). */
const PORTAL = 'portal';
/** Distinctive secrets: if any log line contains one, it leaked. */
const PASSWORDS: Record<string, string> = Object.fromEntries(
  [...SERVICE_IDENTITIES, ACTIVITY_REPORTER, PORTAL, 'admin'].map((id) => [
    id,
    `${id}-${randomBytes(12).toString('hex')}`,
  ]),
);
const ACTIVITY_TOKEN = `tok-${randomBytes(12).toString('hex')}`;
const WRONG_PASSWORD = `wrong-${randomBytes(12).toString('hex')}`;
const SHORT_TOKEN = `st${randomBytes(5).toString('hex')}`; // 12 chars: refused by the config schema
const SECRETS = [...Object.values(PASSWORDS), ACTIVITY_TOKEN, WRONG_PASSWORD, SHORT_TOKEN];

let namespace: string;
let nats: SecureNats;
const services: ServiceProcess[] = [];
let watcher: ServiceProcess;
let reconciler: ServiceProcess;
let reaper: ServiceProcess;
let metrics: ServiceProcess;
/** The test-only user with every permission, to observe what the others did (or did not). */
let admin: NatsConnection;
const clients: NatsConnection[] = [];

/** The NATS settings of one service: its own user, as the chart gives it. */
function natsEnv(identity: string, password = PASSWORDS[identity] as string): Record<string, string> {
  return {
    NATS_URL: nats.url,
    NATS_USER: nats.users[identity]?.user as string,
    NATS_PASSWORD: password,
    NATS_TLS_CA: nats.caFile,
    WATCH_NAMESPACE: namespace,
  };
}

function start(name: string, env: Record<string, string>): ServiceProcess {
  const service = new ServiceProcess(name, env);
  services.push(service);
  return service;
}

/** A client connected as one identity (with its own inbox prefix, as the services use), and the errors the server sent it. */
async function connectAs(identity: string): Promise<{ nc: NatsConnection; errors: string[] }> {
  const nc = await connect({
    servers: nats.url,
    user: nats.users[identity]?.user as string,
    pass: PASSWORDS[identity] as string,
    tls: { caFile: nats.caFile },
    inboxPrefix: inboxPrefix(identity),
  });
  clients.push(nc);
  const errors: string[] = [];
  void (async () => {
    for await (const status of nc.status()) if (status.type === 'error') errors.push(String(status.error));
  })();
  return { nc, errors };
}

/** Resolves with the error message a promise was rejected with; fails if it succeeded. */
async function rejection(what: string, promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return String((error as Error).message ?? error);
  }
  throw new Error(`${what} succeeded`);
}

async function apply(object: object): Promise<void> {
  const result = await kubectl(['apply', '-f', '-'], JSON.stringify(object));
  if (result.code !== 0) throw new Error(`kubectl apply failed: ${result.stderr}`);
}

function template(name: string, capabilities: string[] = []) {
  return templateObject(namespace, name, {
    homePath: '/config',
    ...(capabilities.length > 0 ? { capabilities } : {}),
  });
}

function session(name: string, user: string, templateName: string, extra: Record<string, unknown> = {}) {
  return sessionObject(namespace, name, user, templateName, { persistentHome: true, ...extra });
}

interface StoredSession {
  metadata: { uid: string; annotations?: Record<string, string> };
  spec: { state: string };
  status?: { phase?: string };
}

async function stored(name: string): Promise<StoredSession> {
  return (await k.custom.getNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
    name,
  })) as StoredSession;
}

async function phase(name: string): Promise<string | undefined> {
  return (await stored(name)).status?.phase;
}

/** A well-formed User command for a Session (its real uid): carried out if its issuer may give it. */
async function userCommand(
  name: string,
  action: 'hibernate' | 'terminate',
  issuedBy: string,
): Promise<string> {
  const command: SessionCommand = {
    action,
    namespace,
    name,
    uid: (await stored(name)).metadata.uid,
    reason: 'User',
    message: `${action} requested by ${issuedBy}`,
    issuedBy,
    issuedAt: new Date().toISOString(),
  };
  return JSON.stringify(command);
}

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('security');
  nats = await startSecureNats({ passwords: PASSWORDS, commandIssuers: [PORTAL] });
  admin = await connect({
    servers: nats.url,
    user: 'admin',
    pass: PASSWORDS.admin as string,
    tls: { caFile: nats.caFile },
  });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await admin?.close();
  await Promise.all(services.map((s) => s.stop()));
  await nats?.stop();
  if (namespace) await deleteNamespace(namespace);
});

describe('NATS: one user per service, TLS', () => {
  it('binds to what only the watcher declares: the others are not ready until then, saying why', async () => {
    reconciler = start('reconciler', {
      ...natsEnv('reconciler'),
      STARTUP_DEADLINE: '20s',
      INGRESS_DOMAIN: 'desktops.test',
    });
    reaper = start('idle-reaper', {
      ...natsEnv('idle-reaper'),
      ACTIVITY_TOKEN,
      USER_COMMAND_ISSUERS: PORTAL,
      COMMAND_RETRY_INTERVAL: '5s',
      // The restart grace is one flush interval: the 3 s idle session below must not wait for 30 s.
      ACTIVITY_FLUSH_INTERVAL: '500ms',
    });
    metrics = start('metrics', natsEnv('metrics'));
    for (const service of [reconciler, reaper])
      await eventually(async () => {
        const { status, body } = await service.get('/readyz');
        expect(status).toBe(503);
        expect(body).toMatch(/does not exist yet: the watcher declares it/);
      }, 30_000);
    // They cannot declare it themselves: their NATS users may not create streams.
    const jsm = await jetstreamManager(admin);
    expect(await rejection('the work stream', jsm.streams.info(STREAMS.work))).toMatch(/not found/);
    watcher = start('watcher', { ...natsEnv('watcher'), RESYNC_INTERVAL: '30s' });
    await Promise.all([watcher, reconciler, reaper, metrics].map((s) => s.waitReady(45_000)));
    expect((await jsm.consumers.info(STREAMS.commands, CONSUMERS.commandExecutor)).name).toBe(
      CONSUMERS.commandExecutor,
    );
  });

  it('runs every service with its own credential: a Session reaches Running and the reaper hibernates it when idle', async () => {
    await apply(template('firefox'));
    await apply(session('secure', 'alice@example.com', 'firefox'));
    await apply(
      session('idle', 'carol@example.com', 'firefox', { idleTimeout: '3s', maxSessionDuration: '0' }),
    );
    await apply(session('portal-target', 'dave@example.com', 'firefox'));
    await eventually(async () => expect(await phase('secure')).toBe('Running'), 60_000, 300).catch(
      (error) => {
        console.log(
          reconciler.logs
            .filter((l) => /"level":"(warn|error)"/.test(l))
            .slice(-20)
            .join('\n'),
        );
        throw error;
      },
    );
    // The reaper's decision went through the commands stream under its own NATS user.
    await eventually(
      async () => {
        const idle = await stored('idle');
        expect(idle.spec.state).toBe('hibernated');
        expect(idle.metadata.annotations?.[ANNOTATIONS.stateChangedBy]).toBe('idle-reaper');
        expect(idle.status?.phase).toBe('Hibernated');
      },
      60_000,
      300,
    );
    for (const s of [watcher, reconciler, reaper, metrics]) {
      expect(s.running).toBe(true);
      expect((await s.get('/readyz')).status).toBe(200);
    }
    // Metrics reads JetStream with its read-only user.
    await eventually(async () =>
      expect((await Scrape.of(metrics)).value('streamspace_jetstream_up')).toBe(1),
    );
    // And none of that needed anything its user may not do: the server refused no service anything.
    expect(nats.logs.filter((line) => /violation/i.test(line))).toEqual([]);
    console.log(
      `security: 4 services on ${nats.url}, each its own NATS user; session Running, idle one hibernated`,
    );
  });

  it('refuses a client without credentials, with a wrong password, or without TLS', async () => {
    const refused = async (options: Parameters<typeof connect>[0]): Promise<string> => {
      try {
        const nc = await connect({ servers: nats.url, reconnect: false, timeout: 5_000, ...options });
        await nc.close();
      } catch (error) {
        return String((error as Error).message ?? error);
      }
      throw new Error(`connection with ${JSON.stringify(Object.keys(options ?? {}))} was accepted`);
    };
    // No credentials: no_auth_user is not configured, so anonymous clients are refused outright.
    expect(await refused({ tls: { caFile: nats.caFile } })).toMatch(/authorization/i);
    expect(
      await refused({
        tls: { caFile: nats.caFile },
        user: nats.users.watcher?.user as string,
        pass: WRONG_PASSWORD,
      }),
    ).toMatch(/authorization/i);
    // The right credentials without TLS: the server insists on TLS before any CONNECT.
    const plain = await refused({
      servers: `nats://127.0.0.1:${nats.port}`,
      tls: null,
      user: nats.users.watcher?.user as string,
      pass: PASSWORDS.watcher as string,
    });
    expect(plain).toMatch(/tls/i);
    console.log('security: anonymous, wrong-password and plain-TCP clients refused');
  });

  it("refuses a command on the reaper's subject from every other identity, at the server", async () => {
    const seen: string[] = [];
    const sub = admin.subscribe(subjects.commandsAll, {
      callback: (_e, m) => {
        seen.push(m.subject);
      },
    });
    await admin.flush();
    const forged = await userCommand('secure', 'terminate', 'mallory');
    const refusals: string[] = [];
    for (const identity of ['watcher', 'reconciler', 'metrics', ACTIVITY_REPORTER, PORTAL]) {
      const { nc, errors } = await connectAs(identity);
      // On the reaper's issuer prefix (and, for a Session, on the old layout without an issuer).
      nc.publish(subjects.command('idle-reaper', namespace, 'secure'), forged);
      await nc.flush().catch(() => undefined);
      await eventually(() => expect(errors.join('\n')).toMatch(/permissions violation/i), 5_000);
      refusals.push(`${identity}: ${errors[0]}`);
      // Through JetStream too: the publish is refused, nothing is stored.
      expect(
        await rejection(
          `${identity} publishing a command`,
          jetstream(nc).publish(subjects.command('idle-reaper', namespace, 'secure'), forged, {
            timeout: 5_000,
          }),
        ),
      ).toMatch(/permission|timeout|no responders/i);
    }
    await admin.flush();
    expect(seen.filter((s) => s.endsWith('.secure'))).toEqual([]);
    // The server logs what it refused (so the check that it refused the services nothing has teeth).
    await eventually(() => expect(nats.logs.some((line) => /violation/i.test(line))).toBe(true), 5_000);
    sub.unsubscribe();
    expect((await stored('secure')).spec.state).toBe('running');
    console.log(`security: commands on the reaper's prefix refused for 5 identities (${refusals[0]})`);
  });

  it('refuses a User command the reaper itself publishes: only named issuers may skip the deadline check', async () => {
    const before = (await Scrape.of(reaper)).value('streamspace_reaper_commands_refused_total', {
      refusal: 'issuer_not_allowed',
    });
    const { nc } = await connectAs('idle-reaper');
    // NATS lets the reaper's user publish here: the executor refuses it, from the subject's issuer.
    const ack = await jetstream(nc).publish(
      subjects.command('idle-reaper', namespace, 'secure'),
      await userCommand('secure', 'terminate', 'mallory'),
    );
    expect(ack.stream).toBe(STREAMS.commands);
    const jsm = await jetstreamManager(admin);
    await eventually(async () => {
      const letter = await jsm.streams.getMessage(STREAMS.deadLetter, {
        last_by_subj: subjects.deadLetter('command', namespace, 'secure'),
      });
      expect(letter?.json<{ reason: string; service: string }>()).toMatchObject({
        service: 'idle-reaper',
        reason: expect.stringMatching(/issuer_not_allowed.*issuer 'idle-reaper' may not issue 'User'/),
      });
    }, 20_000);
    await eventually(async () =>
      expect(
        (await Scrape.of(reaper)).value('streamspace_reaper_commands_refused_total', {
          refusal: 'issuer_not_allowed',
        }),
      ).toBe((before ?? 0) + 1),
    );
    const secure = await stored('secure');
    expect(secure.spec.state).toBe('running');
    expect(secure.metadata.annotations?.[ANNOTATIONS.stateChangedBy]).toBeUndefined();

    // The same command from the issuer the operator named is carried out: the refusal above was
    // the issuer's, not the command's.
    const portal = await connectAs(PORTAL);
    await jetstream(portal.nc).publish(
      subjects.command(PORTAL, namespace, 'portal-target'),
      await userCommand('portal-target', 'hibernate', 'dave@example.com'),
    );
    await eventually(async () => {
      const target = await stored('portal-target');
      expect(target.spec.state).toBe('hibernated');
      expect(target.metadata.annotations?.[ANNOTATIONS.stateChangedBy]).toBe('dave@example.com (via portal)');
    }, 20_000);
    console.log(
      "security: the reaper's own User command refused and dead-lettered; the portal's carried out",
    );
  });

  it('lets no service delete or purge a stream or create another, and keeps metrics read-only', async () => {
    const adminJsm = await jetstreamManager(admin);
    const before = await adminJsm.streams.info(STREAMS.commands);
    // The watcher too: it may create and update the platform's own streams, never delete or purge.
    for (const identity of ['watcher', 'reconciler', 'idle-reaper', 'metrics']) {
      const { nc } = await connectAs(identity);
      const jsm = await jetstreamManager(nc);
      for (const stream of [STREAMS.commands, STREAMS.events, `KV_streamspace-activity`])
        expect(await rejection(`${identity} deleting ${stream}`, jsm.streams.delete(stream))).toMatch(
          /permission|timeout/i,
        );
      expect(await rejection(`${identity} purging`, jsm.streams.purge(STREAMS.work))).toMatch(
        /permission|timeout/i,
      );
      expect(
        await rejection(
          `${identity} creating a stream`,
          jsm.streams.add({ name: 'ROGUE', subjects: ['rogue.>'] }),
        ),
      ).toMatch(/permission|timeout/i);
      expect(
        await rejection(
          `${identity} deleting a consumer`,
          jsm.consumers.delete(STREAMS.work, workConsumerName(0)),
        ),
      ).toMatch(/permission|timeout/i);
    }
    // Metrics may publish nothing at all: not an event, not a work item, not a dead letter.
    const { nc: metricsNc, errors } = await connectAs('metrics');
    for (const subject of [
      subjects.event('session', namespace, 'secure'),
      subjects.work('session', namespace, 'secure'),
      subjects.deadLetter('event', 'unknown', 'malformed'),
      `$KV.streamspace-activity.${namespace}.secure`,
    ])
      metricsNc.publish(subject, '{}');
    await metricsNc.flush().catch(() => undefined);
    await eventually(
      () => expect(errors.filter((e) => /permissions violation/i.test(e))).toHaveLength(4),
      5_000,
    );
    // Nothing changed: every stream and consumer is still there.
    for (const stream of Object.values(STREAMS))
      expect((await adminJsm.streams.info(stream)).config.name).toBe(stream);
    expect((await adminJsm.streams.info('KV_streamspace-activity')).config.name).toBe(
      'KV_streamspace-activity',
    );
    expect(await rejection('ROGUE', adminJsm.streams.info('ROGUE'))).toMatch(/not found/);
    expect((await adminJsm.consumers.info(STREAMS.work, workConsumerName(0))).name).toBe(workConsumerName(0));
    expect((await adminJsm.streams.info(STREAMS.commands)).created).toBe(before.created);
    expect((await stored('secure')).spec.state).toBe('running');
    console.log(
      'security: no service user can delete or purge a stream or make another; metrics publishes nothing',
    );
  });
});

describe('scripts/nats-auth (what operators configure NATS with)', () => {
  it('prints the users these tests run, in a configuration nats-server accepts, and values for the official chart', async () => {
    const conf = await run(`${repo}/scripts/nats-auth`, []);
    expect(conf.code, conf.stderr).toBe(0);
    expect(conf.stdout).toBe(renderNatsAuthorization(natsUsers()));
    // nats-server itself checks it (-t), the passwords read from the environment as documented.
    const dir = mkdtempSync(join(tmpdir(), 'streamspace-nats-auth-'));
    try {
      writeFileSync(join(dir, 'nats.conf'), `listen: "127.0.0.1:0"\njetstream: enabled\n${conf.stdout}`);
      const env: NodeJS.ProcessEnv = { ...process.env };
      for (const u of natsUsers()) env[passwordVariable(u.identity)] = randomBytes(8).toString('hex');
      const bin = `${(await run(`${repo}/scripts/toolchain`, ['path', 'nats-server'])).stdout.trim()}/nats-server`;
      const checked = await run(bin, ['-t', '-c', join(dir, 'nats.conf')], env);
      expect(checked.code, `${checked.stdout}${checked.stderr}`).toBe(0);
      const missing = await run(bin, ['-t', '-c', join(dir, 'nats.conf')], { PATH: process.env.PATH ?? '' });
      expect(missing.code).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const values = parse(
      (await run(`${repo}/scripts/nats-auth`, ['helm-values', '--command-issuer', PORTAL])).stdout,
    );
    const users = values.config.merge.authorization.users as { user: string; password: string }[];
    expect(users.map((u) => u.user)).toEqual([
      'streamspace-watcher',
      'streamspace-reconciler',
      'streamspace-idle-reaper',
      'streamspace-metrics',
      'streamspace-activity-reporter',
      'streamspace-portal',
    ]);
    expect(users[0]?.password).toBe('<< $STREAMSPACE_NATS_WATCHER_PASSWORD >>');
    expect(values.container.env.STREAMSPACE_NATS_IDLE_REAPER_PASSWORD).toEqual({
      valueFrom: { secretKeyRef: { name: 'streamspace-nats-users', key: 'idle-reaper' } },
    });
    const bad = await run(`${repo}/scripts/nats-auth`, ['--command-issuer', 'Not.A.Name']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/cannot be a NATS identity/);
  });
});

describe('secrets never reach the logs', () => {
  it('keeps the NATS passwords and bearer tokens out of every log line, through failures and bad config', async () => {
    // A service with a wrong password keeps retrying, not ready, and logs why without the password.
    const wrong = start('reconciler', {
      ...natsEnv('reconciler', WRONG_PASSWORD),
      INGRESS_DOMAIN: 'desktops.test',
    });
    await eventually(() => {
      expect(wrong.logs.join('\n')).toMatch(/NATS connection failed/);
      expect(wrong.port).toBeGreaterThan(0);
    }, 20_000);
    expect((await wrong.get('/readyz')).status).toBe(503);
    expect(wrong.running).toBe(true);
    await wrong.stop();

    // Credentials in the URL: a wrong one is refused and /readyz names the URL without them ...
    const host = nats.url.replace('tls://', '');
    const { NATS_USER: _u, NATS_PASSWORD: _p, ...noCredentials } = natsEnv('reconciler');
    const inUrl = start('reconciler', {
      ...noCredentials,
      NATS_URL: `tls://streamspace-reconciler:${WRONG_PASSWORD}@${host}`,
      INGRESS_DOMAIN: 'desktops.test',
    });
    await eventually(async () => {
      const { status, body } = await inUrl.get('/readyz');
      expect(status).toBe(503);
      expect(body).toContain(`cannot connect to tls://[redacted]@${host}`);
      expect(body).not.toContain(WRONG_PASSWORD);
    }, 20_000);
    await inUrl.stop();
    // ... and the right one works (the metrics user, read-only), never shown either.
    const metricsInUrl = start('metrics', {
      ...natsEnv('metrics'),
      NATS_USER: '',
      NATS_PASSWORD: '',
      NATS_URL: `tls://streamspace-metrics:${PASSWORDS.metrics}@${host}`,
    });
    await metricsInUrl.waitReady(30_000);
    expect((await metricsInUrl.get('/readyz')).body).not.toContain(PASSWORDS.metrics as string);
    await metricsInUrl.stop();

    // A bad secret in the config: exit 1, the variable named, its value hidden.
    const badConfig = start('idle-reaper', { ...natsEnv('idle-reaper'), ACTIVITY_TOKEN: SHORT_TOKEN });
    expect(await badConfig.waitExit()).toBe(1);
    const configError = badConfig.logs.join('\n');
    expect(configError).toMatch(/ACTIVITY_TOKEN: must be at least 16 characters \(given value hidden\)/);

    // The activity endpoint with a wrong token, then the right one.
    const post = (token: string) =>
      fetch(`http://127.0.0.1:${reaper.port}/activity`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ namespace, session: 'secure', source: 'security-test' }),
      });
    expect((await post(WRONG_PASSWORD)).status).toBe(401);
    expect((await post(ACTIVITY_TOKEN)).status).toBe(202);
    // Activity over NATS as the reporter, so the reaper logs a report it accepted.
    const reporter = await connect({
      servers: nats.url,
      user: nats.users[ACTIVITY_REPORTER]?.user as string,
      pass: PASSWORDS[ACTIVITY_REPORTER] as string,
      tls: { caFile: nats.caFile },
    });
    reporter.publish(
      subjects.activity(namespace, 'secure'),
      JSON.stringify({ namespace, session: 'secure' }),
    );
    await reporter.flush();
    await reporter.close();
    await new Promise((r) => setTimeout(r, 500));

    let lines = 0;
    for (const service of services) {
      lines += service.logs.length;
      for (const line of service.logs)
        for (const secret of SECRETS)
          expect(line, `${service.service} logged a secret`).not.toContain(secret);
    }
    // The server's own log is not ours, but it must not echo passwords either.
    for (const line of nats.logs) for (const secret of SECRETS) expect(line).not.toContain(secret);
    expect(lines).toBeGreaterThan(20);
    console.log(
      `security: ${lines} log lines of ${services.length} service processes (debug level) hold no secret`,
    );
  });
});

describe('session isolation', () => {
  it("mounts each user's own home claim only", async () => {
    await apply(session('bobs', 'bob@example.com', 'firefox'));
    await eventually(async () => expect(await phase('bobs')).toBe('Running'), 60_000, 300);
    const claims: Record<string, string[]> = {};
    for (const [name, user] of [
      ['secure', 'alice@example.com'],
      ['bobs', 'bob@example.com'],
    ] as const) {
      const deployment = await k.apps.readNamespacedDeployment({ name: sessionChildName(name), namespace });
      claims[user] = (deployment.spec?.template.spec?.volumes ?? [])
        .filter((v) => v.persistentVolumeClaim)
        .map((v) => v.persistentVolumeClaim?.claimName as string);
      expect(claims[user]).toEqual([homeClaimName(user)]);
    }
    expect(claims['alice@example.com']).not.toEqual(claims['bob@example.com']);
  });

  it("refuses a Session for another user unless the requester is trusted (the chart's admission policy)", async () => {
    // The chart's policy as rendered, bound to this test's namespace only: other test files share
    // the cluster. The requesters are impersonated users the API server authenticates as named.
    // Renamed so that it cannot touch a policy some other test's chart release installed.
    const policyName = `session-owner-${randomBytes(3).toString('hex')}`;
    const policy = (
      await helmTemplate(
        [`sessionOwnership.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=${namespace}`],
        ['--show-only', 'templates/session-ownership.yaml'],
      )
    ).map((o) => ({
      ...o,
      metadata: { ...o.metadata, name: policyName },
      spec: o.kind === 'ValidatingAdmissionPolicyBinding' ? { ...o.spec, policyName } : o.spec,
    }));
    const access = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'List',
      items: [
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'Role',
          metadata: { name: 'session-user', namespace },
          rules: [{ apiGroups: [API_GROUP], resources: ['sessions'], verbs: ['create', 'get'] }],
        },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'RoleBinding',
          metadata: { name: 'session-user', namespace },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'session-user' },
          subjects: [
            { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'mallory@example.com' },
            { apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'streamspace:session-admins' },
          ],
        },
      ],
    };
    await apply(access);
    expect(policy.map((o) => o.kind).sort()).toEqual([
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
    ]);
    for (const object of policy) await apply(object);
    const cleanup = async () => {
      for (const kind of ['validatingadmissionpolicybinding', 'validatingadmissionpolicy'])
        await kubectl(['delete', kind, policyName, '--ignore-not-found']);
    };
    try {
      const as = (user: string, group?: string) => [
        `--as=${user}`,
        ...(group ? [`--as-group=${group}`] : []),
      ];
      const create = (who: string[], name: string, user: string) =>
        kubectl(['create', ...who, '-f', '-'], JSON.stringify(session(name, user, 'firefox')));

      // The API server starts enforcing a new policy a moment after it is stored: wait for that
      // with server-side dry runs, which go through admission but store nothing.
      const denial = 'spec.user must be your own user name, mallory@example.com, not bob@example.com';
      await eventually(
        async () => {
          const dry = await create(
            [...as('mallory@example.com'), '--dry-run=server'],
            'mallory-for-bob',
            'bob@example.com',
          );
          expect(dry.stderr).toContain(denial);
        },
        30_000,
        500,
      );
      // Mallory may create Sessions here (RBAC), but not one that would mount Bob's home.
      const refused = await create(as('mallory@example.com'), 'mallory-for-bob', 'bob@example.com');
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(denial);
      const forged = await k.custom
        .getNamespacedCustomObject({
          group: API_GROUP,
          version: API_VERSION,
          namespace,
          plural: 'sessions',
          name: 'mallory-for-bob',
        })
        .catch(() => undefined);
      expect(forged).toBeUndefined();

      // Her own session is fine; a trusted portal (group) and a cluster admin may name anyone.
      const own = await create(as('mallory@example.com'), 'malloryown', 'mallory@example.com');
      expect(own.stderr).toBe('');
      expect(own.code).toBe(0);
      const portal = await create(as('portal', 'streamspace:session-admins'), 'forbob', 'bob@example.com');
      expect(portal.stderr).toBe('');
      expect(portal.code).toBe(0);
      const admin = await create([], 'forcarol', 'carol@example.com');
      expect(admin.code).toBe(0);
      console.log(
        'security: admission policy refused a Session for another user; own, trusted-group and admin creates allowed',
      );
    } finally {
      await cleanup();
    }
  });

  it('refuses Session fields that would name a claim, volumes or privileges (strict), and prunes them otherwise', async () => {
    const forged = session('forged', 'mallory@example.com', 'firefox', {
      homeClaim: homeClaimName('alice@example.com'),
      volumes: [{ name: 'steal', persistentVolumeClaim: { claimName: homeClaimName('alice@example.com') } }],
      securityContext: { privileged: true },
      capabilities: ['SYS_ADMIN'],
    });
    // kubectl validates strictly: refused, naming each unknown field.
    const strict = await kubectl(['apply', '-f', '-'], JSON.stringify(forged));
    expect(strict.code).not.toBe(0);
    for (const field of ['spec.homeClaim', 'spec.volumes', 'spec.securityContext', 'spec.capabilities'])
      expect(strict.stderr).toContain(`unknown field "${field}"`);
    // A client that skips validation: the structural schema prunes the fields before storing.
    const lax = await kubectl(
      ['create', '--validate=false', '-o', 'json', '-f', '-'],
      JSON.stringify(forged),
    );
    expect(lax.code, lax.stderr).toBe(0);
    const stored = JSON.parse(lax.stdout) as { spec: Record<string, unknown> };
    expect(Object.keys(stored.spec).sort()).toEqual(
      ['idleTimeout', 'maxSessionDuration', 'persistentHome', 'state', 'template', 'user'].sort(),
    );
    await eventually(async () => {
      const deployment = await k.apps.readNamespacedDeployment({
        name: sessionChildName('forged'),
        namespace,
      });
      const pod = deployment.spec?.template.spec;
      expect(
        pod?.volumes?.filter((v) => v.persistentVolumeClaim).map((v) => v.persistentVolumeClaim?.claimName),
      ).toEqual([homeClaimName('mallory@example.com')]);
      const security = pod?.containers[0]?.securityContext;
      expect(security?.privileged ?? false).toBe(false);
      expect(security?.allowPrivilegeEscalation).toBe(false);
      expect(security?.capabilities?.add ?? []).toEqual([]);
    }, 30_000);
  });

  it("adds exactly the Template's capabilities and nothing a Session asks for", async () => {
    // Capabilities on the platform's default allow-list (a Template beyond it is refused: desktop-auth.test.ts).
    await apply(template('admin-desktop', ['SETUID', 'CHOWN']));
    await apply(session('capped', 'carol@example.com', 'admin-desktop'));
    await eventually(async () => {
      const deployment = await k.apps.readNamespacedDeployment({
        name: sessionChildName('capped'),
        namespace,
      });
      const security = deployment.spec?.template.spec?.containers[0]?.securityContext;
      expect(security?.capabilities?.add).toEqual(['SETUID', 'CHOWN']);
      expect(security?.capabilities?.drop).toEqual(['ALL']);
      expect(security?.allowPrivilegeEscalation).toBe(false);
      expect(security?.privileged ?? false).toBe(false);
    }, 30_000);
    console.log(
      'security: home claims per user; forged claim/volume/privilege fields refused or pruned; caps = template caps',
    );
  });
});
