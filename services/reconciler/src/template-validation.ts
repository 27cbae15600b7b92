import { validateTemplate } from '@streamspace/shared';
import { type Condition, setCondition } from './conditions.js';
import type { StoredTemplate as Template } from './stored-objects.js';

/**
 * What is wrong with a Template, in words a person can act on. The API server already enforced
 * the CRD schema, so this finds what only the controller can judge, and also guards against
 * objects stored before a stricter schema was installed.
 */
export function templateProblems(template: Template, allowedCapabilities?: readonly string[]): string[] {
  return [...schemaProblems(template), ...capabilityProblems(template, allowedCapabilities)];
}

/**
 * The schema's verdict on each Template version (uid + resourceVersion: one content), kept for the
 * next reconcile: every Session reconcile checks its Template, and the zod walk was about a third
 * of planning one (measured with --cpu-prof over 30,000 plans). A handful of Templates serve all
 * Sessions, so the bound is only against a churn of Template edits.
 */
const verdicts = new Map<string, readonly string[]>();
const MAX_VERDICTS = 256;

function schemaProblems(template: Template): readonly string[] {
  const { uid, resourceVersion } = template.metadata;
  const key = uid && resourceVersion ? `${uid}/${resourceVersion}` : undefined;
  const known = key === undefined ? undefined : verdicts.get(key);
  if (known) return known;
  const result = validateTemplate(template);
  const problems = result.ok ? [] : result.issues.map((issue) => `${issue.path}: ${issue.message}`);
  if (key !== undefined) {
    if (verdicts.size >= MAX_VERDICTS) verdicts.clear();
    verdicts.set(key, problems);
  }
  return problems;
}

/**
 * Capabilities beyond the platform owner's allow-list: a Template decides them for every desktop
 * started from it, so asking for one not on the list makes the Template unusable, and the message
 * names the setting that would allow it.
 */
export function capabilityProblems(template: Template, allowed: readonly string[] | undefined): string[] {
  if (allowed === undefined) return [];
  const permitted = new Set(allowed);
  return (template.spec.capabilities ?? [])
    .filter((capability) => !permitted.has(capability))
    .map(
      (capability) =>
        `spec.capabilities: ${capability} is not allowed on this platform (allowed: ${allowed.length > 0 ? allowed.join(', ') : 'none'}); remove it from the template, or have the platform owner add it to the chart value desktops.allowedCapabilities (DESKTOP_ALLOWED_CAPABILITIES of the reconciler)`,
    );
}

export interface TemplateStatusPlan {
  valid: boolean;
  conditions: Condition[];
  observedGeneration: number;
}

export function planTemplateStatus(
  template: Template,
  now: Date,
  allowedCapabilities?: readonly string[],
): TemplateStatusPlan {
  const problems = templateProblems(template, allowedCapabilities);
  const generation = template.metadata.generation ?? 0;
  const previous = (template.status?.conditions as Condition[] | undefined) ?? [];
  const conditions = setCondition(
    previous,
    problems.length === 0
      ? {
          type: 'Valid',
          status: 'True',
          reason: 'Valid',
          message: 'The template can be used by sessions',
          observedGeneration: generation,
        }
      : {
          type: 'Valid',
          status: 'False',
          reason: 'Invalid',
          message: problems.join('; '),
          observedGeneration: generation,
        },
    now,
  );
  return { valid: problems.length === 0, conditions, observedGeneration: generation };
}
