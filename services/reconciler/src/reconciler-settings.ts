import { ConfigError, durationSchema, env, parseDuration, watchNamespacesSchema } from '@streamspace/shared';
import { z } from 'zod';
import { DEFAULT_HOST_PATTERN, hostPatternProblem } from './host-pattern.js';

const namespaceName = z
  .string()
  .max(63, 'must be a namespace name (at most 63 characters)')
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name (lower-case letters, digits and -)');

/** What a platform owner tunes about the children of a Session (all from the environment). */
export const reconcilerEnvSchema = z.object({
  INGRESS_DOMAIN: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS domain such as streamspace.example.com')
    .default('streamspace.localhost'),
  /** Checked with WATCH_NAMESPACE by settingsFromEnv (host-pattern.ts says the rules). */
  INGRESS_HOST_PATTERN: z.string().default(DEFAULT_HOST_PATTERN),
  /** The namespaces whose Sessions are served (as the watcher's, comma-separated); all when unset. */
  WATCH_NAMESPACE: watchNamespacesSchema,
  /**
   * The namespace StreamSpace itself runs in (the chart sets it). Sessions there are refused: its
   * users could read the control plane's Secrets and run pods as its ServiceAccounts.
   */
  CONTROL_PLANE_NAMESPACE: namespaceName.optional(),
  INGRESS_CLASS: z.string().optional(),
  INGRESS_TLS_SECRET: z.string().optional(),
  HOME_STORAGE_CLASS: z.string().optional(),
  HOME_STORAGE_SIZE: z
    .string()
    .regex(/^[0-9]+(\.[0-9]+)?([KMGTPE]i?)?$/, 'must be a quantity such as 10Gi')
    .default('10Gi'),
  HOME_ACCESS_MODE: z.enum(['ReadWriteMany', 'ReadWriteOnce', 'ReadWriteOncePod']).default('ReadWriteMany'),
  STARTUP_DEADLINE: durationSchema.default('5m'),
  WORKER_CONCURRENCY: env.positiveInt(8),
  MAX_ATTEMPTS: env.positiveInt(8),
  LOCK_TTL: durationSchema.default('30s'),
});

export interface ReconcilerSettings {
  ingressDomain: string;
  ingressHostPattern: string;
  /** Sessions in this namespace are refused (see CONTROL_PLANE_NAMESPACE). */
  controlPlaneNamespace?: string;
  ingressClassName?: string;
  ingressTlsSecret?: string;
  homeStorageClass?: string;
  homeStorageSize: string;
  homeAccessMode: string;
  startupDeadlineMs: number;
}

/** Throws a ConfigError naming INGRESS_HOST_PATTERN when the pattern cannot give every Session its own host. */
export function settingsFromEnv(config: z.infer<typeof reconcilerEnvSchema>): ReconcilerSettings {
  const problem = hostPatternProblem(config.INGRESS_HOST_PATTERN, config.WATCH_NAMESPACE?.length === 1);
  if (problem)
    throw new ConfigError(
      `invalid configuration in the environment:\n  INGRESS_HOST_PATTERN: ${problem} (got '${config.INGRESS_HOST_PATTERN}')`,
    );
  return {
    ingressDomain: config.INGRESS_DOMAIN,
    ingressHostPattern: config.INGRESS_HOST_PATTERN,
    ...(config.CONTROL_PLANE_NAMESPACE ? { controlPlaneNamespace: config.CONTROL_PLANE_NAMESPACE } : {}),
    ...(config.INGRESS_CLASS ? { ingressClassName: config.INGRESS_CLASS } : {}),
    ...(config.INGRESS_TLS_SECRET ? { ingressTlsSecret: config.INGRESS_TLS_SECRET } : {}),
    ...(config.HOME_STORAGE_CLASS ? { homeStorageClass: config.HOME_STORAGE_CLASS } : {}),
    homeStorageSize: config.HOME_STORAGE_SIZE,
    homeAccessMode: config.HOME_ACCESS_MODE,
    startupDeadlineMs: parseDuration(config.STARTUP_DEADLINE),
  };
}
