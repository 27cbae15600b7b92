import { randomBytes } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { API_GROUP, API_VERSION, homeClaimName, sessionChildName, subjects } from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  installCrds,
  kube,
  kubectl,
  ServiceProcess,
} from './harness.js';
import { template as helmTemplate } from './helm.js';
import { type SecureNats, startSecureNats } from './secure-nats.js';

/**
 * Issue 7, security: the services against a nats-server with TLS and password authorization;
 * clients without credentials or without TLS are refused; no secret reaches a log line; and a
 * Session cannot reach another user's home or privileges its Template does not grant.
 */

const k = kube();
/** Distinctive secrets: if any log line contains one, it leaked. */
const NATS_PASSWORD = `nats-${randomBytes(12).toString('hex')}`;
const REPORTER_PASSWORD = `rep-${randomBytes(12).toString('hex')}`;
const ACTIVITY_TOKEN = `tok-${randomBytes(12).toString('hex')}`;
const WRONG_PASSWORD = `wrong-${randomBytes(12).toString('hex')}`;
const SHORT_TOKEN = `st${randomBytes(5).toString('hex')}`; // 12 chars: refused by the config schema
const SECRETS = [NATS_PASSWORD, REPORTER_PASSWORD, ACTIVITY_TOKEN, WRONG_PASSWORD, SHORT_TOKEN];

let namespace: string;
let nats: SecureNats;
const services: ServiceProcess[] = [];
let watcher: ServiceProcess;
let reconciler: ServiceProcess;
let reaper: ServiceProcess;
let serviceClient: NatsConnection;

function natsEnv(password = NATS_PASSWORD): Record<string, string> {
  return {
    NATS_URL: nats.url,
    NATS_USER: nats.users.service.user,
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

async function apply(object: object): Promise<void> {
  const result = await kubectl(['apply', '-f', '-'], JSON.stringify(object));
  if (result.code !== 0) throw new Error(`kubectl apply failed: ${result.stderr}`);
}

function template(name: string, capabilities: string[] = []) {
  return {
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: 'Template',
    metadata: { name, namespace },
    spec: {
      displayName: `Test ${name}`,
      baseImage: 'lscr.io/linuxserver/firefox:latest',
      ports: [{ name: 'http', containerPort: 3000, protocol: 'TCP' }],
      vnc: { enabled: true, port: 3000, protocol: 'websocket' },
      homePath: '/config',
      ...(capabilities.length > 0 ? { capabilities } : {}),
    },
  };
}

function session(name: string, user: string, templateName: string, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: 'Session',
    metadata: { name, namespace },
    spec: { user, template: templateName, state: 'running', persistentHome: true, ...extra },
  };
}

async function phase(name: string): Promise<string | undefined> {
  const s = (await k.custom.getNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
    name,
  })) as { status?: { phase?: string } };
  return s.status?.phase;
}

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('security');
  nats = await startSecureNats({ service: NATS_PASSWORD, reporter: REPORTER_PASSWORD });
  watcher = start('watcher', { ...natsEnv(), RESYNC_INTERVAL: '30s' });
  reconciler = start('reconciler', {
    ...natsEnv(),
    STARTUP_DEADLINE: '20s',
    INGRESS_DOMAIN: 'desktops.test',
  });
  reaper = start('idle-reaper', { ...natsEnv(), ACTIVITY_TOKEN });
  await Promise.all([watcher, reconciler, reaper].map((s) => s.waitReady(45_000)));
  serviceClient = await connect({
    servers: nats.url,
    user: nats.users.service.user,
    pass: NATS_PASSWORD,
    tls: { caFile: nats.caFile },
  });
});

afterAll(async () => {
  await serviceClient?.close();
  await Promise.all(services.map((s) => s.stop()));
  await nats?.stop();
  if (namespace) await deleteNamespace(namespace);
});

describe('NATS with TLS and authorization', () => {
  it('runs the services over tls:// with a user and password: a Session reaches Running', async () => {
    await apply(template('firefox'));
    await apply(session('secure', 'alice@example.com', 'firefox'));
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
    for (const s of [watcher, reconciler, reaper]) {
      expect(s.running).toBe(true);
      expect((await s.get('/readyz')).status).toBe(200);
    }
    console.log(
      `security: watcher, reconciler, idle-reaper on ${nats.url} (TLS, user/password); session Running`,
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
      await refused({ tls: { caFile: nats.caFile }, user: nats.users.service.user, pass: WRONG_PASSWORD }),
    ).toMatch(/authorization/i);
    // The right credentials without TLS: the server insists on TLS before any CONNECT.
    const plain = await refused({
      servers: `nats://127.0.0.1:${nats.port}`,
      tls: null,
      user: nats.users.service.user,
      pass: NATS_PASSWORD,
    });
    expect(plain).toMatch(/tls/i);
    console.log('security: anonymous, wrong-password and plain-TCP clients refused');
  });

  it('a user allowed only to report activity cannot publish a command', async () => {
    const seen: string[] = [];
    const sub = serviceClient.subscribe(subjects.commandsAll, {
      callback: (_e, m) => {
        seen.push(m.subject);
      },
    });
    await serviceClient.flush();
    const reporter = await connect({
      servers: nats.url,
      reconnect: false,
      user: nats.users.reporter.user,
      pass: REPORTER_PASSWORD,
      tls: { caFile: nats.caFile },
    });
    const errors: string[] = [];
    void (async () => {
      for await (const status of reporter.status())
        if (status.type === 'error') errors.push(String(status.error));
    })();
    reporter.publish(
      subjects.command(namespace, 'secure'),
      JSON.stringify({
        action: 'terminate',
        namespace,
        name: 'secure',
        uid: 'x',
        reason: 'User',
        message: 'forged',
        issuedBy: 'mallory',
        issuedAt: new Date().toISOString(),
      }),
    );
    await reporter.flush().catch(() => undefined);
    await eventually(() => expect(errors.join('\n')).toMatch(/permissions violation/i), 5_000);
    await serviceClient.flush();
    expect(seen).toEqual([]);
    await reporter.close().catch(() => undefined);
    sub.unsubscribe();
    const stored = (await k.custom.getNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace,
      plural: 'sessions',
      name: 'secure',
    })) as { spec: { state: string } };
    expect(stored.spec.state).toBe('running');
    console.log(`security: reporter's command publish refused (${errors[0]})`);
  });
});

describe('secrets never reach the logs', () => {
  it('keeps the NATS passwords and bearer tokens out of every log line, through failures and bad config', async () => {
    // A service with a wrong password keeps retrying, not ready, and logs why without the password.
    const wrong = start('reconciler', { ...natsEnv(WRONG_PASSWORD), INGRESS_DOMAIN: 'desktops.test' });
    await eventually(() => {
      expect(wrong.logs.join('\n')).toMatch(/NATS connection failed/);
      expect(wrong.port).toBeGreaterThan(0);
    }, 20_000);
    expect((await wrong.get('/readyz')).status).toBe(503);
    expect(wrong.running).toBe(true);
    await wrong.stop();

    // A bad secret in the config: exit 1, the variable named, its value hidden.
    const badConfig = start('idle-reaper', { ...natsEnv(), ACTIVITY_TOKEN: SHORT_TOKEN });
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
      user: nats.users.reporter.user,
      pass: REPORTER_PASSWORD,
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
