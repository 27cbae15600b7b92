import { KubeApiError } from './kube-error.js';
import type { KubeClient } from './kube-client.js';
import type { ListPage, WatchHandle, WatchTransport } from './informer.js';

/** One collection an informer lists and watches. */
export interface WatchTarget {
  /** The collection's URL path (`/api/v1/namespaces/a/pods`, `/apis/apps/v1/deployments`). */
  path: string;
  /** Plural name, for messages. */
  plural: string;
  /** apiVersion and kind, filled into list items (the API server leaves them out of them). */
  apiVersion: string;
  objectKind: string;
  labelSelector?: string;
  /** A custom resource: a 404 most likely means its CRD is not installed. */
  custom?: boolean;
}

/** What a person should check when the API server refuses a list. */
function hintFor(error: KubeApiError, target: WatchTarget): string {
  if (error.code === 404 && target.custom)
    return ' (is the CustomResourceDefinition installed? kubectl apply -f crds/)';
  if (error.code === 401 || error.code === 403) {
    return ` (these credentials may not list and watch ${target.plural}: check the service's RBAC)`;
  }
  return '';
}

/**
 * Lists and watches a collection as the raw JSON the API server sends: change events must carry
 * one shape whichever path (list or watch) an object came by.
 */
export function kubeWatchTransport(kube: KubeClient, target: WatchTarget): WatchTransport {
  const selector = target.labelSelector ? { labelSelector: target.labelSelector } : {};
  return {
    async list({ limit, continueToken }, onItem): Promise<ListPage> {
      let metadata: { resourceVersion?: string; continue?: string };
      try {
        metadata = await kube.listItems(target.path, { ...selector, limit, continue: continueToken }, (json) => {
          let item: unknown;
          try {
            item = JSON.parse(json);
          } catch {
            // Not JSON: handed on as its text, which the informer reports as malformed.
            onItem(json);
            return;
          }
          onItem(
            item && typeof item === 'object' ? { apiVersion: target.apiVersion, kind: target.objectKind, ...item } : item,
          );
        });
      } catch (error) {
        if (error instanceof KubeApiError) {
          const hint = hintFor(error, target);
          if (hint)
            throw new KubeApiError(
              error.message + hint,
              error.code,
              error.reason,
              error.body,
              error.retryAfterSeconds,
            );
        }
        throw error;
      }
      return {
        resourceVersion: metadata.resourceVersion ?? '',
        ...(metadata.continue ? { continueToken: metadata.continue } : {}),
      };
    },
    async watch(resourceVersion, timeoutSeconds, onEvent, onDone, onAnswered): Promise<WatchHandle> {
      return kube.watch(
        target.path,
        { ...selector, resourceVersion, timeoutSeconds },
        (event) => onEvent(event.type, event.object),
        (error) => onDone(error ?? null),
        onAnswered,
      );
    },
  };
}
