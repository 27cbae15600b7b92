import type {
  V1Deployment,
  V1Ingress,
  V1NetworkPolicy,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Service,
} from '@kubernetes/client-node';
import type { SharedStateReader } from '@streamspace/shared';
import type { OwnWrites, Versioned } from './own-writes.js';
import type { ObservedSession } from './session-plan.js';
import type { StoredSession as Session, StoredTemplate as Template } from './stored-objects.js';

/**
 * What a reconcile reads, from the shared state the watcher keeps (shared-state.ts), never from
 * the API server: the watcher stored each change before it published the work item that woke us,
 * so this is at least as new as the trigger. It may be newer, or briefly behind our own last
 * writes: planning from it and applying server-side is safe either way (docs/lifecycle.md).
 */
export class StateReads {
  constructor(
    private readonly state: SharedStateReader,
    /** Our own last writes, newer than the state for a moment after each (own-writes.ts). */
    private readonly own?: OwnWrites,
  ) {}

  private async get<T extends object>(
    kind: Parameters<SharedStateReader['get']>[0],
    namespace: string,
    name: string,
  ): Promise<T | undefined> {
    const stored = await this.state.get<T>(kind, namespace, name);
    return this.own
      ? (this.own.newest(kind, namespace, name, stored as Versioned | undefined) as T | undefined)
      : stored;
  }

  readSession(namespace: string, name: string): Promise<Session | undefined> {
    return this.get<Session>('session', namespace, name);
  }

  readTemplate(namespace: string, name: string): Promise<Template | undefined> {
    return this.get<Template>('template', namespace, name);
  }

  /** `homeClaims`: the current and the legacy name of the user's home claim (both read with persistentHome). */
  async observe(
    session: Session,
    childName: string,
    homeClaims: { current: string; legacy: string },
  ): Promise<ObservedSession> {
    const namespace = session.metadata.namespace;
    const claim = (name: string) =>
      session.spec.persistentHome ? this.get<V1PersistentVolumeClaim>('pvc', namespace, name) : undefined;
    const [template, deployment, service, ingress, networkPolicy, homeClaim, legacyHomeClaim, pods] =
      await Promise.all([
        this.readTemplate(namespace, session.spec.template),
        this.get<V1Deployment>('deployment', namespace, childName),
        this.get<V1Service>('service', namespace, childName),
        this.get<V1Ingress>('ingress', namespace, childName),
        this.get<V1NetworkPolicy>('networkpolicy', namespace, childName),
        claim(homeClaims.current),
        claim(homeClaims.legacy),
        this.state.sessionPods<V1Pod>(namespace, session.metadata.name),
      ]);
    return {
      session,
      template,
      ...(deployment ? { deployment } : {}),
      ...(service ? { service } : {}),
      ...(ingress ? { ingress } : {}),
      ...(networkPolicy ? { networkPolicy } : {}),
      ...(homeClaim ? { homeClaim } : {}),
      ...(legacyHomeClaim ? { legacyHomeClaim } : {}),
      pods,
    };
  }
}
