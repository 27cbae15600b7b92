import { compareQuantities } from '@streamspace/shared';
import type { ResourceCeiling } from './reconciler-settings.js';

type ResourceList = Record<string, string>;

export interface Resources {
  requests?: ResourceList;
  limits?: ResourceList;
}

/** Where each ceiling is set, for messages a person can act on. */
export const CEILING_SETTINGS = {
  requests: 'SESSION_MAX_REQUESTS (chart value sessions.limits.maxRequests)',
  limits: 'SESSION_MAX_LIMITS (chart value sessions.limits.maxLimits)',
} as const;

export interface CeilingResult {
  /** The resources to run with: limits the Session leaves out are set to the ceiling. */
  resources: Resources;
  /** Why the Session may not start as asked; empty when it may. */
  problems: string[];
}

/**
 * Holds a Session's resources (its own merged with its Template's defaults) to the ceiling the
 * platform owner set. A request or limit above the ceiling is refused rather than lowered: a
 * desktop quietly given less memory than it asked for fails in ways nobody can explain, while a
 * refusal names the number to change. A limit left out is set to the ceiling, so a Session
 * cannot escape the ceiling by setting no limit at all (and its request, if left out too, to 0).
 * Pure.
 */
export function applyResourceCeiling(
  resources: Resources,
  ceiling: ResourceCeiling | undefined,
  sourceOf: (kind: 'requests' | 'limits', name: string) => string = () => 'the Session',
): CeilingResult {
  if (!ceiling) return { resources, problems: [] };
  const problems: string[] = [];
  const requests = resources.requests;
  const limits: ResourceList = { ...(resources.limits ?? {}) };
  const defaulted = new Set<string>();
  for (const [name, max] of Object.entries(ceiling.limits)) {
    if (limits[name] === undefined) {
      limits[name] = max;
      defaulted.add(name);
    }
  }
  for (const kind of ['requests', 'limits'] as const) {
    const asked = kind === 'requests' ? (requests ?? {}) : limits;
    for (const [name, value] of Object.entries(asked)) {
      const max = ceiling[kind][name];
      if (max === undefined || (kind === 'limits' && defaulted.has(name))) continue;
      if ((compareQuantities(value, max) ?? 1) > 0)
        problems.push(
          `${kind}.${name} ${value} (from ${sourceOf(kind, name)}) is above the ceiling ${max} set by ${CEILING_SETTINGS[kind]}`,
        );
    }
  }
  // Kubernetes copies a limit into a request that is not there: a ceiling limit alone would make
  // every desktop without requests reserve the whole ceiling (cpu=8, memory=16Gi by default: four
  // desktops to a 32-CPU node). Such a desktop asked to reserve nothing, so its request is an
  // explicit 0 — what it reserved before there was a ceiling — and only its use is bounded.
  const filled: ResourceList = { ...(requests ?? {}) };
  for (const name of defaulted) {
    const request = requests?.[name];
    if (request === undefined) filled[name] = '0';
    else if ((compareQuantities(request, limits[name] as string) ?? 1) > 0)
      problems.push(
        `requests.${name} ${request} (from ${sourceOf('requests', name)}) is above the limit ${limits[name]} it gets from ${CEILING_SETTINGS.limits}, as it sets no ${name} limit`,
      );
  }
  const result: Resources = {
    ...(Object.keys(filled).length > 0 ? { requests: filled } : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
  };
  return { resources: result, problems };
}

/** `requests.<name> <q> is above limits.<name> <q>` for every resource whose request exceeds its limit. */
export function requestsAboveLimits(resources: Resources): string[] {
  const problems: string[] = [];
  for (const [name, request] of Object.entries(resources.requests ?? {})) {
    const limit = resources.limits?.[name];
    if (limit !== undefined && (compareQuantities(request, limit) ?? 0) > 0)
      problems.push(`requests.${name} ${request} is above limits.${name} ${limit}`);
  }
  return problems;
}
