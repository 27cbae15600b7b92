import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { natsUsers, renderNatsAuthorization } from '@streamspace/shared';
import { eventually, freePort, repo } from './harness.js';

/**
 * A nats-server with JetStream of a test's own, so the work items of its services are consumed
 * by its services alone — not by other reconcilers sharing the cluster's NATS.
 */
export interface PrivateNats {
  url: string;
  stop(): Promise<void>;
}

/**
 * A nats-server with JetStream of a test's own that can be stopped and started again on the same
 * port and store dir, so JetStream's streams, consumers and messages survive the restart.
 */
export interface RestartableNats {
  url: string;
  storeDir: string;
  start(): Promise<void>;
  /** SIGTERM (graceful: JetStream flushes to disk) and wait for the exit. */
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** Stop and remove the store dir. */
  dispose(): Promise<void>;
  /**
   * With `authenticated`: the environment that makes a service connect as its own NATS user (with
   * the permissions of nats-permissions.ts), or as `admin` (everything) for the test itself.
   */
  as(identity: string): { NATS_URL: string; NATS_USER?: string; NATS_PASSWORD?: string };
}

/**
 * The users a test's own nats-server knows: one per service with the permissions of
 * nats-permissions.ts, and `admin` (everything) for the test itself. `seed` makes the passwords
 * differ between servers.
 */
export function testNatsAuthorization(seed: string): {
  users: Map<string, { user: string; password: string }>;
  authorization: string;
} {
  const list = natsUsers({
    passwords: Object.fromEntries(
      ['watcher', 'reconciler', 'idle-reaper', 'metrics', 'activity-reporter'].map((id) => [id, `pw-${id}-${seed}`]),
    ),
  });
  const users = new Map(list.map((u) => [u.identity, { user: u.user, password: u.password }]));
  users.set('admin', { user: 'admin', password: `pw-admin-${seed}` });
  const authorization = renderNatsAuthorization([
    ...list,
    {
      identity: 'admin',
      user: 'admin',
      password: `pw-admin-${seed}`,
      permissions: { publish: ['>'], subscribe: ['>'], allowResponses: false },
    },
  ]);
  return { users, authorization };
}

/** The nats-server binary scripts/toolchain built. */
export function natsServerBinary(): string {
  return `${execFileSync(`${repo}/scripts/toolchain`, ['path', 'nats-server'], { encoding: 'utf8' }).trim()}/nats-server`;
}

export async function startRestartableNats(
  options: { authenticated?: boolean } = {},
): Promise<RestartableNats> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'streamspace-nats-'));
  const bin = natsServerBinary();
  const url = `nats://127.0.0.1:${port}`;
  let server: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const users = new Map<string, { user: string; password: string }>();
  let args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir];
  if (options.authenticated) {
    const auth = testNatsAuthorization(String(port));
    for (const [identity, user] of auth.users) users.set(identity, user);
    const configFile = join(storeDir, '..', `${storeDir.split('/').pop()}.conf`);
    writeFileSync(
      configFile,
      `listen: "127.0.0.1:${port}"\njetstream { store_dir: ${JSON.stringify(storeDir)} }\n${auth.authorization}`,
    );
    args = ['-c', configFile];
  }
  const as = (identity: string) => {
    const user = users.get(identity);
    return user ? { NATS_URL: url, NATS_USER: user.user, NATS_PASSWORD: user.password } : { NATS_URL: url };
  };
  const admin = users.get('admin');

  const start = async () => {
    const child = spawn(bin, args, {
      stdio: 'ignore',
    });
    server = child;
    exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}`);
        const probe = await connect({
          servers: url,
          reconnect: false,
          ...(admin ? { user: admin.user, pass: admin.password } : {}),
        });
        await probe.close();
      },
      20_000,
      100,
    );
  };
  const stop = async () => {
    if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    url,
    storeDir,
    as,
    start,
    stop,
    async restart() {
      await stop();
      await start();
    },
    async dispose() {
      await stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

export async function startPrivateNats(): Promise<PrivateNats> {
  const nats = await startRestartableNats();
  return { url: nats.url, stop: () => nats.dispose() };
}
