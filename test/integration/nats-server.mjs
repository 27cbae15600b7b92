// The one way a test or a bench runs a nats-server of its own: the binary scripts/toolchain built,
// JetStream on, on loopback. Plain JavaScript so that the bench scripts Node runs as they are
// (bench/*.mjs) start it as the TypeScript tests do (private-nats.ts, nats-cluster.ts); its types
// are in nats-server.d.mts.
import { execFileSync, spawn } from 'node:child_process';
import { connect } from '@nats-io/transport-node';

const repo = new URL('../..', import.meta.url).pathname;

/** The nats-server binary scripts/toolchain built. */
export function natsServerBinary() {
  return `${execFileSync(`${repo}scripts/toolchain`, ['path', 'nats-server'], { encoding: 'utf8' }).trim()}/nats-server`;
}

/**
 * A nats-server listening on 127.0.0.1:`port`, with JetStream storing in `storeDir`, or set up as
 * `configFile` says (which then says both): one that can be stopped and started again on the same
 * port and store, so that JetStream's streams, consumers and messages outlive a restart.
 * `start()` resolves once a client can connect (with `probe`'s credentials, when the server wants
 * some), and rejects at once if the server exits, or after 20 s.
 */
export function natsServerProcess({ port, storeDir, configFile, probe = {}, name = 'nats-server', monitorPort }) {
  const bin = natsServerBinary();
  const url = `nats://127.0.0.1:${port}`;
  const args = configFile
    ? ['-c', configFile]
    : ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir];
  // Its HTTP monitoring (/connz: each connection's messages and bytes), on loopback as the client port.
  if (monitorPort !== undefined) args.push('--http_port', String(monitorPort));
  let child;
  let exited = Promise.resolve();
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const end = async (signal) => {
    if (running()) child.kill(signal);
    await exited;
  };
  return {
    url,
    get running() {
      return running();
    },
    async start() {
      const started = spawn(bin, args, { stdio: 'ignore' });
      child = started;
      exited = new Promise((resolve) => started.once('exit', () => resolve()));
      const deadline = Date.now() + 20_000;
      for (;;) {
        if (started.exitCode !== null) throw new Error(`${name} exited with ${started.exitCode}`);
        try {
          const nc = await connect({ servers: url, reconnect: false, ...probe });
          await nc.close();
          return;
        } catch (error) {
          if (Date.now() > deadline) throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    /** SIGTERM (graceful: JetStream flushes to disk), and wait for the exit. */
    stop: () => end('SIGTERM'),
    /** SIGKILL, as a crash, and wait for the exit. */
    kill: () => end('SIGKILL'),
  };
}
