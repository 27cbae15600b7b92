import { randomBytes } from 'node:crypto';
import {
  ApiException,
  type AppsV1Api,
  type CoreV1Api,
  type CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  type NetworkingV1Api,
  PatchStrategy,
  setHeaderOptions,
  AppsV1Api as AppsApi,
  CoreV1Api as CoreApi,
  CustomObjectsApi as CustomApi,
  NetworkingV1Api as NetworkingApi,
} from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, FIELD_MANAGER, LABELS, MANAGED_BY } from '@streamspace/shared';
import type { StoredSession as Session, StoredTemplate as Template } from './stored-objects.js';
import type { ChildRef, KubeEventIntent, ObservedSession, PlannedStatus } from './session-plan.js';
import type { TemplateStatusPlan } from './template-validation.js';

export function statusCode(error: unknown): number | undefined {
  if (error instanceof ApiException) return error.code;
  const code = (error as { code?: unknown; statusCode?: unknown })?.code ?? (error as { statusCode?: unknown })?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

export const isNotFound = (error: unknown) => statusCode(error) === 404;

/** 409 (someone wrote in between), 429 and 5xx pass; anything else is a real answer. */
function isRetryable(error: unknown): boolean {
  const code = statusCode(error);
  return code === undefined || code === 409 || code === 429 || code >= 500;
}

async function withConflictRetry<T>(operation: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (attempt >= attempts || statusCode(error) !== 409) throw error;
      await new Promise((r) => setTimeout(r, 20 * attempt));
    }
  }
}

async function orUndefined<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

const applyOptions = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

/**
 * The thin shell around the API server: read what a reconcile needs, apply what it planned.
 * Every write is a server-side apply under one field manager (or a delete), so repeating one
 * changes nothing and a 409 can only mean a race worth retrying.
 */
export class KubeWriter {
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly networking: NetworkingV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly objects: KubernetesObjectApi;

  constructor(
    kc: KubeConfig,
    private readonly component = 'streamspace-reconciler',
  ) {
    this.core = kc.makeApiClient(CoreApi);
    this.apps = kc.makeApiClient(AppsApi);
    this.networking = kc.makeApiClient(NetworkingApi);
    this.custom = kc.makeApiClient(CustomApi);
    this.objects = KubernetesObjectApi.makeApiClient(kc);
  }

  async readSession(namespace: string, name: string): Promise<Session | undefined> {
    return (await orUndefined(
      this.custom.getNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace, plural: 'sessions', name }),
    )) as Session | undefined;
  }

  async readTemplate(namespace: string, name: string): Promise<Template | undefined> {
    return (await orUndefined(
      this.custom.getNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace, plural: 'templates', name }),
    )) as Template | undefined;
  }

  async observe(session: Session, childName: string, homeClaim: string): Promise<ObservedSession> {
    const namespace = session.metadata.namespace;
    const [template, deployment, service, ingress, claim, pods] = await Promise.all([
      this.readTemplate(namespace, session.spec.template),
      orUndefined(this.apps.readNamespacedDeployment({ namespace, name: childName })),
      orUndefined(this.core.readNamespacedService({ namespace, name: childName })),
      orUndefined(this.networking.readNamespacedIngress({ namespace, name: childName })),
      session.spec.persistentHome ? orUndefined(this.core.readNamespacedPersistentVolumeClaim({ namespace, name: homeClaim })) : undefined,
      this.core.listNamespacedPod({ namespace, labelSelector: `${LABELS.managedBy}=${MANAGED_BY},${LABELS.session}=${session.metadata.name}` }),
    ]);
    return {
      session,
      template,
      ...(deployment ? { deployment } : {}),
      ...(service ? { service } : {}),
      ...(ingress ? { ingress } : {}),
      ...(claim ? { homeClaim: claim } : {}),
      pods: pods.items,
    };
  }

  async apply(object: KubernetesObject): Promise<void> {
    await withConflictRetry(() => this.objects.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply));
  }

  async remove(ref: ChildRef): Promise<void> {
    try {
      await this.objects.delete({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } }, undefined, undefined, undefined, undefined, 'Background');
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  async writeSessionStatus(session: Session, status: PlannedStatus): Promise<void> {
    await this.applyStatus('sessions', 'Session', session.metadata.namespace, session.metadata.name, status);
  }

  async writeTemplateStatus(template: Template, status: TemplateStatusPlan): Promise<void> {
    await this.applyStatus('templates', 'Template', template.metadata.namespace, template.metadata.name, status);
  }

  /** Status is applied under its own field manager so other writers (the idle reaper's lastActivity) keep their fields. */
  private async applyStatus(plural: string, kind: string, namespace: string, name: string, status: object): Promise<void> {
    await withConflictRetry(() =>
      this.custom.patchNamespacedCustomObjectStatus(
        {
          group: API_GROUP,
          version: API_VERSION,
          namespace,
          plural,
          name,
          body: { apiVersion: `${API_GROUP}/${API_VERSION}`, kind, metadata: { name, namespace }, status },
          fieldManager: `${FIELD_MANAGER}-reconciler`,
          force: true,
        },
        applyOptions,
      ),
    );
  }

  /** A core/v1 Event on the Session, so `kubectl describe session` tells its story. */
  async recordEvent(session: Session, event: KubeEventIntent): Promise<void> {
    const now = new Date();
    await this.core.createNamespacedEvent({
      namespace: session.metadata.namespace,
      body: {
        metadata: { name: `${session.metadata.name}.${randomBytes(8).toString('hex')}`, namespace: session.metadata.namespace },
        involvedObject: {
          apiVersion: `${API_GROUP}/${API_VERSION}`,
          kind: 'Session',
          name: session.metadata.name,
          namespace: session.metadata.namespace,
          ...(session.metadata.uid ? { uid: session.metadata.uid } : {}),
          ...(session.metadata.resourceVersion ? { resourceVersion: session.metadata.resourceVersion } : {}),
        },
        type: event.type,
        reason: event.reason,
        message: event.message.slice(0, 1024),
        source: { component: this.component },
        reportingComponent: this.component,
        reportingInstance: process.env.HOSTNAME ?? 'local',
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  }
}

export { isRetryable };
