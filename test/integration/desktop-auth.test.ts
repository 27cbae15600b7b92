import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { V1Ingress } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, sessionChildName } from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import {
  type Nginx,
  type Oauth2Proxy,
  type OidcProvider,
  type OidcUser,
  signIn,
  startNginx,
  startOauth2Proxy,
  startOidcProvider,
  stopNginx,
} from './auth-stack.js';
import { Browser, roundTrip } from './browser.js';
import { sessionObject, templateObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  freePort,
  installCrds,
  kube,
  kubectl,
  ServiceProcess,
} from './harness.js';
import { renderIngressServer, renderProxyServer } from './ingress-nginx-auth.js';

/**
 * Issue 12, deliverable 1, end to end with real parts on loopback: the reconciler (a real process
 * against the real API server) renders a Session's Ingress; nginx (Debian's, auth_request)
 * configured from that Ingress as ingress-nginx renders external auth asks oauth2-proxy, which
 * signs people in at a real OpenID provider; behind them a stand-in desktop (HTTP + websocket).
 * The test signs in as a browser would (redirects, cookies, the provider's login form).
 */

const DOMAIN = 'desktops.test';
const AUTH_HOST = `auth.${DOMAIN}`;
// Known to oauth2-proxy by their preferred_username: plain names, which ingress-nginx's annotation
// validation (on by default, and on here) accepts in an auth-url; an email address it refuses.
const alice: OidcUser = { username: 'alice', password: 'alice-pass-1', email: 'alice@example.com' };
const bob: OidcUser = { username: 'bob', password: 'bob-pass-2', email: 'bob@example.com' };
const ops: OidcUser = { username: 'ops', password: 'ops-pass-3', email: 'ops@example.com' };

const k = kube();
let namespace: string;
const services: ServiceProcess[] = [];
let provider: OidcProvider | undefined;
let oauth2Proxy: Oauth2Proxy | undefined;
let nginx: Nginx | undefined;
let desktop: Server | undefined;
let ingress: V1Ingress;
let desktopUrl: string;
/** What reached the stand-in desktop: every HTTP request and websocket upgrade, with its headers. */
const reached: { kind: 'http' | 'websocket'; path: string; headers: IncomingHttpHeaders }[] = [];

/** The stand-in desktop: answers HTTP with what it was sent, and echoes websocket messages. */
async function startDesktop(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    reached.push({ kind: 'http', path: req.url ?? '', headers: req.headers });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ desktop: true, path: req.url, headers: req.headers }));
  });
  const sockets = new WebSocketServer({ server });
  sockets.on('connection', (socket, req) => {
    reached.push({ kind: 'websocket', path: req.url ?? '', headers: req.headers });
    socket.on('message', (data) =>
      socket.send(JSON.stringify({ echo: String(data), user: req.headers['x-auth-request-email'] ?? null })),
    );
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, port };
}

function template(name: string, capabilities: string[] = []) {
  return templateObject(namespace, name, capabilities.length > 0 ? { capabilities } : {});
}

function session(name: string, user: string, templateName: string) {
  return sessionObject(namespace, name, user, templateName);
}

async function apply(object: object): Promise<void> {
  const result = await kubectl(['apply', '-f', '-'], JSON.stringify(object));
  if (result.code !== 0) throw new Error(`kubectl apply failed: ${result.stderr}`);
}

async function readSession(name: string) {
  return (await k.custom.getNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
    name,
  })) as { status?: { conditions?: { type: string; status: string; reason: string; message: string }[] } };
}

async function gone(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return false;
  } catch {
    return true;
  }
}

/** A browser whose DNS sends every *.desktops.test host to nginx (the ingress controller). */
function browser(): Browser {
  return new Browser((host) =>
    host === DOMAIN || host.endsWith(`.${DOMAIN}`) ? `127.0.0.1:${nginx?.port}` : host,
  );
}

