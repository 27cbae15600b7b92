import { sleep } from '@streamspace/shared';
import type { KubeClient } from './kube-client.js';

/**
 * Asks the API server for /version every `intervalMs` until `signal` aborts and tells `report`
 * whether it answered, so a service that writes to the API server can say in /readyz which
 * dependency is missing. /version needs no RBAC: a namespace-scoped service account can ask too.
 * Never rejects.
 */
export async function followApiReachability(
  kube: Pick<KubeClient, 'request'>,
  report: (up: boolean, reason: string) => void,
  signal: AbortSignal,
  intervalMs = 5_000,
): Promise<void> {
  while (!signal.aborted) {
    try {
      await kube.request('GET', '/version');
      report(true, 'ok');
    } catch (error) {
      if (!signal.aborted) report(false, `API server unreachable: ${(error as Error).message}`);
    }
    await sleep(intervalMs, signal);
  }
}
