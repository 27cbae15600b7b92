// A nats-server with JetStream of a bench script's own (scripts/toolchain's binary, a store in a
// temporary directory), connected to; `stop()` closes the connection, ends the server and removes
// its store.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';

const repo = new URL('..', import.meta.url).pathname;

export async function startOwnNatsServer(port, name) {
  const bin = `${execFileSync(`${repo}scripts/toolchain`, ['path', 'nats-server'], { encoding: 'utf8' }).trim()}/nats-server`;
  const store = mkdtempSync(join(tmpdir(), `${name}-`));
  const server = spawn(bin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store], { stdio: 'ignore' });
  const url = `nats://127.0.0.1:${port}`;
  let nc;
  for (let attempt = 0; !nc; attempt++) {
    nc = await connect({ servers: url }).catch((error) => {
      if (attempt > 50) throw error;
    });
    if (!nc) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    nc,
    url,
    async stop() {
      await nc.close();
      server.kill();
      rmSync(store, { recursive: true, force: true });
    },
  };
}
