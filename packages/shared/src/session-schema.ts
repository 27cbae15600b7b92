import { z } from 'zod';
import {
  API_GROUP_VERSION,
  conditionsSchema,
  objectMetaSchema,
  resourceListSchema,
  resourceRequirementsSchema,
  timestampSchema,
  type ValidationResult,
  validateWith,
} from './api-common.js';
import { durationSchema } from './duration.js';
import {
  DNS1123_SUBDOMAIN_PATTERN,
  isDns1123Subdomain,
  isValidSessionName,
  SESSION_NAME_MAX_LENGTH,
  SHORTENED_NAME_HASH_LENGTH,
  TEMPLATE_NAME_MAX_LENGTH,
} from './object-names.js';

/**
 * The Session custom resource (stream.streamspace.io/v1alpha1): a user's request for a streamed
 * desktop. Mirrors crds/sessions.stream.streamspace.io.yaml field for field; see docs/api.md.
 */

export const SESSION_KIND = 'Session';
export const SESSION_PLURAL = 'sessions';
export const SESSION_SINGULAR = 'session';
export const SESSION_SHORT_NAMES = ['ss'] as const;
/** `kubectl get streamspace` lists Sessions and Templates. */
export const STREAMSPACE_CATEGORY = 'streamspace';

/** Desired state, written by users and by the idle-reaper. */
export const SESSION_STATES = ['running', 'hibernated', 'terminated'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

/** Observed phase, written by the reconciler. */
export const SESSION_PHASES = ['Pending', 'Running', 'Hibernated', 'Terminated', 'Failed'] as const;
export type SessionPhase = (typeof SESSION_PHASES)[number];

/** Defaults, identical to the CRD's `default:` values. `0` disables a timeout. */
export const SESSION_DEFAULTS = {
  state: 'running',
  persistentHome: false,
  idleTimeout: '30m',
  maxSessionDuration: '8h',
} as const satisfies {
  state: SessionState;
  persistentHome: boolean;
  idleTimeout: string;
  maxSessionDuration: string;
};

export const SESSION_USER_MAX_LENGTH = 253;
export const SESSION_URL_MAX_LENGTH = 2048;

const subdomainRegex = new RegExp(DNS1123_SUBDOMAIN_PATTERN);

/** Why a Session name ending like a shortened name is refused (CRD CEL rule and zod schema alike). */
export const SESSION_NAME_RESERVED_SUFFIX_MESSAGE = `a Session name must not end with '-' and ${SHORTENED_NAME_HASH_LENGTH} hex digits: that form is reserved for the shortened names StreamSpace gives the objects of long-named Sessions`;

/** A reference to a Template: a DNS-1123 subdomain of at most 63 characters (it is also used as a label value). */
export const templateRefSchema = z.string().min(1).max(TEMPLATE_NAME_MAX_LENGTH).regex(subdomainRegex, {
  error:
    "must be the name of a Template: a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)",
});

export const sessionSpecSchema = z.object({
  /** Owner of the session, any non-empty text such as `alice@example.com` (mapped to object names by userSlug). */
  user: z.string().min(1).max(SESSION_USER_MAX_LENGTH),
  /** Name of the Template in the Session's namespace. */
  template: templateRefSchema,
  state: z.enum(SESSION_STATES).default(SESSION_DEFAULTS.state),
  /** Overrides the Template's defaultResources. */
  resources: resourceRequirementsSchema.optional(),
  persistentHome: z.boolean().default(SESSION_DEFAULTS.persistentHome),
  idleTimeout: durationSchema.default(SESSION_DEFAULTS.idleTimeout),
  maxSessionDuration: durationSchema.default(SESSION_DEFAULTS.maxSessionDuration),
});
export type SessionSpec = z.output<typeof sessionSpecSchema>;
/** A spec as a person writes it (defaulted fields optional). */
export type SessionSpecInput = z.input<typeof sessionSpecSchema>;

export const sessionStatusSchema = z.object({
  phase: z.enum(SESSION_PHASES).optional(),
  podName: z.string().max(253).optional(),
  url: z.string().max(SESSION_URL_MAX_LENGTH).optional(),
  lastActivity: timestampSchema.optional(),
  /** Who last changed spec.state on the platform's behalf, why and when (the idle reaper writes it). */
  stateChange: z
    .object({
      by: z.string().max(253).optional(),
      reason: z.string().max(64).optional(),
      at: timestampSchema.optional(),
    })
    .optional(),
  resourceUsage: resourceListSchema().optional(),
  conditions: conditionsSchema.optional(),
  observedGeneration: z.int().min(0).optional(),
});
export type SessionStatus = z.output<typeof sessionStatusSchema>;

/**
 * metadata of a Session: its name must be a DNS-1123 subdomain (as Kubernetes requires of every
 * custom resource), without the suffix reserved for shortened names (the CRD's CEL rule).
 */
export const sessionMetadataSchema = objectMetaSchema.superRefine((meta, ctx) => {
  const name = meta.name;
  if (name === undefined) {
    if (meta.generateName === undefined)
      ctx.addIssue({ code: 'custom', path: ['name'], message: 'name is required' });
    return;
  }
  if (!isDns1123Subdomain(name)) {
    ctx.addIssue({
      code: 'custom',
      path: ['name'],
      message: `a Session name must be a DNS-1123 subdomain of at most ${SESSION_NAME_MAX_LENGTH} characters: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit`,
    });
  } else if (!isValidSessionName(name)) {
    ctx.addIssue({
      code: 'custom',
      path: ['name'],
      message: SESSION_NAME_RESERVED_SUFFIX_MESSAGE,
    });
  }
});

export const sessionSchema = z.object({
  apiVersion: z.literal(API_GROUP_VERSION),
  kind: z.literal(SESSION_KIND),
  metadata: sessionMetadataSchema,
  spec: sessionSpecSchema,
  status: sessionStatusSchema.optional(),
});
export type Session = z.output<typeof sessionSchema>;
/** A Session as a person writes it (defaulted fields optional, no status). */
export type SessionInput = z.input<typeof sessionSchema>;

/**
 * Validates a whole Session object (apiVersion, kind, metadata.name, spec, status) and applies
 * the defaults. Issues name the field, Kubernetes-style: `{ path: 'spec.idleTimeout', message }`.
 */
export function validateSession(obj: unknown): ValidationResult<Session> {
  return validateWith(sessionSchema, obj);
}

/** Validates only a spec (paths are relative: `idleTimeout`). */
export function validateSessionSpec(spec: unknown): ValidationResult<SessionSpec> {
  return validateWith(sessionSpecSchema, spec);
}
