import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { eventually, repo } from './harness.js';

/**
 * A nats-server with JetStream of a test's own, so the work items of its services are consumed
 * by its services alone — not by other reconcilers sharing the cluster's NATS.
 */
export interface PrivateNats {
  url: string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function startPrivateNats(): Promise<PrivateNats> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'streamspace-nats-'));
  const bin = execFileSync(`${repo}/scripts/toolchain`, ['path', 'nats-server'], { encoding: 'utf8' }).trim();
  const server: ChildProcess = spawn(
    `${bin}/nats-server`,
    ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir],
    {
      stdio: 'ignore',
    },
  );
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const url = `nats://127.0.0.1:${port}`;
  await eventually(async () => {
    const probe = await connect({ servers: url, reconnect: false });
    await probe.close();
  }, 15_000);
  return {
    url,
    async stop() {
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
      await exited;
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
