import type { KubeClient } from '@streamspace/kube';
import { Counter, type Registry } from 'prom-client';

/** The HTTP methods a Kubernetes client uses, as the verbs counted (GET covers get and list). */
export const KUBE_REQUEST_VERBS = ['get', 'post', 'patch', 'put', 'delete'] as const;

/** The resource (plural) a request path names: `/api/v1/namespaces/a/events/x` → `events`. */
export function resourceOf(path: string): string {
  const namespaced = /\/namespaces\/[^/]+\/([^/?]+)/.exec(path);
  if (namespaced) return namespaced[1] as string;
  const parts = path.split('?')[0]?.split('/').filter(Boolean) ?? [];
  return parts[parts[0] === 'api' ? 2 : 3] ?? 'unknown';
}

/**
 * Counts every request `kube` makes, by HTTP verb, in streamspace_reconciler_kube_requests_total:
 * the proof that the reconciler reads nothing from the API server (get stays at zero) and how
 * much it writes. Every call of the client goes through `request`, so wrapping it counts them all.
 */
export function countKubeRequests(kube: KubeClient, registry: Registry): KubeClient {
  const requests = new Counter({
    name: 'streamspace_reconciler_kube_requests_total',
    help: "Requests the reconciler sent to the API server, by verb and resource (get covers get and list; patch is server-side apply, or an Event's count). Reads come from the shared state, so get should stay at zero but for Events being aggregated.",
    labelNames: ['verb', 'resource'],
    registers: [registry],
  });
  for (const verb of KUBE_REQUEST_VERBS) requests.labels(verb, 'sessions').inc(0);
  const request = kube.request.bind(kube);
  kube.request = ((
    method: string,
    ...rest: Parameters<KubeClient['request']> extends [string, ...infer R] ? R : never
  ) => {
    // The readiness probe's GET /version reads no state, so it is not counted as a read.
    if (rest[0] !== '/version') requests.labels(method.toLowerCase(), resourceOf(rest[0])).inc();
    return request(method, ...rest);
  }) as KubeClient['request'];
  return kube;
}
