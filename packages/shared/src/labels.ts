/**
 * Labels and annotations the platform puts on what it creates. The watcher finds a child's
 * Session through ANNOTATIONS.session where a long name had to be shortened, else LABELS.session;
 * selectors never depend on names.
 */
export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  session: 'stream.streamspace.io/session',
  template: 'stream.streamspace.io/template',
  user: 'stream.streamspace.io/user',
} as const;

export const MANAGED_BY = 'streamspace';

/** Selects everything the platform created in a namespace. */
export const MANAGED_SELECTOR = `${LABELS.managedBy}=${MANAGED_BY}`;

export const ANNOTATIONS = {
  /** The raw (unmapped) user name on objects whose labels carry only its slug. */
  user: 'stream.streamspace.io/user',
  /** The full Session name on children whose session label holds a shortened one (long names). */
  session: 'stream.streamspace.io/session',
  /** Who last changed spec.state on a user's behalf (the idle reaper records itself here). */
  stateChangedBy: 'stream.streamspace.io/state-changed-by',
  stateChangeReason: 'stream.streamspace.io/state-change-reason',
  stateChangedAt: 'stream.streamspace.io/state-changed-at',
  /** Opt a session out of idle hibernation and the maximum duration. */
  reaperDisabled: 'stream.streamspace.io/reaper-disabled',
  /** The template generation a Deployment was built from (see docs on template changes). */
  templateGeneration: 'stream.streamspace.io/template-generation',
  /** The pod template a running desktop was started from, kept on its Deployment (docs/lifecycle.md). */
  podTemplate: 'stream.streamspace.io/pod-template',
} as const;

/** The field manager every server-side apply of the platform uses. */
export const FIELD_MANAGER = 'streamspace';
