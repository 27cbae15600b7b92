import type { Session, Template } from '@streamspace/shared';

/** A Session as read back from the API server, where name, namespace and uid are always set. */
export type StoredSession = Session & {
  metadata: Session['metadata'] & { name: string; namespace: string; uid?: string };
};
export type StoredTemplate = Template & {
  metadata: Template['metadata'] & { name: string; namespace: string };
};