function stackLogs(): string {
  return [provider?.process, oauth2Proxy?.process, nginx?.process]
    .filter((p) => p !== undefined)
    .map((p) => p.tail(15))
    .join('\n');
}

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('desktop-auth');
  const stand = await startDesktop();
  desktop = stand.server;
  const nginxPort = await freePort();
  provider = await startOidcProvider([alice, bob, ops], [`http://${AUTH_HOST}/oauth2/callback`]);
  oauth2Proxy = await startOauth2Proxy({
    issuer: provider.issuer,
    domain: DOMAIN,
    redirectUrl: `http://${AUTH_HOST}/oauth2/callback`,
  });

  services.push(new ServiceProcess('watcher', { WATCH_NAMESPACE: namespace, RESYNC_INTERVAL: '30s' }));
  services.push(
    new ServiceProcess('reconciler', {
      WATCH_NAMESPACE: namespace,
      INGRESS_DOMAIN: DOMAIN,
      // The ingress controller reaches oauth2-proxy directly; browsers sign in at auth.<domain>.
      AUTH_URL: `http://${oauth2Proxy.address}/oauth2/auth`,
      AUTH_SIGNIN_URL: `http://${AUTH_HOST}/oauth2/start`,
      AUTH_ADMIN_USERS: ops.username,
    }),
  );
  await Promise.all(services.map((s) => s.waitReady()));

  await apply(template('browser'));
  await apply(session('alice-desk', alice.username, 'browser'));
  ingress = await eventually(async () => {
    const found = await k.networking.readNamespacedIngress({
      namespace,
      name: sessionChildName('alice-desk'),
    });
    expect(found.metadata?.annotations?.['nginx.ingress.kubernetes.io/auth-url']).toBeDefined();
    return found;
  }, 30_000);
  const { server, host } = renderIngressServer(ingress, {
    listen: nginxPort,
    backend: `127.0.0.1:${stand.port}`,
  });
  desktopUrl = `http://${host}`;
  nginx = await startNginx(nginxPort, [server, renderProxyServer(AUTH_HOST, nginxPort, oauth2Proxy.address)]);
}, 300_000);

afterAll(async () => {
  await stopNginx(nginx);
  await Promise.all([
    ...services.map((s) => s.stop()),
    oauth2Proxy?.process.stop(),
    provider?.process.stop(),
  ]);
  await new Promise((resolve) => desktop?.close(resolve));
  await deleteNamespace(namespace);
});

