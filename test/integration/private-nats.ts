import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
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
}

export async function startRestartableNats(): Promise<RestartableNats> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'streamspace-nats-'));
  const bin = `${execFileSync(`${repo}/scripts/toolchain`, ['path', 'nats-server'], { encoding: 'utf8' }).trim()}/nats-server`;
  const url = `nats://127.0.0.1:${port}`;
  let server: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async () => {
    const child = spawn(bin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], {
      stdio: 'ignore',
    });
    server = child;
    exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}`);
        const probe = await connect({ servers: url, reconnect: false });
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
