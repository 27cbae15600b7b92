import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, freePort, repo } from './harness.js';
import { nginxConfig } from './ingress-nginx-auth.js';

/**
 * The real parts in front of a desktop, each a process on 127.0.0.1 with a free port: an OpenID
 * provider (zitadel/oidc's example provider), oauth2-proxy, and nginx (Debian's, with
 * auth_request). Binaries come from scripts/toolchain (built from the Go module proxy, cached)
 * and scripts/nginx.
 */

/** A process the stack started, with its output kept for failure messages. */
export class StackProcess {
  readonly output: string[] = [];
  private readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    const keep = (chunk: Buffer) => {
      this.output.push(...chunk.toString().split('\n').filter(Boolean));
      if (this.output.length > 400) this.output.splice(0, this.output.length - 400);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  tail(lines = 30): string {
    return `${this.name}:\n${this.output.slice(-lines).join('\n')}`;
  }

  async stop(): Promise<void> {
    if (this.running) this.child.kill('SIGTERM');
    await this.exited;
  }
}

function tool(name: string, binary: string): string {
  execFileSync(join(repo, 'scripts/toolchain'), ['build', name], { stdio: ['ignore', 'ignore', 'inherit'] });
  return join(
    execFileSync(join(repo, 'scripts/toolchain'), ['path', name], { encoding: 'utf8' }).trim(),
    binary,
  );
}

async function waitHttp(process: StackProcess, url: string, ok: (status: number) => boolean): Promise<void> {
  await eventually(async () => {
    if (!process.running) throw new Error(`${process.name} exited\n${process.tail()}`);
    const response = await fetch(url, { redirect: 'manual' });
    if (!ok(response.status)) throw new Error(`${url}: ${response.status}`);
  }, 30_000);
}

export interface OidcUser {
  /** What the user types at the login form, and the identity oauth2-proxy reports (preferred_username). */
  username: string;
  password: string;
  email: string;
}

export interface OidcProvider {
  process: StackProcess;
  issuer: string;
}

export async function startOidcProvider(users: OidcUser[], redirectUris: string[]): Promise<OidcProvider> {
  const dir = mkdtempSync(join(tmpdir(), 'ss-oidc-'));
  const usersFile = join(dir, 'users.json');
  writeFileSync(
    usersFile,
    JSON.stringify(
      Object.fromEntries(
        users.map((u, i) => [
          `id${i + 1}`,
          {
            ID: `id${i + 1}`,
            Username: u.username,
            Password: u.password,
            FirstName: u.username,
            LastName: 'Test',
            Email: u.email,
            EmailVerified: true,
            PreferredLanguage: 'en',
          },
        ]),
      ),
    ),
  );
  const port = await freePort();
  const child = spawn(tool('oidc-server', 'oidc-server'), [], {
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      USERS_FILE: usersFile,
      REDIRECT_URI: redirectUris.join(','),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The users file lives as long as the provider: nothing of a run stays behind in /tmp.
  child.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const provider = new StackProcess('oidc-server', child);
  const issuer = `http://127.0.0.1:${port}/`;
  await waitHttp(provider, `${issuer}.well-known/openid-configuration`, (s) => s === 200);
  return { process: provider, issuer };
}

export interface Oauth2Proxy {
  process: StackProcess;
  /** 127.0.0.1:port */
  address: string;
}

/**
 * oauth2-proxy as docs/deploy.md sets it up for desktops: OIDC, a cookie for the whole desktop
 * domain, redirects allowed back to any desktop, X-Auth-Request-* headers on /oauth2/auth, and
 * nothing proxied itself (the ingress controller asks it per request).
 */
export async function startOauth2Proxy(options: {
  issuer: string;
  domain: string;
  redirectUrl: string;
}): Promise<Oauth2Proxy> {
  const port = await freePort();
  const args = [
    `--http-address=127.0.0.1:${port}`,
    '--provider=oidc',
    `--oidc-issuer-url=${options.issuer}`,
    '--client-id=web',
    '--client-secret=secret',
    `--redirect-url=${options.redirectUrl}`,
    `--cookie-secret=${randomBytes(16).toString('hex')}`,
    `--cookie-domain=.${options.domain}`,
    `--whitelist-domain=.${options.domain}`,
    // Loopback is plain http; in a cluster the cookie is Secure behind TLS.
    '--cookie-secure=false',
    '--email-domain=*',
    '--set-xauthrequest=true',
    '--reverse-proxy=true',
    // Only the ingress controller (here nginx on loopback) may set X-Forwarded-* for it.
    '--trusted-proxy-ip=127.0.0.1/32',
    '--skip-provider-button=true',
    '--upstream=static://202',
    '--scope=openid email profile',
    // Users are known by a plain name, as ingress-nginx's annotation validation needs (docs/deploy.md).
    '--oidc-email-claim=preferred_username',
  ];
  const child = spawn(tool('oauth2-proxy', 'oauth2-proxy'), args, {
    env: { PATH: process.env.PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proxy = new StackProcess('oauth2-proxy', child);
  await waitHttp(proxy, `http://127.0.0.1:${port}/ping`, (s) => s === 200);
  return { process: proxy, address: `127.0.0.1:${port}` };
}

export interface Nginx {
  process: StackProcess;
  port: number;
  dir: string;
}

/** Debian's nginx with the given server blocks (each listening on `port`). */
export async function startNginx(port: number, servers: string[]): Promise<Nginx> {
  const binary = execFileSync(join(repo, 'scripts/nginx'), ['path'], { encoding: 'utf8' }).trim();
  const dir = mkdtempSync(join(tmpdir(), 'ss-nginx-'));
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, sub));
  writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, servers));
  try {
    execFileSync(binary, ['-t', '-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: 'pipe' });
  } catch (error) {
    throw new Error(`nginx refused the rendered configuration: ${(error as { stderr?: Buffer }).stderr}`);
  }
  const child = spawn(binary, ['-p', dir, '-c', join(dir, 'nginx.conf')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const nginx = new StackProcess('nginx', child);
  await waitHttp(nginx, `http://127.0.0.1:${port}/`, () => true);
  return { process: nginx, port, dir };
}

export async function stopNginx(nginx: Nginx | undefined): Promise<void> {
  if (!nginx) return;
  await nginx.process.stop();
  rmSync(nginx.dir, { recursive: true, force: true });
}

/**
 * Signs in through oauth2-proxy and the provider's login form, as a person would in a browser:
 * start at `desktopUrl`, follow the redirects to the login form, submit it, follow the redirects
 * back. Returns the final response (the desktop's, when the user may use it).
 */
export async function signIn(
  browser: import('./browser.js').Browser,
  desktopUrl: string,
  user: OidcUser,
): Promise<import('./browser.js').Response & { redirects: string[] }> {
  const form = await browser.go(desktopUrl);
  const id = /name="id" value="([^"]+)"/.exec(form.body)?.[1];
  if (form.status !== 200 || !id)
    throw new Error(
      `expected the provider's login form after ${form.redirects.join(' -> ')}, got ${form.status}: ${form.body.slice(0, 300)}`,
    );
  const body = new URLSearchParams({ id, username: user.username, password: user.password }).toString();
  const loginUrl = new URL('/login/username', form.url).toString();
  return browser.go(loginUrl, { method: 'POST', body });
}
