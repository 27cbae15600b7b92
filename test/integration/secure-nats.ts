import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { natsUsers, renderNatsAuthorization } from '@streamspace/shared';
import { eventually, freePort, repo } from './harness.js';

/**
 * A private nats-server with JetStream, TLS (a throwaway CA and server certificate made with
 * openssl at test time) and password authorization. No `no_auth_user`: a client without
 * credentials is refused. Its users are the ones operators get (natsUsers() in
 * packages/shared/src/nats-permissions.ts, what scripts/nats-auth renders): one per service,
 * the activity reporter and any extra command issuers, plus `admin`, a test-only user with every
 * permission that the tests observe through.
 */
export interface SecureNats {
  /** tls://127.0.0.1:<port> */
  url: string;
  port: number;
  caFile: string;
  /** User name and password of each identity (and `admin`). */
  users: Record<string, { user: string; password: string }>;
  /** The nats-server's own output (it logs authorization failures). */
  logs: string[];
  stop(): Promise<void>;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A CA and a server certificate for 127.0.0.1/localhost, in `dir`. */
export function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=streamspace-test-ca',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
    ],
    dir,
  );
  openssl(
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=localhost',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
    ],
    dir,
  );
  writeFileSync(
    join(dir, 'san.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      'san.ext',
      '-out',
      'server.pem',
    ],
    dir,
  );
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

export async function startSecureNats(options: {
  /** A password for every identity the server should know (the services, activity-reporter, …) and `admin`. */
  passwords: Record<string, string>;
  /** Extra identities allowed to publish commands under their own issuer token. */
  commandIssuers?: string[];
}): Promise<SecureNats> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'streamspace-secure-nats-'));
  const certs = makeCertificates(dir);
  const { admin, ...passwords } = options.passwords;
  if (!admin) throw new Error('startSecureNats needs a password for the test-only admin user');
  const natsUsersList = natsUsers({ passwords, commandIssuers: options.commandIssuers ?? [] });
  const users: SecureNats['users'] = { admin: { user: 'admin', password: admin } };
  for (const u of natsUsersList) {
    if (passwords[u.identity] === undefined)
      throw new Error(`startSecureNats: no password given for ${u.identity}`);
    users[u.identity] = { user: u.user, password: u.password };
  }
  const authorization = renderNatsAuthorization([
    ...natsUsersList,
    {
      identity: 'admin',
      user: 'admin',
      password: admin,
      permissions: { publish: ['>'], subscribe: ['>'], allowResponses: false },
    },
  ]);
  const config = `
listen: "127.0.0.1:${port}"
jetstream { store_dir: ${JSON.stringify(join(dir, 'js'))} }
tls {
  cert_file: ${JSON.stringify(certs.cert)}
  key_file: ${JSON.stringify(certs.key)}
  timeout: 2
}
${authorization}
`;
  const configFile = join(dir, 'nats.conf');
  writeFileSync(configFile, config);
  const bin = execFileSync(`${repo}/scripts/toolchain`, ['path', 'nats-server'], { encoding: 'utf8' }).trim();
  const logs: string[] = [];
  const server: ChildProcess = spawn(`${bin}/nats-server`, ['-c', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const collect = (chunk: Buffer) =>
    logs.push(
      ...chunk
        .toString()
        .split('\n')
        .filter((l) => l.length > 0),
    );
  server.stdout?.on('data', collect);
  server.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const url = `tls://127.0.0.1:${port}`;
  await eventually(async () => {
    if (server.exitCode !== null) throw new Error(`nats-server exited:\n${logs.join('\n')}`);
    const probe = await connect({
      servers: url,
      reconnect: false,
      user: 'admin',
      pass: admin,
      tls: { caFile: certs.ca },
    });
    await probe.close();
  }, 15_000);
  return {
    url,
    port,
    caFile: certs.ca,
    users,
    logs,
    async stop() {
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
