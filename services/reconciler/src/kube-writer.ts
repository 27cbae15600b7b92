import type { KubernetesObject } from '@kubernetes/client-node';
import { type EventRecorder, isConflict, type KubeClient, type ResourceRef } from '@streamspace/kube';
import { API_GROUP, API_VERSION, FIELD_MANAGER } from '@streamspace/shared';
import type { OwnWrites } from './own-writes.js';
import type { WriteFence } from './partition-lease.js';
import type { ChildRef, KubeEventIntent, PlannedStatus } from './session-plan.js';
import type { StoredSession as Session, StoredTemplate as Template } from './stored-objects.js';
import type { TemplateStatusPlan } from './template-validation.js';

async function withConflictRetry<T>(operation: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (attempt >= attempts || !isConflict(error)) throw error;
      await new Promise((r) => setTimeout(r, 20 * attempt));
    }
  }
}

const sessions = (namespace: string, name?: string, subresource?: string): ResourceRef => ({
  group: API_GROUP,
  version: API_VERSION,
  plural: 'sessions',
  namespace,
  ...(name ? { name } : {}),
  ...(subresource ? { subresource } : {}),
});

/** Where objects of the kinds the reconciler writes live in the API. */
function refFor(kind: string, namespace: string, name: string): ResourceRef {
  switch (kind) {
    case 'Deployment':
      return { group: 'apps', version: 'v1', plural: 'deployments', namespace, name };
    case 'Service':
      return { version: 'v1', plural: 'services', namespace, name };
    case 'Ingress':
      return { group: 'networking.k8s.io', version: 'v1', plural: 'ingresses', namespace, name };
    case 'NetworkPolicy':
      return { group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies', namespace, name };
    case 'Secret':
      return { version: 'v1', plural: 'secrets', namespace, name };
    case 'PersistentVolumeClaim':
      return { version: 'v1', plural: 'persistentvolumeclaims', namespace, name };
    default:
      throw new Error(`the reconciler does not write ${kind} objects`);
  }
}

/** The shared state's kind (shared-state.ts) of each kind the reconciler writes. */
const STATE_KIND: Record<string, string> = {
  Session: 'session',
  Template: 'template',
  Deployment: 'deployment',
  Service: 'service',
  Ingress: 'ingress',
  NetworkPolicy: 'networkpolicy',
  PersistentVolumeClaim: 'pvc',
};

/**
 * The reconciler's writes to the API server: it reads nothing there (StateReads reads the shared
 * state); it applies what a reconcile planned, writes status and records Events.
 * Every write is a server-side apply under one field manager (or a delete, or a Deployment's
 * replicas alone, see scale), so repeating one changes nothing and a 409 can only mean a race
 * worth retrying.
 */
export class KubeWriter {
  constructor(
    private readonly kube: KubeClient,
    private readonly events: EventRecorder,
    /** Where what the server answered our writes with is kept for our next reads (own-writes.ts). */
    private readonly own?: OwnWrites,
    /** Checked before every write: a reconcile whose worker lost the pin on its key stops there. */
    private readonly fence?: WriteFence,
  ) {}

  /** This writer for one reconcile, which writes only while `fence` holds. */
  fenced(fence: WriteFence): KubeWriter {
    return new KubeWriter(this.kube, this.events, this.own, fence);
  }

  async apply(object: KubernetesObject): Promise<void> {
    const ref = refFor(
      object.kind as string,
      object.metadata?.namespace as string,
      object.metadata?.name as string,
    );
    const written = await withConflictRetry(() => {
      this.fence?.throwIfLost();
      return this.kube.apply<KubernetesObject>(ref, object, FIELD_MANAGER, true);
    });
    this.own?.remember(STATE_KIND[object.kind as string] ?? '', ref.namespace ?? '', ref.name ?? '', written);
  }

  /**
   * Sets a Deployment's replicas alone, by a merge patch, when the rest of it is already as
   * applied (replicasOnlyChange): cheaper for the API server than applying the whole object again
   * (BENCHMARKS.md, P0c), with the same outcome: the field is ours either way, and the next full
   * apply (forced) keeps it.
   */
  async scale(namespace: string, name: string, replicas: number): Promise<void> {
    const ref = refFor('Deployment', namespace, name);
    const written = await withConflictRetry(() => {
      this.fence?.throwIfLost();
      return this.kube.mergePatch<KubernetesObject>(ref, { spec: { replicas } }, FIELD_MANAGER);
    });
    this.own?.remember(STATE_KIND.Deployment ?? '', namespace, name, written);
  }

  async remove(ref: ChildRef): Promise<void> {
    this.fence?.throwIfLost();
    await this.kube.delete(refFor(ref.kind, ref.namespace, ref.name), 'Background');
  }

  /**
   * Writes a Session's status planned from `session` as read, on condition that the Session is
   * still that version (its resourceVersion is the precondition). Read from the shared state, it
   * may be older than the API server's (another writer's change not stored yet, or a partition
   * that moved here from a worker whose last write is not stored yet): a status planned from it
   * would stamp new transition times on a phase already reported. Returns false, writing nothing,
   * when the Session has moved on; the caller looks again once the state has caught up.
   */
  async writeSessionStatus(session: Session, status: PlannedStatus): Promise<boolean> {
    try {
      await this.applyStatus(
        'sessions',
        'Session',
        session.metadata.namespace,
        session.metadata.name,
        status,
        session.metadata.resourceVersion,
      );
      return true;
    } catch (error) {
      if (session.metadata.resourceVersion && isConflict(error)) return false;
      throw error;
    }
  }

  async writeTemplateStatus(template: Template, status: TemplateStatusPlan): Promise<void> {
    await this.applyStatus(
      'templates',
      'Template',
      template.metadata.namespace,
      template.metadata.name,
      status,
    );
  }

  /**
   * Status is applied under its own field manager so other writers (the idle reaper's lastActivity)
   * keep their fields. With `resourceVersion` the apply is conditional: a 409 means the object
   * changed since it was read, and is not retried here.
   */
  private async applyStatus(
    plural: string,
    kind: string,
    namespace: string,
    name: string,
    status: object,
    resourceVersion?: string,
  ): Promise<void> {
    const ref = { ...sessions(namespace, name, 'status'), plural };
    const metadata = { name, namespace, ...(resourceVersion ? { resourceVersion } : {}) };
    const body = { apiVersion: `${API_GROUP}/${API_VERSION}`, kind, metadata, status };
    const written = await withConflictRetry(() => {
      this.fence?.throwIfLost();
      return this.kube.apply<KubernetesObject>(ref, body, `${FIELD_MANAGER}-reconciler`, true);
    }, resourceVersion ? 1 : undefined);
    this.own?.remember(STATE_KIND[kind] ?? '', namespace, name, written);
  }

  /** A core/v1 Event on the Session, so `kubectl describe session` tells its story (repeats aggregated). */
  recordEvent(session: Session, event: KubeEventIntent): Promise<void> {
    this.fence?.throwIfLost();
    const { name, namespace, uid, resourceVersion } = session.metadata;
    return this.events.record(
      {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: 'Session',
        name,
        namespace,
        ...(uid ? { uid } : {}),
        ...(resourceVersion ? { resourceVersion } : {}),
      },
      event.type,
      event.reason,
      event.message,
    );
  }
}
