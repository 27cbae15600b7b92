import { KubeApiError, type KubeClient } from '@streamspace/shared';
import type { ListPage, WatchHandle, WatchTransport } from './resilient-watch.js';
import { collectionPath, type WatchedResource } from './watched-resources.js';

/** An error answer of the API server, with its HTTP status (410 means: relist). */
export class KubeRequestError extends Error {
  override name = 'KubeRequestError';
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}

/**
 * GETs a collection as the raw JSON the API server sends: change events must carry one shape
 * whichever path (list or watch) an object came by.
 */
async function getJson(kube: KubeClient, path: string, query: Record<string, string>): Promise<unknown> {
  try {
    return await kube.request('GET', path, { query });
  } catch (error) {
    if (error instanceof KubeApiError) throw new KubeRequestError(error.message, error.code);
    throw error;
  }
}

/** What a person should check when the API server refuses a list. */
function hintFor(error: unknown, resource: WatchedResource): string {
  if (!(error instanceof KubeRequestError)) return '';
  if (error.statusCode === 404 && resource.apiPath.startsWith('/apis/stream.')) {
    return ' (is the CustomResourceDefinition installed? kubectl apply -f crds/)';
  }
  if (error.statusCode === 401 || error.statusCode === 403) {
    return ` (the watcher's credentials may not list and watch ${resource.plural}: check its RBAC)`;
  }
  return '';
}

/** Lists with `GET` and watches with the client library's Watch (which streams raw JSON too). */
export function kubeWatchTransport(
  kube: KubeClient,
  resource: WatchedResource,
  namespace?: string,
): WatchTransport {
  const path = collectionPath(resource, namespace);
  const selector: Record<string, string> = resource.labelSelector
    ? { labelSelector: resource.labelSelector }
    : {};
  return {
    async list({ limit, continueToken }): Promise<ListPage> {
      const body = (await getJson(kube, path, {
        ...selector,
        limit: String(limit),
        ...(continueToken ? { continue: continueToken } : {}),
      }).catch((error: unknown) => {
        const hint = hintFor(error, resource);
        if (hint && error instanceof KubeRequestError)
          throw new KubeRequestError(error.message + hint, error.statusCode);
        throw error;
      })) as { items?: unknown; metadata?: { resourceVersion?: string; continue?: string } } | null;
      const items = Array.isArray(body?.items) ? body.items : [];
      return {
        items: items.map((item) =>
          item && typeof item === 'object'
            ? { apiVersion: resource.apiVersion, kind: resource.objectKind, ...item }
            : item,
        ),
        resourceVersion: body?.metadata?.resourceVersion ?? '',
        ...(body?.metadata?.continue ? { continueToken: body.metadata.continue } : {}),
      };
    },
    async watch(resourceVersion, timeoutSeconds, onEvent, onDone): Promise<WatchHandle> {
      return kube.watch(
        path,
        { ...selector, resourceVersion, timeoutSeconds },
        (event) => onEvent(event.type, event.object),
        (error) => onDone(error ?? null),
      );
    },
  };
}
