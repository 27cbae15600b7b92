import type { EventRecorder, KubeClient, ResourceRef } from '@streamspace/kube';
import { API_GROUP, API_VERSION, isoTime } from '@streamspace/shared';

/** The field manager of every write the reaper makes. */
export const REAPER_FIELD_MANAGER = 'streamspace-idle-reaper';
/**
 * The field manager of status.stateChange. Its own: a server-side apply removes the fields its
 * manager set before and leaves out, so sharing one with the status.lastActivity writes would
 * make each write drop the other's field.
 */
export const STATE_RECORD_FIELD_MANAGER = 'streamspace-idle-reaper-state';

/** The reaper's own record of a state change it made, kept where users cannot write (status). */
export interface StateChangeRecord {
  by: string;
  reason: string;
  at: string;
}
/** source.component of the reaper's Events. */
export const REAPER_COMPONENT = 'streamspace-idle-reaper';

export interface SessionRef {
  namespace: string;
  name: string;
  uid: string;
  resourceVersion?: string;
}

const sessionRef = (namespace: string, name: string, subresource?: string): ResourceRef => ({
  group: API_GROUP,
  version: API_VERSION,
  plural: 'sessions',
  namespace,
  name,
  ...(subresource ? { subresource } : {}),
});

/**
 * The reaper's few calls to the API server. `records` (default: `kube`) makes the status writes:
 * the records of a decision and status.lastActivity, which may wait; reads and spec.state
 * changes, which a deadline waits for, go through `kube`.
 */
export class SessionWriter {
  private readonly records: KubeClient;

  constructor(
    private readonly kube: KubeClient,
    private readonly events?: EventRecorder,
    records?: KubeClient,
  ) {
    this.records = records ?? kube;
  }

  /** The Session as raw JSON, or undefined when it does not exist. */
  read(namespace: string, name: string): Promise<unknown | undefined> {
    return this.kube.find<unknown>(sessionRef(namespace, name));
  }

  /**
   * Sets spec.state and the annotations that say who and why, as a JSON merge patch that carries
   * the resourceVersion the decision was made on: if anything changed since (a person woke it,
   * activity was written), the API server answers 409 and the caller decides again. A merge patch
   * rather than server-side apply: the reaper makes a one-off change on a person's behalf and must
   * not become the owner of spec.state, which a person's later `kubectl apply --server-side`
   * would then conflict with.
   */
  async changeState(ref: SessionRef, state: string, annotations: Record<string, string>): Promise<void> {
    await this.kube.mergePatch(
      sessionRef(ref.namespace, ref.name),
      { metadata: { uid: ref.uid, resourceVersion: ref.resourceVersion, annotations }, spec: { state } },
      REAPER_FIELD_MANAGER,
    );
  }

  /**
   * status.lastActivity under the reaper's own field manager (server-side apply on the status
   * subresource), so the reconciler's status fields are never touched and it never clobbers ours.
   */
  async applyLastActivity(namespace: string, name: string, at: number): Promise<void> {
    await this.records.apply(
      sessionRef(namespace, name, 'status'),
      {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: 'Session',
        metadata: { name, namespace },
        status: { lastActivity: isoTime(at) },
      },
      REAPER_FIELD_MANAGER,
      true,
    );
  }

  /**
   * status.stateChange: who changed spec.state, why and when. The annotations say the same for
   * people, but users may write annotations; the reaper decides only on this copy.
   */
  async applyStateChange(namespace: string, name: string, record: StateChangeRecord): Promise<void> {
    await this.records.apply(
      sessionRef(namespace, name, 'status'),
      {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: 'Session',
        metadata: { name, namespace },
        status: { stateChange: record },
      },
      STATE_RECORD_FIELD_MANAGER,
      true,
    );
  }

  /**
   * A core/v1 Event on the Session, so `kubectl describe` says what the reaper did and why. The
   * recorder aggregates: replicas, restarts and repeats that report the same thing raise the
   * count of one Event instead of adding more.
   */
  async recordEvent(ref: SessionRef, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    if (!this.events) throw new Error('this SessionWriter was made without an EventRecorder');
    await this.events.record(
      {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: 'Session',
        namespace: ref.namespace,
        name: ref.name,
        uid: ref.uid,
        ...(ref.resourceVersion ? { resourceVersion: ref.resourceVersion } : {}),
      },
      type,
      reason,
      message,
    );
  }
}
