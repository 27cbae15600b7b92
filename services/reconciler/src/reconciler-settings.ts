import type { V1NetworkPolicyPeer } from '@kubernetes/client-node';
import {
  activityKeyProblem,
  ConfigError,
  durationSchema,
  env,
  parseDuration,
  parseQuantityExact,
  watchNamespacesSchema,
} from '@streamspace/shared';
import { z } from 'zod';
import type { ActivityAgentSettings } from './activity-agent.js';
import { type DesktopAuth, INGRESS_NGINX_URL_CHARACTERS } from './desktop-access.js';
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

/**
 * Capabilities the bundled catalog's images need once every other one is dropped: LinuxServer.io
 * images start as root under s6-overlay, take ownership of /config (CHOWN, DAC_OVERRIDE, FOWNER),
 * switch to their unprivileged user (SETUID, SETGID) and signal its processes on stop (KILL).
 */
export const DEFAULT_ALLOWED_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'KILL', 'SETGID', 'SETUID'];

/** ingress-nginx as its official chart installs it. */
export const DEFAULT_DESKTOP_INGRESS_FROM: V1NetworkPolicyPeer[] = [
  {
    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } },
    podSelector: { matchLabels: { 'app.kubernetes.io/name': 'ingress-nginx' } },
  },
];

const httpUrl = (example: string) =>
  z
    .string()
    .refine(
      (v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol),
      `must be an http(s) URL such as ${example}`,
    );

const commaList = (pattern: RegExp, what: string) =>
  z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((item) => item.trim())
        .filter(Boolean),
    )
    .refine(
      (items) => items.every((item) => pattern.test(item)),
      `must be a comma-separated list of ${what}`,
    );

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
  /** HTTPS desktops: a TLS block on every Ingress (the controller's default certificate without a secret or issuer). */
  INGRESS_TLS: env.boolean(false),
  /** cert-manager issues each desktop its own certificate (`cert-manager.io/cluster-issuer`). */
  INGRESS_CLUSTER_ISSUER: z.string().optional(),
  /** oauth2-proxy's /oauth2/auth as the ingress controller reaches it; unset: desktops WITHOUT authentication. */
  AUTH_URL: httpUrl('http://oauth2-proxy.oauth2-proxy.svc/oauth2/auth').optional(),
  AUTH_SIGNIN_URL: httpUrl('https://auth.example.com/oauth2/start').optional(),
  /** Identities (email claim) admitted to every desktop besides its owner. */
  AUTH_ADMIN_USERS: commaList(/^[^,\s]+$/, 'identities such as admin@example.com').default([]),
  /**
   * Headers nginx sets from oauth2-proxy's answer. Listing one also replaces (or, when the answer
   * has none, drops) the client's own copy, so a desktop that trusts X-Forwarded-User cannot be
   * told a forged name.
   */
  AUTH_RESPONSE_HEADERS: commaList(/^[A-Za-z0-9-]+$/, 'header names').default([
    'X-Auth-Request-User',
    'X-Auth-Request-Email',
    'X-Forwarded-User',
    'X-Forwarded-Email',
  ]),
  /** The ingress controller refuses annotation values with characters such as @ and % (ingress-nginx's default). */
  AUTH_ANNOTATION_VALIDATION: env.boolean(true),
  /** A NetworkPolicy per desktop: only DESKTOP_INGRESS_FROM may reach its port. */
  DESKTOP_NETWORK_POLICY: env.boolean(true),
  DESKTOP_INGRESS_FROM: z
    .string()
    .transform((v, ctx) => {
      try {
        const parsed = JSON.parse(v) as unknown;
        if (Array.isArray(parsed) && parsed.length > 0 && parsed.every((p) => p && typeof p === 'object'))
          return parsed as V1NetworkPolicyPeer[];
      } catch {}
      ctx.addIssue({
        code: 'custom',
        message:
          'must be a non-empty JSON array of NetworkPolicy peers, e.g. [{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"ingress-nginx"}}}]',
      });
      return z.NEVER;
    })
    .optional(),
  /** Capabilities a Template may add ('none': no Template may add any); a Template asking for another one is invalid. */
  DESKTOP_ALLOWED_CAPABILITIES: z
    .string()
    .transform((v) => (v.trim() === 'none' ? '' : v))
    .pipe(commaList(/^[A-Z_]+$/, "capability names such as CHOWN,SETUID, or 'none'"))
    .default(DEFAULT_ALLOWED_CAPABILITIES),
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
  /**
   * The activity agent (docs/idle-reaper.md): the image it runs from (the platform's own), the idle
   * reaper's POST /activity as session pods reach it, and the file of the key of session tokens
   * (a mounted Secret shared with the reaper). All three, or none: no agent.
   */
  ACTIVITY_AGENT_IMAGE: z.string().min(1).optional(),
  ACTIVITY_AGENT_URL: httpUrl('http://streamspace-idle-reaper.streamspace:8083/activity').optional(),
  ACTIVITY_SESSION_KEY_FILE: z.string().min(1).optional(),
  /** V8 flags on the agent's node command line (space-separated). */
  ACTIVITY_AGENT_NODE_ARGS: z.string().default('--max-semi-space-size=1 --lite-mode --no-expose-wasm'),
  /**
   * Reconciles a worker runs at once. A reconcile mostly waits for the API server (in a burst of
   * 1,000 creates one took about 1 s, BENCHMARKS.md run L1), so a worker's rate is about its
   * concurrency per second. 12 was tried (runs L2–L3) and showed no gain beyond the runs' noise
   * while each reconcile in flight holds memory a worker must stay within (issue 13's 150 MiB for
   * the watcher and one worker), so 8 stays the default.
   */
  WORKER_CONCURRENCY: env.positiveInt(8),
  MAX_ATTEMPTS: env.positiveInt(8),
  /**
   * Test instrumentation only: a file this worker appends one JSON line to per reconcile (key,
   * worker, start, end), so the one-writer test can prove no key ran on two workers at once.
   */
  RECONCILE_INTERVALS_FILE: z.string().min(1).optional(),
});

