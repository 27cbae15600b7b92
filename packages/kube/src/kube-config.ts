import type { Registry } from 'prom-client';
import { z } from 'zod';
import { DEFAULT_BURST, DEFAULT_MAX_CONNECTIONS, DEFAULT_QPS, KubeClient, type KubeLog } from './kube-client.js';
import { createKubeClientMetrics } from './kube-metrics.js';

/**
 * The client-side rate limit of a service's API requests, as client-go's QPS and Burst. Every
 * service's config schema extends this, so each can be tuned (chart or env) without a rebuild.
 */
export const kubeEnvSchema = z.object({
  /** Requests per second to the API server after the burst; 0 turns the limit off. */
  KUBE_QPS: z.coerce
    .number({ message: 'must be a number' })
    .min(0, 'must be 0 (no limit) or more')
    .default(DEFAULT_QPS),
  /** Requests that may go at once before KUBE_QPS applies. */
  KUBE_BURST: z.coerce
    .number({ message: 'must be a number' })
    .int('must be a whole number')
    .positive('must be greater than 0')
    .default(DEFAULT_BURST),
  /**
   * HTTP/1.1 connections a client keeps open to the API server at most for its requests when the
   * server offers no HTTP/2 (else requests and watches are streams of one HTTP/2 connection);
   * requests beyond them wait for one. Not for its watches: without HTTP/2 each has a connection
   * of its own while it lasts (kube-client.ts).
   * Each TLS connection holds ~110 KiB of native memory for the life of the process.
   */
  KUBE_MAX_CONNECTIONS: z.coerce
    .number({ message: 'must be a number' })
    .int('must be a whole number')
    .positive('must be greater than 0')
    .default(DEFAULT_MAX_CONNECTIONS),
});

export type KubeEnv = z.infer<typeof kubeEnvSchema>;

/** A client with the service's rate limit, metrics (in its registry) and log. */
export function kubeClientFromConfig(config: KubeEnv, registry: Registry, log: KubeLog): KubeClient {
  return KubeClient.fromEnvironment({
    qps: config.KUBE_QPS,
    burst: config.KUBE_BURST,
    maxConnections: config.KUBE_MAX_CONNECTIONS,
    metrics: createKubeClientMetrics(registry),
    log,
  });
}
