/**
 * Does what exists already say everything we would apply? Server-side apply of an unchanged
 * object is a no-op on the server but still a round trip; at a thousand sessions those round
 * trips are most of a reconcile. The check is conservative: anything it cannot prove equal
 * (a value the API server normalised, a field set by hand) counts as different, and then the
 * object is applied as usual — so drift is still put back.
 */
export function coversDesired(desired: unknown, observed: unknown): boolean {
  if (desired === undefined) return true;
  // The API server omits empty strings and empty lists (`omitempty`): an env var's `value: ''`,
  // a pod without volumes. Without this an unchanged Deployment was applied on every reconcile.
  if (observed === undefined && (desired === '' || (Array.isArray(desired) && desired.length === 0)))
    return true;
  if (desired === null || typeof desired !== 'object') return desired === observed;
  if (Array.isArray(desired)) {
    if (!Array.isArray(observed) || observed.length !== desired.length) return false;
    return desired.every((item, i) => coversDesired(item, observed[i]));
  }
  const entries = Object.entries(desired as Record<string, unknown>);
  // The API server drops empty objects such as `capabilities: {}`.
  if (entries.length === 0)
    return observed === undefined || (typeof observed === 'object' && observed !== null);
  if (observed === null || typeof observed !== 'object' || Array.isArray(observed)) return false;
  const actual = observed as Record<string, unknown>;
  return entries.every(([key, value]) => coversDesired(value, actual[key]));
}

/**
 * The replicas to set when a planned Deployment differs from the stored one in `spec.replicas`
 * alone (a hibernate or a wake of a desktop whose pod template is unchanged); undefined when
 * anything else differs too (or nothing does), and the whole object is applied as usual. Setting
 * replicas by a merge patch instead of re-applying the whole Deployment cost kube-apiserver less
 * CPU per write (BENCHMARKS.md, P0c), and every other field is already as applied.
 */
export function replicasOnlyChange(desired: unknown, observed: unknown): number | undefined {
  const wanted = (desired as { spec?: { replicas?: unknown } } | undefined)?.spec?.replicas;
  const spec = (observed as { spec?: Record<string, unknown> } | undefined)?.spec;
  if (typeof wanted !== 'number' || !spec || spec.replicas === wanted) return undefined;
  const rest = {
    ...(desired as { spec: object }),
    spec: { ...(desired as { spec: object }).spec, replicas: spec.replicas },
  };
  return coversDesired(rest, observed) ? wanted : undefined;
}
