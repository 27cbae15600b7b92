// A nats-server with JetStream of a bench script's own (test/integration/nats-server.mjs, as the
// tests run theirs; a store in a temporary directory), connected to; `stop()` closes the
// connection, ends the server and removes its store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { natsServerProcess } from '../test/integration/nats-server.mjs';

export async function startOwnNatsServer(port, name) {
  const store = mkdtempSync(join(tmpdir(), `${name}-`));
  const server = natsServerProcess({ port, storeDir: store, name });
  await server.start();
  const nc = await connect({ servers: server.url });
  return {
    nc,
    url: server.url,
    async stop() {
      await nc.close();
      await server.stop();
      rmSync(store, { recursive: true, force: true });
    },
  };
}