describe('desktop access through ingress-nginx external auth, oauth2-proxy and an OpenID provider', () => {
  it('renders the Session’s Ingress with external auth for exactly its user and the named admin', () => {
    const annotations = ingress.metadata?.annotations ?? {};
    const authUrl = new URL(annotations['nginx.ingress.kubernetes.io/auth-url'] as string);
    expect(authUrl.searchParams.getAll('allowed_emails')).toEqual([`${alice.username},${ops.username}`]);
    expect(annotations['nginx.ingress.kubernetes.io/auth-signin']).toBe(
      `http://${AUTH_HOST}/oauth2/start?rd=${desktopUrl}$escaped_request_uri`,
    );
    expect(annotations['nginx.ingress.kubernetes.io/auth-response-headers']).toContain(
      'X-Auth-Request-Email',
    );
  });

  it('sends an anonymous visitor to sign in (HTTP and websocket) and never reaches the desktop', async () => {
    const before = reached.length;
    const anonymous = browser();
    const page = await anonymous.send('GET', `${desktopUrl}/vnc.html?autoconnect=1`);
    expect(page.status, stackLogs()).toBe(302);
    expect(page.headers.location).toBe(
      `http://${AUTH_HOST}/oauth2/start?rd=${desktopUrl}/vnc.html?autoconnect=1`,
    );
    const socket = await anonymous.websocket(`ws://${new URL(desktopUrl).host}/websockify`);
    expect(socket).toEqual({
      refused: 302,
      location: `http://${AUTH_HOST}/oauth2/start?rd=${desktopUrl}/websockify`,
    });
    expect(reached.length).toBe(before);
  });

  it('lets the owner in after a real OpenID sign-in, over HTTP and the websocket upgrade', async () => {
    const owner = browser();
    const landed = await signIn(owner, `${desktopUrl}/`, alice);
    expect(landed.status, `${landed.redirects.join(' -> ')}\n${landed.body}\n${stackLogs()}`).toBe(200);
    // The sign-in went through oauth2-proxy and the provider, and ended back at the desktop.
    expect(landed.redirects.some((u) => u.startsWith(`http://${AUTH_HOST}/oauth2/callback?code=`))).toBe(
      true,
    );
    expect(landed.url).toBe(`${desktopUrl}/`);
    const seen = JSON.parse(landed.body) as { desktop: boolean; headers: IncomingHttpHeaders };
    expect(seen.desktop).toBe(true);
    expect(seen.headers['x-auth-request-email']).toBe(alice.username);

    const again = await owner.send('GET', `${desktopUrl}/app.js`);
    expect(again.status).toBe(200);

    const opened = await owner.websocket(`ws://${new URL(desktopUrl).host}/websockify`);
    if (!('socket' in opened)) throw new Error(`websocket refused with ${opened.refused}\n${stackLogs()}`);
    const answer = JSON.parse(await roundTrip(opened.socket, 'hello desktop')) as {
      echo: string;
      user: string;
    };
    expect(answer).toEqual({ echo: 'hello desktop', user: alice.username });
    opened.socket.close();
  });

  it('refuses another signed-in user with 403, HTTP and websocket, and admits the named admin', async () => {
    const other = browser();
    const refused = await signIn(other, `${desktopUrl}/`, bob);
    expect(refused.status, stackLogs()).toBe(403);
    expect(other.cookieNames()).toContain('_oauth2_proxy');
    const before = reached.length;
    expect((await other.send('GET', `${desktopUrl}/`)).status).toBe(403);
    expect(await other.websocket(`ws://${new URL(desktopUrl).host}/websockify`)).toEqual({ refused: 403 });
    expect(reached.length).toBe(before);

    const admin = browser();
    const admitted = await signIn(admin, `${desktopUrl}/`, ops);
    expect(admitted.status, stackLogs()).toBe(200);
    expect(
      (JSON.parse(admitted.body) as { headers: IncomingHttpHeaders }).headers['x-auth-request-email'],
    ).toBe(ops.username);
  });

  it('ignores identity headers forged by the client', async () => {
    const forged = {
      'X-Auth-Request-User': 'alice',
      'X-Auth-Request-Email': alice.username,
      'X-Forwarded-User': alice.username,
      'X-Forwarded-Email': alice.username,
    };
    const before = reached.length;
    // Anonymous with the owner's identity in headers: still sent to sign in.
    const anonymous = browser();
    expect((await anonymous.send('GET', `${desktopUrl}/`, { headers: forged })).status).toBe(302);
    expect(await anonymous.websocket(`ws://${new URL(desktopUrl).host}/websockify`, forged)).toMatchObject({
      refused: 302,
    });
    // Signed in as someone else, claiming to be the owner: still 403.
    const other = browser();
    await signIn(other, `${desktopUrl}/`, bob);
    expect((await other.send('GET', `${desktopUrl}/`, { headers: forged })).status).toBe(403);
    expect(reached.length).toBe(before);

    // The owner claiming to be someone else: the desktop sees who oauth2-proxy vouched for, and
    // the forged copies of the listed headers are replaced or dropped.
    const owner = browser();
    await signIn(owner, `${desktopUrl}/`, alice);
    const lie = {
      'X-Auth-Request-Email': bob.username,
      'X-Auth-Request-User': 'bob',
      'X-Forwarded-User': bob.username,
      'X-Forwarded-Email': bob.username,
    };
    const page = await owner.send('GET', `${desktopUrl}/`, { headers: lie });
    expect(page.status).toBe(200);
    const headers = (JSON.parse(page.body) as { headers: IncomingHttpHeaders }).headers;
    expect(headers['x-auth-request-email']).toBe(alice.username);
    expect(headers['x-auth-request-user']).not.toBe('bob');
    expect(headers['x-forwarded-user']).toBeUndefined();
    expect(headers['x-forwarded-email']).toBeUndefined();
  });
});

/** The reconciler process of this file. */
function reconciler(): ServiceProcess {
  return services.find((s) => s.service === 'reconciler') as ServiceProcess;
}

