import { MANAGED_SELECTOR, type ObservedKind } from '@streamspace/shared';

/** One kind the watcher lists and watches, and where the API server serves it. */
export interface WatchedResource {
  kind: ObservedKind;
  /** `/api/v1` or `/apis/<group>/<version>`. */
  apiPath: string;
  apiVersion: string;
  /** The object kind, filled into list items (the API server leaves it out of them). */
  objectKind: string;
  plural: string;
  labelSelector?: string;
}

export const API_GROUP = 'stream.streamspace.io';
export const API_VERSION = 'v1alpha1';

export const WATCHED_RESOURCES: readonly WatchedResource[] = [
  {
    kind: 'session',
    apiPath: `/apis/${API_GROUP}/${API_VERSION}`,
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    objectKind: 'Session',
    plural: 'sessions',
  },
  {
    kind: 'template',
    apiPath: `/apis/${API_GROUP}/${API_VERSION}`,
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    objectKind: 'Template',
    plural: 'templates',
  },
  // Only what the platform created: a cluster's other Deployments and Pods are none of our business.
  {
    kind: 'deployment',
    apiPath: '/apis/apps/v1',
    apiVersion: 'apps/v1',
    objectKind: 'Deployment',
    plural: 'deployments',
    labelSelector: MANAGED_SELECTOR,
  },
  {
    kind: 'pod',
    apiPath: '/api/v1',
    apiVersion: 'v1',
    objectKind: 'Pod',
    plural: 'pods',
    labelSelector: MANAGED_SELECTOR,
  },
];

/** The collection URL path, across all namespaces or in one. */
export function collectionPath(resource: WatchedResource, namespace?: string): string {
  const scope = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${resource.apiPath}${scope}/${resource.plural}`;
}
