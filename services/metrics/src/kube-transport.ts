import type { KubeClient } from '@streamspace/kube';
import { API_GROUP, API_VERSION } from '@streamspace/shared';
import type { ListPage, ListWatchTransport, WatchHandle } from './list-watch.js';

/**
 * Lists and watches one of our custom resources (sessions, templates) across all namespaces or
 * in one. Custom objects come back as plain JSON from both paths, so they parse alike.
 */
export function customObjectTransport(
  kube: KubeClient,
  plural: string,
  namespace?: string,
): ListWatchTransport {
  const ref = { group: API_GROUP, version: API_VERSION, plural, ...(namespace ? { namespace } : {}) };
  return {
    async list({ limit, continueToken }): Promise<ListPage> {
      const body = await kube.list<unknown>(ref, {
        limit,
        ...(continueToken ? { continue: continueToken } : {}),
      });
      return {
        items: Array.isArray(body?.items) ? body.items : [],
        resourceVersion: body?.metadata?.resourceVersion ?? '',
        ...(body?.metadata?.continue ? { continueToken: body.metadata.continue } : {}),
      };
    },
    async watch(resourceVersion, timeoutSeconds, onEvent, onDone): Promise<WatchHandle> {
      return kube.watch(
        ref,
        { resourceVersion, timeoutSeconds },
        (event) => onEvent(event.type, event.object),
        (error) => onDone(error ?? null),
      );
    },
  };
}
