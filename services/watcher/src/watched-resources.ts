import { resourcePath, type WatchTarget } from '@streamspace/kube';
import { API_GROUP, API_VERSION, MANAGED_SELECTOR, type ObservedKind } from '@streamspace/shared';

/** One kind the watcher lists and watches, and where the API server serves it. */
export interface WatchedResource {
  kind: ObservedKind;
  /** The API group; the core group has none. */
  group?: string;
  version: string;
  apiVersion: string;
  /** The object kind, filled into list items (the API server leaves it out of them). */
  objectKind: string;
  plural: string;
  labelSelector?: string;
}

export const WATCHED_RESOURCES: readonly WatchedResource[] = [
  {
    kind: 'session',
    group: API_GROUP,
    version: API_VERSION,
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    objectKind: 'Session',
    plural: 'sessions',
  },
  {
    kind: 'template',
    group: API_GROUP,
    version: API_VERSION,
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    objectKind: 'Template',
    plural: 'templates',
  },
  // Only what the platform created: a cluster's other Deployments and Pods are none of our business.
  {
    kind: 'deployment',
    group: 'apps',
    version: 'v1',
    apiVersion: 'apps/v1',
    objectKind: 'Deployment',
    plural: 'deployments',
    labelSelector: MANAGED_SELECTOR,
  },
  {
    kind: 'pod',
    version: 'v1',
    apiVersion: 'v1',
    objectKind: 'Pod',
    plural: 'pods',
    labelSelector: MANAGED_SELECTOR,
  },
];

/** The collection an informer lists and watches, across all namespaces or in one. */
export function watchTarget(resource: WatchedResource, namespace?: string): WatchTarget {
  return {
    path: resourcePath({ ...resource, ...(namespace ? { namespace } : {}) }),
    plural: resource.plural,
    apiVersion: resource.apiVersion,
    objectKind: resource.objectKind,
    ...(resource.labelSelector ? { labelSelector: resource.labelSelector } : {}),
    custom: resource.group === API_GROUP,
  };
}
