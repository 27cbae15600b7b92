import type { KubernetesObject } from '@kubernetes/client-node';
import { type EventRecorder, isConflict, type KubeClient, type ResourceRef } from '@streamspace/kube';
import { API_GROUP, API_VERSION, FIELD_MANAGER } from '@streamspace/shared';
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

/**
 * The reconciler's writes to the API server: it reads nothing there (StateReads reads the shared
 * state); it applies what a reconcile planned, writes status and records Events.
 * Every write is a server-side apply under one field manager (or a delete), so repeating one
 * changes nothing and a 409 can only mean a race worth retrying.
 */
export class KubeWriter {
  constructor(
    private readonly kube: KubeClient,
    private readonly events: EventRecorder,
    /** Checked before every write: a reconcile whose worker lost the pin on its key stops there. */
    private readonly fence?: WriteFence,
  ) {}

  /** This writer for one reconcile, which writes only while `fence` holds. */
  fenced(fence: WriteFence): KubeWriter {
    return new KubeWriter(this.kube, this.events, fence);
  }

  async apply(object: KubernetesObject): Promise<void> {
    const ref = refFor(
      object.kind as string,
      object.metadata?.namespace as string,
      object.metadata?.name as string,
    );
    await withConflictRetry(() => {
      this.fence?.throwIfLost();
      return this.kube.apply(ref, object, FIELD_MANAGER, true);
    });
  }

  async remove(ref: ChildRef): Promise<void> {
    this.fence?.throwIfLost();
    await this.kube.delete(refFor(ref.kind, ref.namespace, ref.name), 'Background');
  }

  async writeSessionStatus(session: Session, status: PlannedStatus): Promise<void> {
    await this.applyStatus('sessions', 'Session', session.metadata.namespace, session.metadata.name, status);
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

  /** Status is applied under its own field manager so other writers (the idle reaper's lastActivity) keep their fields. */
  private async applyStatus(
    plural: string,
    kind: string,
    namespace: string,
    name: string,
    status: object,
  ): Promise<void> {
    const ref = { ...sessions(namespace, name, 'status'), plural };
    const body = { apiVersion: `${API_GROUP}/${API_VERSION}`, kind, metadata: { name, namespace }, status };
    await withConflictRetry(() => {
      this.fence?.throwIfLost();
      return this.kube.apply(ref, body, `${FIELD_MANAGER}-reconciler`, true);
    });
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
