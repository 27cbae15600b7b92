import type { KubernetesObject, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { ANNOTATIONS, API_GROUP, homeClaimName, legacyHomeClaimName } from '@streamspace/shared';
import type { StoredSession as Session } from './stored-objects.js';

/**
 * Whose objects the reconciler may touch. Children have deterministic names (`ss-<session>`), so
 * anyone who may create a Deployment, Service or Ingress in a namespace can create one under the
 * name a Session is about to use; and home claims are found by name. Pure: decides from what a
 * reconcile observed, so the plan can say what it leaves alone and why.
 */

export interface ForeignChild {
  kind: 'Deployment' | 'Service' | 'Ingress' | 'NetworkPolicy';
  name: string;
  /** Controlled by an earlier Session of the same name (deleted; the garbage collector removes it soon). */
  leftByEarlierSession: boolean;
}

function controllerOf(object: KubernetesObject) {
  return object.metadata?.ownerReferences?.find((ref) => ref.controller === true);
}

/** True when the object's controller reference is this very Session (same uid): only then is it ours. */
export function isControlledBy(object: KubernetesObject, session: Session): boolean {
  const controller = controllerOf(object);
  return (
    controller !== undefined &&
    session.metadata.uid !== undefined &&
    controller.uid === session.metadata.uid &&
    controller.kind === 'Session' &&
    controller.apiVersion.startsWith(`${API_GROUP}/`)
  );
}

/** The children that exist under this Session's names but are not controlled by it. */
export function foreignChildren(
  session: Session,
  children: { kind: ForeignChild['kind']; object: KubernetesObject | undefined }[],
): ForeignChild[] {
  const foreign: ForeignChild[] = [];
  for (const { kind, object } of children) {
    if (!object || isControlledBy(object, session)) continue;
    const controller = controllerOf(object);
    foreign.push({
      kind,
      name: object.metadata?.name ?? '',
      leftByEarlierSession:
        controller?.kind === 'Session' &&
        controller.apiVersion.startsWith(`${API_GROUP}/`) &&
        controller.name === session.metadata.name,
    });
  }
  return foreign;
}

/** What to do about the user's home claim. */
export type HomeClaimChoice =
  /** Mount this claim (it exists and is the user's, or it is created now under this name). */
  | { action: 'mount'; name: string; create: boolean }
  /** A claim of the user's name exists and belongs to someone else: start nothing. */
  | { action: 'refuse'; name: string; owner: string | undefined };

function ownerOf(claim: V1PersistentVolumeClaim): string | undefined {
  return claim.metadata?.annotations?.[ANNOTATIONS.user];
}

/**
 * A claim is mounted only if its owner annotation is spec.user. The current name (64-bit slug)
 * comes first. A claim made by a release that used 32-bit slugs is mounted only while no claim of
 * the current name exists and only if its annotation names this user, so an upgrade keeps
 * everyone's home and a crafted 32-bit collision still reaches nobody else's.
 */
export function chooseHomeClaim(
  session: Session,
  current: V1PersistentVolumeClaim | undefined,
  legacy: V1PersistentVolumeClaim | undefined,
): HomeClaimChoice {
  const user = session.spec.user;
  const name = homeClaimName(user);
  if (current) {
    const owner = ownerOf(current);
    return owner === user ? { action: 'mount', name, create: false } : { action: 'refuse', name, owner };
  }
  if (legacy && ownerOf(legacy) === user)
    return { action: 'mount', name: legacyHomeClaimName(user), create: false };
  return { action: 'mount', name, create: true };
}
