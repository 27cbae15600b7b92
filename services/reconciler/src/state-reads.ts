import type {
  V1Deployment,
  V1Ingress,
  V1NetworkPolicy,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Service,
} from '@kubernetes/client-node';
import type { SharedStateReader, StateRef } from '@streamspace/shared';
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

  /**
   * `homeClaims`: the current and the legacy name of the user's home claim, both read, given for a
   * Session with persistentHome. The Template, the children and the pods are one read of the
   * shared state.
   */
  async observe(
    session: Session,
    childName: string,
    homeClaims?: { current: string; legacy: string },
  ): Promise<ObservedSession> {
    const namespace = session.metadata.namespace;
    const refs: StateRef[] = [
      { kind: 'template', namespace, name: session.spec.template },
      { kind: 'deployment', namespace, name: childName },
      { kind: 'service', namespace, name: childName },
      { kind: 'ingress', namespace, name: childName },
      { kind: 'networkpolicy', namespace, name: childName },
      ...(session.spec.persistentHome && homeClaims
        ? [
            { kind: 'pvc' as const, namespace, name: homeClaims.current },
            { kind: 'pvc' as const, namespace, name: homeClaims.legacy },
          ]
        : []),
    ];
    const { objects, pods } = await this.state.read<Versioned>(refs, {
      namespace,
      session: session.metadata.name,
    });
    const [template, deployment, service, ingress, networkPolicy, homeClaim, legacyHomeClaim] = refs.map(
      (ref, i) => (this.own ? this.own.newest(ref.kind, namespace, ref.name, objects[i]) : objects[i]),
    );
    return {
      session,
      template: template as Template | undefined,
      ...(deployment ? { deployment: deployment as V1Deployment } : {}),
      ...(service ? { service: service as V1Service } : {}),
      ...(ingress ? { ingress: ingress as V1Ingress } : {}),
      ...(networkPolicy ? { networkPolicy: networkPolicy as V1NetworkPolicy } : {}),
      ...(homeClaim ? { homeClaim: homeClaim as V1PersistentVolumeClaim } : {}),
      ...(legacyHomeClaim ? { legacyHomeClaim: legacyHomeClaim as V1PersistentVolumeClaim } : {}),
      pods: pods as V1Pod[],
    };
  }
}
