import { durationSchema, env, parseDuration } from '@streamspace/shared';
import { z } from 'zod';

/** What a platform owner tunes about the children of a Session (all from the environment). */
export const reconcilerEnvSchema = z.object({
  INGRESS_DOMAIN: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS domain such as streamspace.example.com')
    .default('streamspace.localhost'),
  INGRESS_HOST_PATTERN: z
    .string()
    .refine((v) => v.includes('{session}'), 'must contain {session} (and may use {namespace} and {domain})')
    .default('{session}.{domain}'),
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
  ingressClassName?: string;
  ingressTlsSecret?: string;
  homeStorageClass?: string;
  homeStorageSize: string;
  homeAccessMode: string;
  startupDeadlineMs: number;
}

export function settingsFromEnv(config: z.infer<typeof reconcilerEnvSchema>): ReconcilerSettings {
  return {
    ingressDomain: config.INGRESS_DOMAIN,
    ingressHostPattern: config.INGRESS_HOST_PATTERN,
    ...(config.INGRESS_CLASS ? { ingressClassName: config.INGRESS_CLASS } : {}),
    ...(config.INGRESS_TLS_SECRET ? { ingressTlsSecret: config.INGRESS_TLS_SECRET } : {}),
    ...(config.HOME_STORAGE_CLASS ? { homeStorageClass: config.HOME_STORAGE_CLASS } : {}),
    homeStorageSize: config.HOME_STORAGE_SIZE,
    homeAccessMode: config.HOME_ACCESS_MODE,
    startupDeadlineMs: parseDuration(config.STARTUP_DEADLINE),
  };
}
