import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { z } from 'zod';
import { ConfigError, env, loadConfig } from './config.js';
import { type ExtraRoute, startHealthServer } from './health-server.js';
import { createLogger, type Logger } from './logger.js';
import { Readiness } from './readiness.js';

/** Variables every service reads, whatever else it needs. */
export const commonEnvSchema = z.object({
  LOG_LEVEL: env.logLevel(),
  // Loopback by default: a pod sets HTTP_HOST=0.0.0.0 so the kubelet and Prometheus can reach it.
  HTTP_HOST: z.string().default('127.0.0.1'),
});

export interface ServiceContext<C> {
  config: C;
  log: Logger;
  readiness: Readiness;
  registry: Registry;
  /** Aborted when the service is asked to stop. */
  signal: AbortSignal;
}

export interface RunningService {
  /** Finish or hand back in-flight work, then release connections. */
  stop(): Promise<void>;
  /** Extra HTTP routes served beside /healthz, /readyz and /metrics. */
  routes?: ExtraRoute;
}

export type ServiceConfig<S extends z.ZodObject> = z.infer<S> & z.infer<typeof commonEnvSchema> & { HTTP_PORT: number };

export interface ServiceDefinition<S extends z.ZodObject> {
  name: string;
  version?: string;
  defaultPort: number;
  configSchema: S;
  start(context: ServiceContext<ServiceConfig<S>>): Promise<RunningService>;
}

/**
 * The process shell every service shares: config from the environment (exit 1 with a message
 * that names the variable when it is wrong), JSON logs, /healthz /readyz /metrics, and a
 * graceful stop on SIGTERM or SIGINT. Transient faults are the service's to retry; nothing here
 * exits on them.
 */
export async function runService<S extends z.ZodObject>(definition: ServiceDefinition<S>): Promise<void> {
  const schema = commonEnvSchema.extend({ HTTP_PORT: env.port(definition.defaultPort) }).extend(definition.configSchema.shape);
  let config: ServiceConfig<S>;
  try {
    config = loadConfig(schema) as ServiceConfig<S>;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${definition.name}: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const log = createLogger(definition.name, config.LOG_LEVEL);
  const readiness = new Readiness();
  const registry = new Registry();
  // The event-loop delay histogram samples on a timer: prom-client's default of every 10 ms woke
  // an idle service 100 times a second, about a quarter of an idle worker's CPU (BENCHMARKS.md,
  // "Z1"). Every 100 ms still catches any stall long enough to matter to a reconcile.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  new Gauge({
    name: 'streamspace_build_info',
    help: 'Always 1; labels say which service and version is running.',
    labelNames: ['service', 'version', 'node_version'],
    registers: [registry],
  })
    .labels(definition.name, definition.version ?? '0.1.0', process.version)
    .set(1);

  process.on('unhandledRejection', (reason) => log.error({ err: String(reason) }, 'unhandled promise rejection'));
  process.on('uncaughtException', (error) => log.error({ err: error.message, stack: error.stack }, 'uncaught exception'));

  const controller = new AbortController();
  let routes: ExtraRoute | undefined;
  const health = await startHealthServer({
    host: config.HTTP_HOST,
    port: config.HTTP_PORT,
    readiness,
    registry,
    extra: (req, res) => (routes ? routes(req, res) : false),
  });
  log.info({ address: `${health.address.address}:${health.address.port}` }, 'health server listening');

  let service: RunningService | undefined;
  let stopping = false;
  const stop = async (signalName: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: signalName }, 'stopping');
    controller.abort();
    const deadline = setTimeout(() => {
      log.error('graceful stop took longer than 25s; exiting');
      process.exit(1);
    }, 25_000);
    try {
      await service?.stop();
    } catch (error) {
      log.error({ err: (error as Error).message }, 'error while stopping');
    }
    await health.close();
    clearTimeout(deadline);
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  try {
    service = await definition.start({ config, log, readiness, registry, signal: controller.signal });
  } catch (error) {
    // Only what retrying cannot fix reaches here (no credentials, a bad setting); transient
    // faults are retried inside start.
    if (controller.signal.aborted) return;
    log.fatal({ err: (error as Error).message }, 'cannot start');
    process.stderr.write(`${definition.name}: cannot start: ${(error as Error).message}\n`);
    process.exit(1);
  }
  routes = service.routes;
  log.info('started');
}
