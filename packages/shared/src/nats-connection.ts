import { readFile } from 'node:fs/promises';
import { credsAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect, type NodeConnectionOptions } from '@nats-io/transport-node';
import { z } from 'zod';
import { retryForever } from './backoff.js';
import type { Logger } from './logger.js';
import { inboxPrefix } from './nats-permissions.js';
import type { Readiness } from './readiness.js';
import { redactUrlCredentials, splitUrlCredentials } from './url-credentials.js';

/** The environment variables every service reads to reach NATS. */
export const natsEnvSchema = z.object({
  NATS_URL: z
    .string()
    .default('nats://127.0.0.1:4222')
    .refine((v) => v.split(',').every((u) => /^(nats|tls|wss?):\/\/[^\s]+$/.test(u.trim())), {
      message: 'must be one or more comma-separated URLs such as nats://127.0.0.1:4222',
    }),
  NATS_USER: z.string().optional(),
  NATS_PASSWORD: z.string().optional(),
  NATS_CREDS_FILE: z.string().optional(),
  NATS_TLS_CA: z.string().optional(),
  NATS_TLS_CERT: z.string().optional(),
  NATS_TLS_KEY: z.string().optional(),
});
export type NatsEnv = z.infer<typeof natsEnvSchema>;

/**
 * `identity` is the service's NATS identity (nats-permissions.ts): its replies come back on an
 * inbox prefix of its own, which is all its NATS user may subscribe to besides its subjects.
 */
export async function natsConnectionOptions(config: NatsEnv, name: string, identity?: string): Promise<NodeConnectionOptions> {
  // Credentials in the URLs (nats://user:password@host) are taken out of them: the client gets
  // them as a user and password, and the URLs it reports in errors carry none.
  const servers = config.NATS_URL.split(',').map((s) => splitUrlCredentials(s));
  const inUrl = servers.find((s) => s.user !== undefined);
  const options: NodeConnectionOptions = {
    servers: servers.map((s) => s.url),
    name,
    ...(identity ? { inboxPrefix: inboxPrefix(identity) } : {}),
    // Never give up: a NATS outage must leave the service waiting (and not ready), not dead.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    reconnectJitter: 500,
    pingInterval: 10_000,
    maxPingOut: 3,
    // Without this, every request (each KV put and JetStream publish) builds Error objects up
    // front to keep the caller's stack for a possible failure: three stack captures per request,
    // most of the idle reaper's garbage at a thousand activity writes a second. Failures still
    // carry their message and cause.
    noAsyncTraces: true,
  };
  if (config.NATS_USER) {
    options.user = config.NATS_USER;
    options.pass = config.NATS_PASSWORD ?? '';
  } else if (inUrl?.user !== undefined) {
    options.user = inUrl.user;
    options.pass = inUrl.pass ?? '';
  }
  if (config.NATS_CREDS_FILE) options.authenticator = credsAuthenticator(await readFile(config.NATS_CREDS_FILE));
  if (config.NATS_TLS_CA || config.NATS_TLS_CERT) {
    options.tls = {
      ...(config.NATS_TLS_CA ? { caFile: config.NATS_TLS_CA } : {}),
      ...(config.NATS_TLS_CERT ? { certFile: config.NATS_TLS_CERT } : {}),
      ...(config.NATS_TLS_KEY ? { keyFile: config.NATS_TLS_KEY } : {}),
    };
  }
  return options;
}

/**
 * Connects, retrying the first connection with backoff (the client library only reconnects
 * after a first success), then keeps the `nats` readiness check in step with the connection.
 */
export async function connectNats(
  config: NatsEnv,
  options: { name: string; identity?: string; log: Logger; readiness: Readiness; signal?: AbortSignal },
): Promise<NatsConnection> {
  const { log, readiness } = options;
  readiness.register('nats', 'connecting to NATS');
  const connectionOptions = await natsConnectionOptions(config, options.name, options.identity);
  // NATS_URL may carry credentials (nats://user:password@host): never shown as given.
  const url = redactUrlCredentials(config.NATS_URL);
  const nc = await retryForever(() => connect(connectionOptions), {
    initialMs: 500,
    maxMs: 10_000,
    ...(options.signal ? { signal: options.signal } : {}),
    onError: (error, attempt, delayMs) => {
      const reason = redactUrlCredentials((error as Error).message);
      readiness.set('nats', false, `cannot connect to ${url}: ${reason}`);
      log.warn({ err: reason, attempt, retryInMs: delayMs, url }, 'NATS connection failed; retrying');
    },
  });
  readiness.set('nats', true);
  log.info({ server: nc.getServer() }, 'connected to NATS');
  void (async () => {
    for await (const status of nc.status()) {
      switch (status.type) {
        case 'disconnect':
          readiness.set('nats', false, 'disconnected from NATS; reconnecting');
          log.warn({ server: status.server }, 'NATS disconnected');
          break;
        case 'reconnect':
          readiness.set('nats', true);
          log.info({ server: status.server }, 'NATS reconnected');
          break;
        case 'error':
          log.warn({ err: String(status.error) }, 'NATS error');
          break;
        default:
          break;
      }
    }
  })();
  return nc;
}
