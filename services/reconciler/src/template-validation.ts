import { validateTemplate } from '@streamspace/shared';
import { type Condition, setCondition } from './conditions.js';
import type { StoredTemplate as Template } from './stored-objects.js';

/**
 * What is wrong with a Template, in words a person can act on. The API server already enforced
 * the CRD schema, so this finds what only the controller can judge, and also guards against
 * objects stored before a stricter schema was installed.
 */
export function templateProblems(template: Template): string[] {
  const result = validateTemplate(template);
  return result.ok ? [] : result.issues.map((issue) => `${issue.path}: ${issue.message}`);
}

export interface TemplateStatusPlan {
  valid: boolean;
  conditions: Condition[];
  observedGeneration: number;
}

export function planTemplateStatus(template: Template, now: Date): TemplateStatusPlan {
  const problems = templateProblems(template);
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
