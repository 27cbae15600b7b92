import {
  ConfigError,
  durationSchema,
  env,
  parseDuration,
  parseQuantityExact,
  watchNamespacesSchema,
} from '@streamspace/shared';
import { z } from 'zod';
import { DEFAULT_HOST_PATTERN, hostPatternProblem } from './host-pattern.js';

const namespaceName = z
  .string()
  .max(63, 'must be a namespace name (at most 63 characters)')
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name (lower-case letters, digits and -)');

/** `name=quantity,...` (e.g. `cpu=4,memory=8Gi,nvidia.com/gpu=1`) read as a resource list. */
function resourceCeilingSchema(fallback: string) {
  return z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      const list: Record<string, string> = {};
      for (const entry of text
        .split(',')
        .map((e) => e.trim())
        .filter((e) => e !== '')) {
        const [name, quantity, ...rest] = entry.split('=').map((p) => p.trim());
        if (!name || !quantity || rest.length > 0 || !/^[a-z0-9]([-a-z0-9./]*[a-z0-9])?$/.test(name)) {
          ctx.addIssue({
            code: 'custom',
            message: `'${entry}' is not name=quantity, e.g. cpu=4 or memory=8Gi`,
          });
          return z.NEVER;
        }
        if (parseQuantityExact(quantity) === undefined || quantity.startsWith('-')) {
          ctx.addIssue({
            code: 'custom',
            message: `'${quantity}' (for ${name}) is not a quantity such as 4, 500m or 8Gi`,
          });
          return z.NEVER;
        }
        list[name] = quantity;
      }
      return list;
    });
}

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
  /**
   * The most a Session may request, per resource (its own requests merged with its Template's
   * defaults): `cpu=4,memory=8Gi`. A Session asking for more does not start. Empty: no ceiling.
   */
  SESSION_MAX_REQUESTS: resourceCeilingSchema('cpu=4,memory=8Gi'),
  /**
   * The highest limit a Session may set, per resource, and the limit it gets when it sets none:
   * `cpu=8,memory=16Gi`. Empty: no ceiling.
   */
  SESSION_MAX_LIMITS: resourceCeilingSchema('cpu=8,memory=16Gi'),
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
  /** The ceiling on a Session's resources (see SESSION_MAX_REQUESTS / SESSION_MAX_LIMITS); none when absent. */
  resourceCeiling?: ResourceCeiling;
}

export interface ResourceCeiling {
  requests: Record<string, string>;
  limits: Record<string, string>;
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
    resourceCeiling: { requests: config.SESSION_MAX_REQUESTS, limits: config.SESSION_MAX_LIMITS },
  };
}
