import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { natsUsers, renderNatsAuthorization } from '@streamspace/shared';
import { freePort } from './harness.js';
import { natsServerProcess } from './nats-server.mjs';

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

export async function startRestartableNats(
  options: { authenticated?: boolean; monitorPort?: number } = {},
): Promise<RestartableNats> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'streamspace-nats-'));
  const users = new Map<string, { user: string; password: string }>();
  let configFile: string | undefined;
  if (options.authenticated) {
    const auth = testNatsAuthorization(String(port));
    for (const [identity, user] of auth.users) users.set(identity, user);
    configFile = join(storeDir, '..', `${storeDir.split('/').pop()}.conf`);
    writeFileSync(
      configFile,
      `listen: "127.0.0.1:${port}"\njetstream { store_dir: ${JSON.stringify(storeDir)} }\n${auth.authorization}`,
    );
  }
  const admin = users.get('admin');
  const server = natsServerProcess({
    port,
    storeDir,
    ...(configFile ? { configFile } : {}),
    ...(admin ? { probe: { user: admin.user, pass: admin.password } } : {}),
    ...(options.monitorPort !== undefined ? { monitorPort: options.monitorPort } : {}),
  });
  const { url } = server;
  const as = (identity: string) => {
    const user = users.get(identity);
    return user ? { NATS_URL: url, NATS_USER: user.user, NATS_PASSWORD: user.password } : { NATS_URL: url };
  };
  await server.start();
  return {
    url,
    storeDir,
    as,
    start: () => server.start(),
    stop: () => server.stop(),
    async restart() {
      await server.stop();
      await server.start();
    },
    async dispose() {
      await server.stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

export async function startPrivateNats(options: { monitorPort?: number } = {}): Promise<PrivateNats> {
  const nats = await startRestartableNats(options);
  return { url: nats.url, stop: () => nats.dispose() };
}
