import { z } from 'zod';

/**
 * WATCH_NAMESPACE, as every service reads it: one namespace (`desktops`), several separated by
 * commas (`team-a,team-b`: the chart's rbac.scope=namespaces, where the services hold a Role in
 * each of those namespaces and nothing cluster-wide, so they must list and watch each one by
 * itself), or unset for every namespace. Parsed to the sorted, de-duplicated list of names, or
 * undefined for all.
 */
export const watchNamespacesSchema = z
  .string()
  .transform((text, ctx) => {
    const names = [
      ...new Set(
        text
          .split(',')
          .map((n) => n.trim())
          .filter(Boolean),
      ),
    ].sort();
    for (const name of names) {
      if (name.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name))
        ctx.addIssue({
          code: 'custom',
          message: `must be a namespace name or a comma-separated list of them (lower-case letters, digits and -, at most 63 characters each): '${name}' is not`,
        });
    }
    if (names.length === 0)
      ctx.addIssue({ code: 'custom', message: 'must name at least one namespace (or be unset for all)' });
    return names;
  })
  .optional();

/** For logs: the namespaces served, or '(all)'. */
export function describeNamespaces(namespaces: readonly string[] | undefined): string {
  return namespaces ? namespaces.join(',') : '(all)';
}
