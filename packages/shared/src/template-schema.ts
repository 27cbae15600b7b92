import { z } from 'zod';
import {
  API_GROUP_VERSION,
  conditionsSchema,
  duplicateIssues,
  objectMetaSchema,
  quantitySchema,
  resourceRequirementsSchema,
  type ValidationResult,
  validateWith,
} from './api-common.js';
import { DNS1123_LABEL_PATTERN, isDns1123Subdomain, TEMPLATE_NAME_MAX_LENGTH } from './object-names.js';

/**
 * The Template custom resource (stream.streamspace.io/v1alpha1): a streamable application — its
 * image, resources, ports and VNC endpoint. Mirrors crds/templates.stream.streamspace.io.yaml
 * field for field; see docs/api.md.
 */

export const TEMPLATE_KIND = 'Template';
export const TEMPLATE_PLURAL = 'templates';
export const TEMPLATE_SINGULAR = 'template';
export const TEMPLATE_SHORT_NAMES = ['tpl'] as const;

export const VNC_PROTOCOLS = ['rfb', 'websocket'] as const;
export type VncProtocol = (typeof VNC_PROTOCOLS)[number];
export const PORT_PROTOCOLS = ['TCP', 'UDP'] as const;
export type PortProtocol = (typeof PORT_PROTOCOLS)[number];

/** Defaults, identical to the CRD's `default:` values. */
export const TEMPLATE_DEFAULTS = {
  homePath: '/config',
  portProtocol: 'TCP',
  vnc: { enabled: true, protocol: 'rfb', encryption: false },
} as const satisfies {
  homePath: string;
  portProtocol: PortProtocol;
  vnc: { enabled: boolean; protocol: VncProtocol; encryption: boolean };
};

/** Bounds shared with the CRD (they also keep the CEL rules' cost estimates small). */
export const TEMPLATE_LIMITS = {
  displayName: 128,
  description: 2048,
  category: 63,
  icon: 4096,
  baseImage: 512,
  ports: 16,
  portName: 15,
  env: 64,
  envName: 256,
  envValue: 32768,
  volumeMounts: 16,
  path: 1024,
  capabilities: 32,
  capability: 64,
  tags: 32,
  tag: 63,
} as const;

/** `http(s)://...` or an inline `data:image/...` URL, without whitespace. */
export const ICON_PATTERN = '^(https?://|data:image/)[^\\t\\n\\f\\r ]+$';
/** An OCI image reference: `lscr.io/linuxserver/firefox:latest`, `registry:5000/app@sha256:...`. */
export const IMAGE_PATTERN = '^[a-zA-Z0-9][a-zA-Z0-9._:/@-]*$';
/** An IANA service name as Kubernetes port names need it: starts with a letter, no `--`, no trailing `-`. */
export const PORT_NAME_PATTERN = '^[a-z](-?[a-z0-9])*$';
/** Environment variable names Kubernetes has always accepted. */
export const ENV_NAME_PATTERN = '^[-._a-zA-Z][-._a-zA-Z0-9]*$';
/** An absolute path other than `/`. */
export const ABSOLUTE_PATH_PATTERN = '^/[^\\n\\r]+$';
/**
 * Volume names the reconciler uses for the volumes it adds itself (the home volume and the
 * memory-backed /dev/shm); a template's volumeMounts may not use them.
 */
export const RESERVED_VOLUME_NAMES = ['home', 'dshm'] as const;
/** A Linux capability name without the CAP_ prefix (`SYS_ADMIN`, `NET_ADMIN`). */
export const CAPABILITY_PATTERN = '^[A-Z_]+$';

const rx = (pattern: string) => new RegExp(pattern);

export const templatePortSchema = z.object({
  name: z.string().max(TEMPLATE_LIMITS.portName).regex(rx(PORT_NAME_PATTERN), {
    error: "must be an IANA service name: lower-case letters, digits and single '-', starting with a letter",
  }),
  containerPort: z.int().min(1).max(65535),
  protocol: z.enum(PORT_PROTOCOLS).default(TEMPLATE_DEFAULTS.portProtocol),
});
export type TemplatePort = z.output<typeof templatePortSchema>;