describe('what else guards a desktop, on the real API server', () => {
  it('builds nothing for a user name that cannot be authorized per request, and says why', async () => {
    const refusals = [
      // oauth2-proxy would split it into two users.
      { name: 'split', user: 'mallory,alice', says: 'contains a comma' },
      // ingress-nginx's annotation validation refuses '@' (and '%') in an auth-url.
      {
        name: 'mail',
        user: 'alice@example.com',
        says: "turn ingress-nginx's --enable-annotation-validation off",
      },
    ];
    for (const { name, user } of refusals) await apply(session(name, user, 'browser'));
    for (const { name, says } of refusals) {
      const ready = await eventually(async () => {
        const found = (await readSession(name)).status?.conditions?.find((c) => c.type === 'Ready');
        expect(found?.reason).toBe('UserNotAuthorizable');
        return found;
      }, 30_000);
      expect(ready?.message).toContain(says);
      const child = sessionChildName(name);
      expect(await gone(() => k.networking.readNamespacedIngress({ namespace, name: child }))).toBe(true);
      expect(await gone(() => k.apps.readNamespacedDeployment({ namespace, name: child }))).toBe(true);
    }
    await eventually(async () => {
      const { body } = await reconciler().get('/metrics');
      expect(body).toMatch(
        /streamspace_reconciler_desktops_refused_total\{reason="user_not_authorizable"\} 2\n/,
      );
    });
  });

  it('fences the desktop pod with its own NetworkPolicy, removed with the desktop on termination', async () => {
    const name = sessionChildName('alice-desk');
    const policy = await eventually(
      () => k.networking.readNamespacedNetworkPolicy({ namespace, name }),
      30_000,
    );
    expect(policy.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: 'Session',
      name: 'alice-desk',
      controller: true,
    });
    expect(policy.spec?.policyTypes).toEqual(['Ingress']);
    expect(policy.spec?.ingress).toEqual([
      {
        _from: [
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } },
            podSelector: { matchLabels: { 'app.kubernetes.io/name': 'ingress-nginx' } },
          },
        ],
        ports: [{ protocol: 'TCP', port: 3000 }],
      },
    ]);
    const deployment = await k.apps.readNamespacedDeployment({ namespace, name });
    const pods = deployment.spec?.template.metadata?.labels ?? {};
    for (const [key, value] of Object.entries(policy.spec?.podSelector?.matchLabels ?? {}))
      expect(pods[key]).toBe(value);
    // The pod itself: runtime-default seccomp, every capability dropped.
    expect(deployment.spec?.template.spec?.securityContext?.seccompProfile).toEqual({
      type: 'RuntimeDefault',
    });
    expect(deployment.spec?.template.spec?.containers[0]?.securityContext?.capabilities).toEqual({
      drop: ['ALL'],
    });

    const patched = await kubectl([
      'patch',
      'session',
      'alice-desk',
      '-n',
      namespace,
      '--type=merge',
      '-p',
      '{"spec":{"state":"terminated"}}',
    ]);
    expect(patched.code, patched.stderr).toBe(0);
    await eventually(async () => {
      expect(await gone(() => k.networking.readNamespacedNetworkPolicy({ namespace, name }))).toBe(true);
      expect(await gone(() => k.networking.readNamespacedIngress({ namespace, name }))).toBe(true);
    }, 30_000);
  });

  it('refuses a Template that adds a capability beyond the allow-list, naming it and the setting', async () => {
    await apply(template('privileged', ['SYS_ADMIN', 'CHOWN']));
    await apply(session('wants-admin', bob.username, 'privileged'));
    const resolved = await eventually(async () => {
      const found = (await readSession('wants-admin')).status?.conditions?.find(
        (c) => c.type === 'TemplateResolved',
      );
      expect(found?.reason).toBe('TemplateInvalid');
      return found;
    }, 30_000);
    expect(resolved?.message).toContain('SYS_ADMIN is not allowed on this platform');
    await eventually(async () => {
      const { body } = await reconciler().get('/metrics');
      expect(body).toMatch(
        /streamspace_reconciler_desktops_refused_total\{reason="capability_not_allowed"\} 1\n/,
      );
    });
    expect(resolved?.message).toContain('desktops.allowedCapabilities');
    expect(resolved?.message).not.toContain('CHOWN is not allowed');
    expect(
      await gone(() => k.apps.readNamespacedDeployment({ namespace, name: sessionChildName('wants-admin') })),
    ).toBe(true);
    await eventually(async () => {
      const t = (await k.custom.getNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace,
        plural: 'templates',
        name: 'privileged',
      })) as { status?: { valid?: boolean } };
      expect(t.status?.valid).toBe(false);
    }, 30_000);
  });
});
