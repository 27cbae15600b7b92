import type * as k8s from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, LABELS, sessionChildName } from '@streamspace/shared';

/**
 * Has every Session converged to the state a test drove it to? Used by the tests that drive many
 * Sessions through faults (chaos, the NATS cluster): each Session exists with the spec.state the
 * driver wrote last, its phase follows it, its status describes its newest generation, and it has
 * exactly the children that state calls for (one of each, or none once terminated) and no
 * children of Sessions the driver never made.
 */

export type DesiredState = 'running' | 'hibernated' | 'terminated';

export type SessionObject = {
  metadata: { name: string; generation?: number; labels?: Record<string, string> };
  spec: { state: DesiredState };
  status?: { phase?: string; observedGeneration?: number };
};

export interface SessionApis {
  custom: k8s.CustomObjectsApi;
  apps: k8s.AppsV1Api;
  core: k8s.CoreV1Api;
  net: k8s.NetworkingV1Api;
}

const plural = 'sessions';

/** What is still wrong, one line each; empty when every Session has converged. */
export async function sessionViolations(
  api: SessionApis,
  namespace: string,
  desired: Map<string, DesiredState>,
): Promise<string[]> {
  const v: string[] = [];
  const [sessions, deployments, services, ingresses] = await Promise.all([
    api.custom.listNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace, plural }),
    api.apps.listNamespacedDeployment({ namespace, labelSelector: `${LABELS.managedBy}=streamspace` }),
    api.core.listNamespacedService({ namespace, labelSelector: `${LABELS.managedBy}=streamspace` }),
    api.net.listNamespacedIngress({ namespace, labelSelector: `${LABELS.managedBy}=streamspace` }),
  ]).catch((e: Error) => {
    v.push(`list: ${e.message}`);
    return [];
  });
  if (!sessions) return v;
  const byName = new Map((sessions as { items: SessionObject[] }).items.map((s) => [s.metadata.name, s]));
  const group = (items: { metadata?: { name?: string; labels?: Record<string, string> } }[]) => {
    const m = new Map<string, string[]>();
    for (const o of items) {
      const key = o.metadata?.labels?.[LABELS.session] ?? '?';
      m.set(key, [...(m.get(key) ?? []), o.metadata?.name ?? '?']);
    }
    return m;
  };
  const deps = group(deployments?.items ?? []);
  const depByName = new Map((deployments?.items ?? []).map((d) => [d.metadata?.name, d]));
  const kinds = {
    Deployment: deps,
    Service: group(services?.items ?? []),
    Ingress: group(ingresses?.items ?? []),
  };
  for (const name of byName.keys()) if (!desired.has(name)) v.push(`${name}: unexpected Session`);
  for (const [name, state] of desired) {
    const s = byName.get(name);
    if (!s) {
      v.push(`${name}: Session lost`);
      continue;
    }
    if (s.spec.state !== state) v.push(`${name}: spec.state ${s.spec.state}, driver wrote ${state}`);
    const phase = { running: 'Running', hibernated: 'Hibernated', terminated: 'Terminated' }[state];
    if (s.status?.phase !== phase) v.push(`${name}: phase ${s.status?.phase}, want ${phase}`);
    if (s.status?.observedGeneration !== s.metadata.generation)
      v.push(`${name}: observedGeneration ${s.status?.observedGeneration} of ${s.metadata.generation}`);
    for (const [kind, m] of Object.entries(kinds)) {
      const children = m.get(name) ?? [];
      const want = state === 'terminated' ? [] : [sessionChildName(name)];
      if (children.join() !== want.join()) v.push(`${name} (${state}): ${kind} ${JSON.stringify(children)}`);
    }
    if (state !== 'terminated') {
      const replicas = depByName.get(sessionChildName(name))?.spec?.replicas;
      const want = state === 'running' ? 1 : 0;
      if (replicas !== undefined && replicas !== want)
        v.push(`${name}: Deployment replicas ${replicas}, want ${want}`);
    }
  }
  for (const m of Object.values(kinds))
    for (const key of m.keys()) if (!desired.has(key)) v.push(`children of unknown session ${key}`);
  return v;
}
