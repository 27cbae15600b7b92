import { resourcePath, type WatchTarget } from '@streamspace/kube';
import {
  API_GROUP,
  API_VERSION,
  HOME_CLAIM_PREFIX,
  MANAGED_SELECTOR,
  SESSION_CHILD_PREFIX,
  type StateKind,
} from '@streamspace/shared';

/** One kind the watcher lists and watches, and where the API server serves it. */
export interface WatchedResource {
  kind: StateKind;
  /** The API group; the core group has none. */
  group?: string;
  version: string;
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
  // Children by name (see namePrefix): ours and whatever occupies one of our names.
  {
    kind: 'deployment',
    group: 'apps',
    version: 'v1',
    apiVersion: 'apps/v1',
    objectKind: 'Deployment',
    plural: 'deployments',
    namePrefix: SESSION_CHILD_PREFIX,
  },
  // Only what the platform created: a Session's pods are found by its label.
  {
    kind: 'pod',
    version: 'v1',
    apiVersion: 'v1',
    objectKind: 'Pod',
    plural: 'pods',
    labelSelector: MANAGED_SELECTOR,
  },
  {
    kind: 'service',
    version: 'v1',
    apiVersion: 'v1',
    objectKind: 'Service',
    plural: 'services',
    namePrefix: SESSION_CHILD_PREFIX,
  },
  {
    kind: 'ingress',
    group: 'networking.k8s.io',
    version: 'v1',
    apiVersion: 'networking.k8s.io/v1',
    objectKind: 'Ingress',
    plural: 'ingresses',
    namePrefix: SESSION_CHILD_PREFIX,
  },
  {
    kind: 'networkpolicy',
    group: 'networking.k8s.io',
    version: 'v1',
    apiVersion: 'networking.k8s.io/v1',
    objectKind: 'NetworkPolicy',
    plural: 'networkpolicies',
    namePrefix: SESSION_CHILD_PREFIX,
  },
  // Home claims outlive Sessions and are found by name (the user's), not by a Session's label.
  {
    kind: 'pvc',
    version: 'v1',
    apiVersion: 'v1',
    objectKind: 'PersistentVolumeClaim',
    plural: 'persistentvolumeclaims',
    namePrefix: HOME_CLAIM_PREFIX,
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