export interface ReconcilerSettings {
  ingressDomain: string;
  ingressHostPattern: string;
  /** Sessions in this namespace are refused (see CONTROL_PLANE_NAMESPACE). */
  controlPlaneNamespace?: string;
  ingressClassName?: string;
  ingressTlsSecret?: string;
  /** HTTPS desktops (implied by ingressTlsSecret or ingressClusterIssuer). */
  ingressTls?: boolean;
  ingressClusterIssuer?: string;
  /** External auth in front of every desktop; undefined: none (the reconciler warns at start). */
  desktopAuth?: DesktopAuth;
  /** Who may reach a desktop's port; undefined: no NetworkPolicy per desktop. */
  desktopIngressFrom?: V1NetworkPolicyPeer[];
  /** Capabilities a Template may add; undefined: any (unit tests of other rules). */
  allowedCapabilities?: readonly string[];
  homeStorageClass?: string;
  homeStorageSize: string;
  homeAccessMode: string;
  startupDeadlineMs: number;
  /** The ceiling on a Session's resources (see SESSION_MAX_REQUESTS / SESSION_MAX_LIMITS); none when absent. */
  resourceCeiling?: ResourceCeiling;
  /** The activity agent put beside desktops whose Template asks for it; none when absent (activity-agent.ts). */
  activityAgent?: ActivityAgentSettings;
}

export interface ResourceCeiling {
  requests: Record<string, string>;
  limits: Record<string, string>;
}

