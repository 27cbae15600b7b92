import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { eventually, freePort, repo } from './harness.js';

/**
 * A private nats-server with JetStream, TLS (a throwaway CA and server certificate made with
 * openssl at test time) and password authorization. No `no_auth_user`: a client without
 * credentials is refused. Users:
 * - `service`: everything (what the StreamSpace services connect as);
 * - `reporter`: may only publish activity reports (a VNC proxy or browser client), so it cannot
 *   publish commands.
 */
export interface SecureNats {
  /** tls://127.0.0.1:<port> */
  url: string;
  port: number;
  caFile: string;
  users: { service: { user: string; password: string }; reporter: { user: string; password: string } };
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

export async function startSecureNats(passwords: { service: string; reporter: string }): Promise<SecureNats> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'streamspace-secure-nats-'));
  const certs = makeCertificates(dir);
  const users = {
    service: { user: 'streamspace', password: passwords.service },
    reporter: { user: 'reporter', password: passwords.reporter },
  };
  const config = `
listen: "127.0.0.1:${port}"
jetstream { store_dir: ${JSON.stringify(join(dir, 'js'))} }
tls {
  cert_file: ${JSON.stringify(certs.cert)}
  key_file: ${JSON.stringify(certs.key)}
  timeout: 2
}
authorization {
  users = [
    { user: ${JSON.stringify(users.service.user)}, password: ${JSON.stringify(users.service.password)} }
    {
      user: ${JSON.stringify(users.reporter.user)}, password: ${JSON.stringify(users.reporter.password)}
      permissions: {
        publish: { allow: ["streamspace.activity.>"] }
        subscribe: { allow: ["_INBOX.>"] }
      }
    }
  ]
}
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
      user: users.service.user,
      pass: users.service.password,
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