export const envVarSchema = z.object({
  name: z.string().min(1).max(TEMPLATE_LIMITS.envName).regex(rx(ENV_NAME_PATTERN)),
  value: z.string().max(TEMPLATE_LIMITS.envValue).optional(),
});
export type EnvVar = z.output<typeof envVarSchema>;

export const volumeMountSchema = z.object({
  name: z
    .string()
    .max(63)
    .regex(rx(DNS1123_LABEL_PATTERN))
    .refine((name) => !(RESERVED_VOLUME_NAMES as readonly string[]).includes(name), {
      error: `must not be ${RESERVED_VOLUME_NAMES.join(' or ')}: StreamSpace uses those names for its own volumes`,
    }),
  mountPath: z.string().max(TEMPLATE_LIMITS.path).regex(rx(ABSOLUTE_PATH_PATTERN)),
  readOnly: z.boolean().optional(),
  sizeLimit: quantitySchema.optional(),
});
export type VolumeMount = z.output<typeof volumeMountSchema>;

export const vncSchema = z.object({
  enabled: z.boolean().default(TEMPLATE_DEFAULTS.vnc.enabled),
  port: z.int().min(1).max(65535),
  protocol: z.enum(VNC_PROTOCOLS).default(TEMPLATE_DEFAULTS.vnc.protocol),
  encryption: z.boolean().default(TEMPLATE_DEFAULTS.vnc.encryption),
});
export type VncEndpoint = z.output<typeof vncSchema>;

/** How the platform learns that the desktop is in use (docs/idle-reaper.md, "The activity agent"). */
export const activitySchema = z.object({
  /** Run the activity agent beside the desktop; unset: when the template has a VNC endpoint. */
  agent: z.boolean().optional(),
});

export const templateSpecSchema = z
  .object({
    displayName: z.string().min(1).max(TEMPLATE_LIMITS.displayName),
    description: z.string().max(TEMPLATE_LIMITS.description).optional(),
    category: z.string().min(1).max(TEMPLATE_LIMITS.category).optional(),
    icon: z.string().max(TEMPLATE_LIMITS.icon).regex(rx(ICON_PATTERN)).optional(),
    baseImage: z.string().min(1).max(TEMPLATE_LIMITS.baseImage).regex(rx(IMAGE_PATTERN)),
    defaultResources: resourceRequirementsSchema.optional(),
    ports: z
      .array(templatePortSchema)
      .max(TEMPLATE_LIMITS.ports)
      .superRefine((ports, ctx) => {
        duplicateIssues(ports, (p) => ({ containerPort: p.containerPort, protocol: p.protocol }), ctx);
        if (new Set(ports.map((p) => p.name)).size !== ports.length) {
          ctx.addIssue({ code: 'custom', message: 'port names must be unique' });
        }
      })
      .optional(),
    env: z
      .array(envVarSchema)
      .max(TEMPLATE_LIMITS.env)
      .superRefine((env, ctx) => duplicateIssues(env, (e) => e.name, ctx))
      .optional(),
    volumeMounts: z
      .array(volumeMountSchema)
      .max(TEMPLATE_LIMITS.volumeMounts)
      .superRefine((mounts, ctx) => {
        duplicateIssues(mounts, (m) => m.name, ctx);
        if (new Set(mounts.map((m) => m.mountPath)).size !== mounts.length) {
          ctx.addIssue({ code: 'custom', message: 'mountPath values must be unique' });
        }
      })
      .optional(),
    vnc: vncSchema,
    activity: activitySchema.optional(),
    capabilities: z
      .array(
        z.string().max(TEMPLATE_LIMITS.capability).regex(rx(CAPABILITY_PATTERN), {
          error: 'must be a capability name such as SYS_ADMIN (no CAP_ prefix)',
        }),
      )
      .max(TEMPLATE_LIMITS.capabilities)
      .superRefine((caps, ctx) => duplicateIssues(caps, (c) => c, ctx))
      .optional(),
    tags: z
      .array(z.string().max(TEMPLATE_LIMITS.tag).regex(rx(DNS1123_LABEL_PATTERN)))
      .max(TEMPLATE_LIMITS.tags)
      .superRefine((tags, ctx) => duplicateIssues(tags, (t) => t, ctx))
      .optional(),
    homePath: z
      .string()
      .max(TEMPLATE_LIMITS.path)
      .regex(rx(ABSOLUTE_PATH_PATTERN))
      .default(TEMPLATE_DEFAULTS.homePath),
    shmSize: quantitySchema
      .refine((q) => !String(q).startsWith('-'), { error: 'must not be negative' })
      .optional(),
  })
  .superRefine((spec, ctx) => {
    const ports = spec.ports ?? [];
    // CEL: vnc.port must be a TCP port of spec.ports (unless ports is empty: then only the VNC port is exposed)
    if (
      spec.vnc.enabled &&
      ports.length > 0 &&
      !ports.some((p) => p.containerPort === spec.vnc.port && p.protocol === 'TCP')
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['vnc', 'port'],
        message:
          'vnc.port must be the containerPort of a TCP entry in spec.ports (or leave spec.ports empty)',
      });
    }
    // CEL: a template without a VNC endpoint must expose something
    if (!spec.vnc.enabled && ports.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['ports'],
        message:
          'a template with vnc.enabled=false must list at least one port (its first port serves the session)',
      });
    }
    // CEL: homePath is mounted by StreamSpace itself
    if ((spec.volumeMounts ?? []).some((m) => m.mountPath === spec.homePath)) {
      ctx.addIssue({
        code: 'custom',
        path: ['volumeMounts'],
        message: 'a volumeMount must not use homePath, where StreamSpace mounts the home volume',
      });
    }
  });
