import type {
  KubernetesObject,
  V1Deployment,
  V1Ingress,
  V1NetworkPolicy,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Service,
} from '@kubernetes/client-node';
import { type EventRecorder, isConflict, type KubeClient, type ResourceRef } from '@streamspace/kube';
import { API_GROUP, API_VERSION, FIELD_MANAGER, LABELS, MANAGED_BY, sessionLabelValue } from '@streamspace/shared';
import type { WriteFence } from './partition-lease.js';
import type { ChildRef, KubeEventIntent, ObservedSession, PlannedStatus } from './session-plan.js';
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
const templates = (namespace: string, name?: string, subresource?: string): ResourceRef => ({
  ...sessions(namespace, name, subresource),
  plural: 'templates',
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
    case 'PersistentVolumeClaim':
      return { version: 'v1', plural: 'persistentvolumeclaims', namespace, name };
    default:
      throw new Error(`the reconciler does not write ${kind} objects`);
  }
}

/**
 * The thin shell around the API server: read what a reconcile needs, apply what it planned.
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

  readSession(namespace: string, name: string): Promise<Session | undefined> {
    return this.kube.find<Session>(sessions(namespace, name));
  }

  readTemplate(namespace: string, name: string): Promise<Template | undefined> {
    return this.kube.find<Template>(templates(namespace, name));
  }

  /** `homeClaims`: the current and the legacy name of the user's home claim (both read with persistentHome). */
  async observe(
    session: Session,
    childName: string,
    homeClaims: { current: string; legacy: string },
  ): Promise<ObservedSession> {
    const namespace = session.metadata.namespace;
    const claim = (name: string) =>
      session.spec.persistentHome
        ? this.kube.find<V1PersistentVolumeClaim>(refFor('PersistentVolumeClaim', namespace, name))
        : undefined;
    const [template, deployment, service, ingress, networkPolicy, homeClaim, legacyHomeClaim, pods] = await Promise.all([
      this.readTemplate(namespace, session.spec.template),
      this.kube.find<V1Deployment>(refFor('Deployment', namespace, childName)),
      this.kube.find<V1Service>(refFor('Service', namespace, childName)),
      this.kube.find<V1Ingress>(refFor('Ingress', namespace, childName)),
      this.kube.find<V1NetworkPolicy>(refFor('NetworkPolicy', namespace, childName)),
      claim(homeClaims.current),
      claim(homeClaims.legacy),
      this.kube.list<V1Pod>(
        { version: 'v1', plural: 'pods', namespace },
        { labelSelector: `${LABELS.managedBy}=${MANAGED_BY},${LABELS.session}=${sessionLabelValue(session.metadata.name)}` },
      ),
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
      pods: pods.items,
    };
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
