import { z } from 'zod';

/**
 * Pieces shared by the Session and Template schemas: API coordinates, Kubernetes quantities and
 * ResourceRequirements, metav1.Condition, and the conversion of zod issues to `{path, message}`
 * with Kubernetes-style field paths (`spec.ports[1].containerPort`).
 *
 * Every constraint here is mirrored by the CRDs in crds/ (same patterns, bounds and CEL rules);
 * crd-agreement.test.ts and api-corpus.test.ts keep them in step.
 */

export const API_GROUP = 'stream.streamspace.io';
export const API_VERSION = 'v1alpha1';
export const API_GROUP_VERSION = `${API_GROUP}/${API_VERSION}` as const;

/** Kubernetes' own quantity pattern (k8s.io/apimachinery resource.Quantity, as controller-gen emits it). */
export const QUANTITY_PATTERN =
  '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';
/** CRD bound on a quantity string (keeps CEL cost estimates small). */
export const QUANTITY_MAX_LENGTH = 64;
/** CRD bound on the number of entries in a requests/limits map. */
export const RESOURCE_LIST_MAX_PROPERTIES = 16;
/** CRD bound on status.conditions. */
export const CONDITIONS_MAX_ITEMS = 32;

const quantityRegex = new RegExp(QUANTITY_PATTERN);

/** A quantity as the API server accepts it: an integer, or a string such as `500m`, `2Gi`, `1.5`. */
export const quantitySchema = z.union([
  z.int(),
  z
    .string()
    .max(QUANTITY_MAX_LENGTH)
    .regex(quantityRegex, { error: 'must be a Kubernetes quantity such as 500m, 2, 1.5, 512Mi or 2Gi' }),
]);
export type Quantity = z.infer<typeof quantitySchema>;

// ---- exact quantity comparison (the semantics of resource.Quantity.Cmp, used by the CEL rule) ----

interface Exact {
  /** value = sign * unscaled * 10^exp10 */
  negative: boolean;
  unscaled: bigint;
  exp10: number;
}

const BINARY_SHIFT: Record<string, bigint> = { Ki: 10n, Mi: 20n, Gi: 30n, Ti: 40n, Pi: 50n, Ei: 60n };
const DECIMAL_EXP: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  '': 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};
const MAX_INT64 = 2n ** 63n - 1n;
const INT32_MAX = 2 ** 31 - 1;

function digitCount(n: bigint): number {
  return n === 0n ? 0 : n.toString().length;
}

/**
 * Parses a quantity exactly as resource.ParseQuantity does (rounding non-zero magnitudes up to
 * 1n, capping binary-suffixed values at 2^63-1). Returns undefined when ParseQuantity would fail.
 */
export function parseQuantityExact(value: Quantity): Exact | undefined {
  const text = String(value);
  if (!quantityRegex.test(text)) return undefined;
  const m = /^([+-]?)([0-9]*)(?:\.([0-9]*))?(.*)$/.exec(text)!;
  const negative = m[1] === '-';
  const whole = m[2] ?? '';
  const frac = m[3] ?? '';
  const suffix = m[4] ?? '';
  let unscaled = BigInt(`${whole}${frac}` || '0');
  let exp10 = -frac.length;
  let binary = false;
  if (suffix in BINARY_SHIFT) {
    unscaled <<= BINARY_SHIFT[suffix]!;
    binary = true;
  } else if (suffix in DECIMAL_EXP) {
    exp10 += DECIMAL_EXP[suffix]!;
  } else {
    const e = Number(suffix.slice(1));
    if (!Number.isSafeInteger(e) || Math.abs(e) > INT32_MAX) return undefined;
    exp10 += e;
  }
  if (unscaled !== 0n && exp10 < -9) {
    // round the magnitude up to a whole number of nano units
    const shift = -9 - exp10;
    if (digitCount(unscaled) <= shift) unscaled = 1n;
    else {
      const div = 10n ** BigInt(shift);
      unscaled = (unscaled + div - 1n) / div;
    }
    exp10 = -9;
  }
  if (binary && exp10 >= 0 && unscaled * 10n ** BigInt(exp10) > MAX_INT64) {
    unscaled = MAX_INT64;
    exp10 = 0;
  } else if (binary && exp10 < 0 && unscaled > MAX_INT64 * 10n ** BigInt(-exp10)) {
    unscaled = MAX_INT64;
    exp10 = 0;
  }
  return { negative: negative && unscaled !== 0n, unscaled, exp10 };
}

function compareMagnitude(a: Exact, b: Exact): number {
  if (a.unscaled === 0n || b.unscaled === 0n) return Number(a.unscaled !== 0n) - Number(b.unscaled !== 0n);
  const orderA = digitCount(a.unscaled) + a.exp10;
  const orderB = digitCount(b.unscaled) + b.exp10;
  if (orderA !== orderB) return orderA < orderB ? -1 : 1;
  // same order of magnitude: the exponent gap is bounded by the digit counts, so aligning is cheap
  const low = Math.min(a.exp10, b.exp10);
  const x = a.unscaled * 10n ** BigInt(a.exp10 - low);
  const y = b.unscaled * 10n ** BigInt(b.exp10 - low);
  return x === y ? 0 : x < y ? -1 : 1;
}