export type TemplateSpec = z.output<typeof templateSpecSchema>;
export type TemplateSpecInput = z.input<typeof templateSpecSchema>;

export const templateStatusSchema = z.object({
  valid: z.boolean().optional(),
  conditions: conditionsSchema.optional(),
  observedGeneration: z.int().min(0).optional(),
});
export type TemplateStatus = z.output<typeof templateStatusSchema>;

/** metadata of a Template: its name must be a DNS-1123 subdomain ≤ 63 characters (the CRD's CEL rule). */
export const templateMetadataSchema = objectMetaSchema.superRefine((meta, ctx) => {
  if (meta.name === undefined) {
    if (meta.generateName === undefined)
      ctx.addIssue({ code: 'custom', path: ['name'], message: 'name is required' });
    return;
  }
  if (meta.name.length > TEMPLATE_NAME_MAX_LENGTH) {
    ctx.addIssue({
      code: 'custom',
      path: ['name'],
      message: `a Template name must be at most ${TEMPLATE_NAME_MAX_LENGTH} characters, so it can be used as a label value`,
    });
  }
  if (!isDns1123Subdomain(meta.name)) {
    ctx.addIssue({
      code: 'custom',
      path: ['name'],
      message:
        "a Template name must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
    });
  }
});

export const templateSchema = z.object({
  apiVersion: z.literal(API_GROUP_VERSION),
  kind: z.literal(TEMPLATE_KIND),
  metadata: templateMetadataSchema,
  spec: templateSpecSchema,
  status: templateStatusSchema.optional(),
});
export type Template = z.output<typeof templateSchema>;
export type TemplateInput = z.input<typeof templateSchema>;

/** Validates a whole Template object and applies the defaults; issues name the field (`spec.vnc.port`). */
export function validateTemplate(obj: unknown): ValidationResult<Template> {
  return validateWith(templateSchema, obj);
}

export function validateTemplateSpec(spec: unknown): ValidationResult<TemplateSpec> {
  return validateWith(templateSpecSchema, spec);
}
