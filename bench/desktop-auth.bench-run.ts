import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { expect, it, onTestFinished } from 'vitest';
import { buildIngress } from '../services/reconciler/src/session-children.js';
import type { StoredSession, StoredTemplate } from '../services/reconciler/src/stored-objects.js';
import {
  type OidcUser,
  signIn,
  startNginx,
  startOauth2Proxy,
  startOidcProvider,
  stopNginx,
} from '../test/integration/auth-stack.js';
import { Browser } from '../test/integration/browser.js';
import { sessionObject, templateObject } from '../test/integration/fixtures.js';
import { freePort, repo } from '../test/integration/harness.js';
import { renderIngressServer, renderProxyServer } from '../test/integration/ingress-nginx-auth.js';

/**
 * Issue 12's number: what the auth hop adds to a request to a desktop. The same nginx serves one
 * desktop Ingress twice, on two ports: as the reconciler renders it (auth_request to oauth2-proxy,
 * which checks the signed-in session's cookie and the allowed_emails of the URL) and the same
 * Ingress without its external auth. A signed-in owner sends BENCH_REQUESTS GETs (default 2,000),
 * alternating between the two, one at a time, a new connection each (as the test's browser does),
 * bounded by BENCH_MAX_MS (default 60 s). p50/p90/p99 of each and their difference go to
 * .bench/desktop-auth.json. Everything on 127.0.0.1.
 */

const N = Number(process.env.BENCH_REQUESTS ?? 2_000);
const MAX_MS = Number(process.env.BENCH_MAX_MS ?? 60_000);
const DOMAIN = 'desktops.test';
const alice: OidcUser = { username: 'alice', password: 'alice-pass-1', email: 'alice@example.com' };

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

function summary(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return {
    n: sorted.length,
    p50: round(percentile(sorted, 50)),
    p90: round(percentile(sorted, 90)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted[sorted.length - 1] as number),
  };
}

it('measures the latency the auth hop adds to a desktop request', async () => {
  const provider = await startOidcProvider([alice], [`http://auth.${DOMAIN}/oauth2/callback`]);
  onTestFinished(() => provider.process.stop());
  const oauth2Proxy = await startOauth2Proxy({
    issuer: provider.issuer,
    domain: DOMAIN,
    redirectUrl: `http://auth.${DOMAIN}/oauth2/callback`,
  });
  onTestFinished(() => oauth2Proxy.process.stop());
  const desktop = createServer((_req, res) => res.end('desktop'));
  const desktopPort = await freePort();
  await new Promise<void>((resolve) => desktop.listen(desktopPort, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => desktop.close(() => resolve())));

  const session = sessionObject(
    'team',
    'alice-desk',
    alice.username,
    'browser',
    {},
    { uid: 'bench' },
  ) as StoredSession;
  const template = templateObject('team', 'browser', {
    displayName: 'Browser',
    baseImage: 'x',
    ports: undefined,
  }) as StoredTemplate;
  const ingress = buildIngress(session, template, {
    ingressDomain: DOMAIN,
    ingressHostPattern: '{session}.{domain}',
    homeStorageSize: '1Gi',
    homeAccessMode: 'ReadWriteMany',
    startupDeadlineMs: 60_000,
    desktopAuth: {
      url: `http://${oauth2Proxy.address}/oauth2/auth`,
      signinUrl: `http://auth.${DOMAIN}/oauth2/start`,
      adminUsers: ['ops'],
      responseHeaders: [
        'X-Auth-Request-User',
        'X-Auth-Request-Email',
        'X-Forwarded-User',
        'X-Forwarded-Email',
      ],
      annotationValidation: true,
    },
  });
  const authPort = await freePort();
  const plainPort = await freePort();
  const guarded = renderIngressServer(ingress, { listen: authPort, backend: `127.0.0.1:${desktopPort}` });
  const plain = renderIngressServer(ingress, {
    listen: plainPort,
    backend: `127.0.0.1:${desktopPort}`,
    withAuth: false,
  });
  const nginx = await startNginx(authPort, [
    guarded.server,
    plain.server,
    renderProxyServer(`auth.${DOMAIN}`, authPort, oauth2Proxy.address),
  ]);
  onTestFinished(() => stopNginx(nginx));

  // One browser (one cookie jar); its wildcard DNS points at either port in turn.
  const route = { port: authPort };
  const owner = new Browser((host) => (host.endsWith(DOMAIN) ? `127.0.0.1:${route.port}` : host));
  const landed = await signIn(owner, `http://${guarded.host}/`, alice);
  expect(landed.status).toBe(200);

  const withAuth: number[] = [];
  const without: number[] = [];
  const started = performance.now();
  for (let i = 0; i < N && performance.now() - started < MAX_MS; i++) {
    for (const [port, samples] of [
      [authPort, withAuth],
      [plainPort, without],
    ] as const) {
      route.port = port;
      const t0 = performance.now();
      const response = await owner.send('GET', `http://${guarded.host}/`);
      samples.push(performance.now() - t0);
      expect(response.status).toBe(200);
    }
  }
  const result = {
    requests: withAuth.length,
    withAuthMs: summary(withAuth),
    withoutAuthMs: summary(without),
    addedMs: {
      p50: Math.round((summary(withAuth).p50 - summary(without).p50) * 1000) / 1000,
      p99: Math.round((summary(withAuth).p99 - summary(without).p99) * 1000) / 1000,
    },
  };
  console.log(`desktop auth hop: ${JSON.stringify(result)}`);
  mkdirSync(`${repo}/.bench`, { recursive: true });
  writeFileSync(`${repo}/.bench/desktop-auth.json`, `${JSON.stringify(result, null, 2)}\n`);
  expect(withAuth.length).toBeGreaterThan(100);
}, 300_000);
