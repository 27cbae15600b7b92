import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { eventually, freePort } from './harness.js';
import { natsServerProcess } from './nats-server.mjs';
import { testNatsAuthorization } from './private-nats.js';

/**
 * A JetStream cluster of a test's own: `size` nats-servers on loopback, routed to each other, each
 * with the services' users (nats-permissions.ts) and an `admin` for the test. Each server can be
 * SIGKILLed, stopped and started again on the same ports and store dir, as a node of a real
 * cluster would be.
 */
export interface NatsClusterServer {
  /** The server_name JetStream reports as a stream's leader or replica. */
  name: string;
  url: string;
  readonly running: boolean;
  start(): Promise<void>;
  /** SIGTERM and wait for the exit (JetStream flushes and steps down). */
  stop(): Promise<void>;
  /** SIGKILL: no chance to flush or step down, as when a node dies. */
  kill(): Promise<void>;
}

export interface NatsCluster {
  servers: NatsClusterServer[];
  /** Every server's URL, comma-separated, as a service's NATS_URL. */
  urls: string;
  /** NATS_URL, NATS_USER and NATS_PASSWORD of a service (or `admin`). */
  as(identity: string): { NATS_URL: string; NATS_USER: string; NATS_PASSWORD: string };
  /** The test's own connection, as admin, failing over between the servers. */
  admin(): Promise<NatsConnection>;
  /** Waits until every stream has a leader and each of its replicas is up and caught up. */
  waitCurrent(jsm: JetStreamManager, timeoutMs?: number): Promise<void>;
  dispose(): Promise<void>;
}

export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'streamspace-nats-cluster-'));
  const clientPorts: number[] = [];
  const routePorts: number[] = [];
  for (let i = 0; i < size; i++) {
    clientPorts.push(await freePort());
    routePorts.push(await freePort());
  }
  const auth = testNatsAuthorization(String(clientPorts[0]));
  const admin = auth.users.get('admin') as { user: string; password: string };
  const routes = routePorts.map((p) => `"nats://127.0.0.1:${p}"`).join(', ');
  const urls = clientPorts.map((p) => `nats://127.0.0.1:${p}`).join(',');

  const servers: NatsClusterServer[] = clientPorts.map((port, i) => {
    const name = `ss-nats-${i}`;
    const url = `nats://127.0.0.1:${port}`;
    const storeDir = join(dir, name);
    mkdirSync(storeDir);
    const configFile = join(dir, `${name}.conf`);
    writeFileSync(
      configFile,
      [
        `server_name: ${name}`,
        `listen: "127.0.0.1:${port}"`,
        `jetstream { store_dir: ${JSON.stringify(storeDir)} }`,
        `cluster { name: streamspace-test, listen: "127.0.0.1:${routePorts[i]}", routes: [${routes}] }`,
        auth.authorization,
      ].join('\n'),
    );
    const server = natsServerProcess({
      port,
      configFile,
      probe: { user: admin.user, pass: admin.password },
      name: `nats-server ${name}`,
    });
    return {
      name,
      url,
      get running() {
        return server.running;
      },
      start: () => server.start(),
      stop: () => server.stop(),
      kill: () => server.kill(),
    };
  });
  await Promise.all(servers.map((s) => s.start()));
  // JetStream answers once the servers have elected a meta leader, a moment after they listen.
  const probe = await connect({ servers: urls.split(','), user: admin.user, pass: admin.password });
  await eventually(() => jetstreamManager(probe), 30_000, 250);
  await probe.close();

  return {
    servers,
    urls,
    as(identity) {
      const user = auth.users.get(identity);
      if (!user) throw new Error(`no NATS user for ${identity}`);
      return { NATS_URL: urls, NATS_USER: user.user, NATS_PASSWORD: user.password };
    },
    admin: () =>
      connect({ servers: urls.split(','), user: admin.user, pass: admin.password, maxReconnectAttempts: -1 }),
    async waitCurrent(jsm, timeoutMs = 60_000) {
      await eventually(
        async () => {
          for await (const info of jsm.streams.list()) {
            const cluster = info.cluster;
            if (!cluster?.leader) throw new Error(`${info.config.name} has no leader`);
            const lagging = (cluster.replicas ?? []).filter((r) => !r.current || r.offline);
            if ((cluster.replicas ?? []).length + 1 < info.config.num_replicas || lagging.length > 0)
              throw new Error(
                `${info.config.name}: replicas not current: ${JSON.stringify(cluster.replicas)}`,
              );
          }
        },
        timeoutMs,
        250,
      );
    },
    async dispose() {
      await Promise.all(servers.map((s) => s.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
