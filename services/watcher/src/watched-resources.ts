import { HOME_CLAIM_PREFIX, MANAGED_SELECTOR, SESSION_CHILD_PREFIX, type StateKind } from '@streamspace/shared';

/** One kind the watcher lists and watches, and where the API server serves it. */
export interface WatchedResource {
  kind: StateKind;
  /** `/api/v1` or `/apis/<group>/<version>`. */
  apiPath: string;
  apiVersion: string;
  /** The object kind, filled into list items (the API server leaves it out of them). */
  objectKind: string;
  plural: string;
  labelSelector?: string;
  /**
   * Keep only objects whose name starts with this (names never change, so an object is kept or
   * dropped for its whole life). The kinds a Session's children are made of are watched without
   * the managed-by selector, so the shared state also holds a FOREIGN object under a child's name
   * (child-ownership.ts refuses to apply over it); the prefix keeps everything else of the
   * cluster out of the watcher's cache and the shared state.
   */
  namePrefix?: string;
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
  // Children by name (see namePrefix): ours and whatever occupies one of our names.
  {
    kind: 'deployment',
    apiPath: '/apis/apps/v1',
    apiVersion: 'apps/v1',
    objectKind: 'Deployment',
    plural: 'deployments',
    namePrefix: SESSION_CHILD_PREFIX,
  },
  // Only what the platform created: a Session's pods are found by its label.
  {
    kind: 'pod',
    apiPath: '/api/v1',
    apiVersion: 'v1',
    objectKind: 'Pod',
    plural: 'pods',
    labelSelector: MANAGED_SELECTOR,
  },
  {
    kind: 'service',
    apiPath: '/api/v1',
    apiVersion: 'v1',
    objectKind: 'Service',
    plural: 'services',
    namePrefix: SESSION_CHILD_PREFIX,
  },
  {
    kind: 'ingress',
    apiPath: '/apis/networking.k8s.io/v1',
    apiVersion: 'networking.k8s.io/v1',
    objectKind: 'Ingress',
    plural: 'ingresses',
    namePrefix: SESSION_CHILD_PREFIX,
  },
  {
    kind: 'networkpolicy',
    apiPath: '/apis/networking.k8s.io/v1',
    apiVersion: 'networking.k8s.io/v1',
    objectKind: 'NetworkPolicy',
    plural: 'networkpolicies',
    namePrefix: SESSION_CHILD_PREFIX,
  },
  // Home claims outlive Sessions and are found by name (the user's), not by a Session's label.
  {
    kind: 'pvc',
    apiPath: '/api/v1',
    apiVersion: 'v1',
    objectKind: 'PersistentVolumeClaim',
    plural: 'persistentvolumeclaims',
    namePrefix: HOME_CLAIM_PREFIX,
  },
];

/** The collection URL path, across all namespaces or in one. */
export function collectionPath(resource: WatchedResource, namespace?: string): string {
  const scope = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${resource.apiPath}${scope}/${resource.plural}`;
}