/** Compares two quantities like Quantity.Cmp: -1, 0 or 1; undefined if either is not a quantity. */
export function compareQuantities(a: Quantity, b: Quantity): number | undefined {
  const x = parseQuantityExact(a);
  const y = parseQuantityExact(b);
  if (!x || !y) return undefined;
  if (x.negative !== y.negative) return x.negative ? -1 : 1;
  const magnitude = compareMagnitude(x, y);
  return x.negative && magnitude !== 0 ? -magnitude : magnitude;
}

// ---- ResourceRequirements ----

/** A map from resource name (`cpu`, `memory`, `nvidia.com/gpu`, ...) to a non-negative quantity. */
export function resourceListSchema() {
  return z.record(z.string(), quantitySchema).superRefine((list, ctx) => {
    const values = Object.values(list);
    if (values.length > RESOURCE_LIST_MAX_PROPERTIES) {
      ctx.addIssue({ code: 'custom', message: `must have at most ${RESOURCE_LIST_MAX_PROPERTIES} entries` });
    }
    if (values.some((q) => String(q).startsWith('-'))) {
      ctx.addIssue({ code: 'custom', message: 'quantities must not be negative' });
    }
  });
}
export type ResourceList = Record<string, Quantity>;

/** core/v1 ResourceRequirements (requests and limits; `claims` is not supported). */
export const resourceRequirementsSchema = z
  .object({
    requests: resourceListSchema().optional(),
    limits: resourceListSchema().optional(),
  })
  .superRefine((r, ctx) => {
    if (!r.requests || !r.limits) return;
    for (const [name, request] of Object.entries(r.requests)) {
      const limit = r.limits[name];
      if (limit === undefined) continue;
      const cmp = compareQuantities(request, limit);
      if (cmp !== undefined && cmp > 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['requests'],
          message: `the ${name} request (${request}) must not exceed its limit (${limit})`,
        });
      }
    }
  });
export type ResourceRequirements = z.infer<typeof resourceRequirementsSchema>;

// ---- metav1.Condition ----

export const CONDITION_TYPE_PATTERN =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$';
export const CONDITION_REASON_PATTERN = '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$';

/** RFC 3339 timestamp as Kubernetes writes it (`2025-01-31T10:00:00Z`, offsets and fractions allowed). */
export const timestampSchema = z.iso.datetime({ offset: true });

/** metav1.Condition, field for field, with the same bounds as the upstream OpenAPI schema. */
export const conditionSchema = z.object({
  type: z.string().max(316).regex(new RegExp(CONDITION_TYPE_PATTERN)),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.int().min(0).optional(),
  lastTransitionTime: timestampSchema,
  reason: z.string().min(1).max(1024).regex(new RegExp(CONDITION_REASON_PATTERN)),
  message: z.string().max(32768),
});
export type Condition = z.infer<typeof conditionSchema>;

/** status.conditions: at most CONDITIONS_MAX_ITEMS, one per type (a list-map keyed by `type`). */
export const conditionsSchema = z
  .array(conditionSchema)
  .max(CONDITIONS_MAX_ITEMS)
  .superRefine((list, ctx) => duplicateIssues(list, (c) => c.type, ctx));

// ---- object metadata (what the schemas look at; the rest passes through) ----

export const objectMetaSchema = z.looseObject({
  name: z.string().optional(),
  generateName: z.string().optional(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.int().optional(),
  creationTimestamp: z.string().optional(),
  deletionTimestamp: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ObjectMeta = z.infer<typeof objectMetaSchema>;

// ---- helpers ----

/** Reports `Duplicate value` at the index of every repeated key, as the API server does for list-maps and sets. */
export function duplicateIssues<T>(
  list: readonly T[],
  key: (item: T) => unknown,
  ctx: z.RefinementCtx,
): void {
  const seen = new Set<string>();
  list.forEach((item, index) => {
    const k = JSON.stringify(key(item));
    if (seen.has(k)) ctx.addIssue({ code: 'custom', path: [index], message: `duplicate value ${k}` });
    seen.add(k);
  });
}

/** One validation problem, with a Kubernetes-style field path such as `spec.ports[1].containerPort`. */
export interface ValidationIssue {
  path: string;
  message: string;
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; issues: ValidationIssue[] };

/** Formats a zod path the way the API server names fields: `spec.ports[1].containerPort`. */
export function formatFieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out ? `.${String(segment)}` : String(segment);
  }
  return out;
}

export function toValidationIssues(error: z.ZodError): ValidationIssue[] {
  return error.issues.map((issue) => ({ path: formatFieldPath(issue.path), message: issue.message }));
}

/**
 * Drops object fields whose value is null, recursively, as the API server does for fields that
 * are not nullable (then defaults them). Arrays keep their elements.
 */
export function pruneNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(pruneNulls);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => [k, pruneNulls(v)]),
  );
}

/** Parses like the API server: nulls pruned, defaults applied, issues with Kubernetes field paths. */
export function validateWith<T>(schema: z.ZodType<T>, obj: unknown): ValidationResult<T> {
  const result = schema.safeParse(pruneNulls(obj));
  return result.success
    ? { ok: true, value: result.data }
    : { ok: false, issues: toValidationIssues(result.error) };
}