/** Throws a ConfigError naming INGRESS_HOST_PATTERN when the pattern cannot give every Session its own host. */
export function settingsFromEnv(
  config: z.infer<typeof reconcilerEnvSchema>,
  /** The content of ACTIVITY_SESSION_KEY_FILE, read by the caller. */
  activityKey?: string,
): ReconcilerSettings {
  const agentVariables = [
    ['ACTIVITY_AGENT_IMAGE', config.ACTIVITY_AGENT_IMAGE],
    ['ACTIVITY_AGENT_URL', config.ACTIVITY_AGENT_URL],
    ['ACTIVITY_SESSION_KEY_FILE', config.ACTIVITY_SESSION_KEY_FILE],
  ] as const;
  const missing = agentVariables.filter(([, value]) => !value).map(([name]) => name);
  if (missing.length > 0 && missing.length < agentVariables.length)
    throw new ConfigError(
      `${missing.join(', ')}: the activity agent needs ACTIVITY_AGENT_IMAGE, ACTIVITY_AGENT_URL and ACTIVITY_SESSION_KEY_FILE together (chart: activityAgent.enabled); set them all, or none for no agent`,
    );
  const keyProblem = activityKey === undefined ? undefined : activityKeyProblem(activityKey);
  if (keyProblem) throw new ConfigError(`ACTIVITY_SESSION_KEY_FILE: ${keyProblem}`);
  const problem = hostPatternProblem(config.INGRESS_HOST_PATTERN, config.WATCH_NAMESPACE?.length === 1);
  if (problem)
    throw new ConfigError(
      `invalid configuration in the environment:\n  INGRESS_HOST_PATTERN: ${problem} (got '${config.INGRESS_HOST_PATTERN}')`,
    );
  if (config.AUTH_URL && !config.AUTH_SIGNIN_URL)
    throw new ConfigError(
      'AUTH_SIGNIN_URL: must be set with AUTH_URL: where a browser without a session signs in, e.g. https://auth.example.com/oauth2/start',
    );
  if (config.AUTH_URL && config.AUTH_ANNOTATION_VALIDATION) {
    const refused = [
      ['AUTH_URL', config.AUTH_URL],
      ['AUTH_SIGNIN_URL', config.AUTH_SIGNIN_URL ?? ''],
      ['AUTH_ADMIN_USERS', config.AUTH_ADMIN_USERS.join(',')],
    ].filter(([, value]) => !INGRESS_NGINX_URL_CHARACTERS.test(value as string));
    if (refused.length > 0)
      throw new ConfigError(
        `${refused.map(([name]) => name).join(', ')}: ingress-nginx's annotation validation accepts only letters, digits and - . _ ~ / : , ? & = $ in auth URLs (not @ or %); use such names, or turn its --enable-annotation-validation off and set AUTH_ANNOTATION_VALIDATION=false (chart: auth.annotationValidation=false)`,
      );
  }
  return {
    ...(config.INGRESS_TLS || config.INGRESS_TLS_SECRET || config.INGRESS_CLUSTER_ISSUER
      ? { ingressTls: true }
      : {}),
    ...(config.INGRESS_CLUSTER_ISSUER ? { ingressClusterIssuer: config.INGRESS_CLUSTER_ISSUER } : {}),
    ...(config.AUTH_URL && config.AUTH_SIGNIN_URL
      ? {
          desktopAuth: {
            url: config.AUTH_URL,
            signinUrl: config.AUTH_SIGNIN_URL,
            adminUsers: config.AUTH_ADMIN_USERS,
            responseHeaders: config.AUTH_RESPONSE_HEADERS,
            annotationValidation: config.AUTH_ANNOTATION_VALIDATION,
          },
        }
      : {}),
    ...(config.DESKTOP_NETWORK_POLICY
      ? { desktopIngressFrom: config.DESKTOP_INGRESS_FROM ?? DEFAULT_DESKTOP_INGRESS_FROM }
      : {}),
    allowedCapabilities: config.DESKTOP_ALLOWED_CAPABILITIES,
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
    ...(config.ACTIVITY_AGENT_IMAGE && config.ACTIVITY_AGENT_URL && activityKey !== undefined
      ? {
          activityAgent: {
            image: config.ACTIVITY_AGENT_IMAGE,
            url: config.ACTIVITY_AGENT_URL,
            key: activityKey,
            nodeArgs: config.ACTIVITY_AGENT_NODE_ARGS.split(' ').filter(Boolean),
          },
        }
      : {}),
  };
}
