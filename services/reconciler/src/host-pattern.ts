import { isDns1123Label } from '@streamspace/shared';

/**
 * The rules a session host pattern (INGRESS_HOST_PATTERN, the chart's ingress.hostPattern) must
 * keep so that every Session gets a host no other Session can get:
 * - `{session}` and `{namespace}` each appear once, each as a whole DNS label (between dots). A
 *   Session name and a namespace name are DNS labels themselves, so the host then spells out both
 *   unambiguously; `{session}-{namespace}` would not (`a-b` in `c` and `a` in `b-c` both give `a-b-c`).
 * - `{namespace}` may be left out only when the platform serves exactly one namespace: otherwise a
 *   user of one namespace could take a session name first and receive what the owner of the same
 *   name in another namespace types.
 * - `{domain}` appears at most once, as whole labels; every other label is a literal DNS label.
 */

export const DEFAULT_HOST_PATTERN = '{session}.{namespace}.{domain}';

const PLACEHOLDERS = ['{session}', '{namespace}', '{domain}'] as const;

/** Why the pattern cannot be used, or undefined when it can. `singleNamespace`: the platform serves exactly one namespace. */
export function hostPatternProblem(pattern: string, singleNamespace: boolean): string | undefined {
  const labels = pattern.split('.');
  const count = (placeholder: string) => pattern.split(placeholder).length - 1;
  for (const placeholder of PLACEHOLDERS) {
    if (count(placeholder) > 1) return `${placeholder} may appear only once`;
    if (count(placeholder) === 1 && !labels.includes(placeholder))
      return `${placeholder} must be a whole DNS label, between dots (e.g. ${DEFAULT_HOST_PATTERN}); otherwise two different sessions can get the same host (a-b in namespace c and a in namespace b-c both give a-b-c)`;
  }
  if (count('{session}') === 0)
    return `must contain {session} as a whole DNS label (e.g. ${DEFAULT_HOST_PATTERN})`;
  if (count('{namespace}') === 0 && !singleNamespace)
    return `must contain {namespace} as a whole DNS label (e.g. ${DEFAULT_HOST_PATTERN}) unless StreamSpace serves exactly one namespace (WATCH_NAMESPACE with one name): otherwise a Session in one namespace can take the host of a Session of the same name in another`;
  for (const label of labels) {
    if ((PLACEHOLDERS as readonly string[]).includes(label)) continue;
    if (label.includes('{') || label.includes('}'))
      return `"${label}" holds an unknown placeholder: only {session}, {namespace} and {domain} are replaced`;
    if (!isDns1123Label(label))
      return `"${label}" is not a DNS label (lower-case letters, digits and '-', at most 63 characters, no empty labels)`;
  }
  return undefined;
}
