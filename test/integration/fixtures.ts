import { API_GROUP, API_VERSION } from '@streamspace/shared';

/**
 * The Template and Session objects the integration tests create: one builder each, so a change to
 * the API changes the tests' objects in one place. A test passes only what its case is about; a
 * field it passes as undefined is left out of the JSON sent, for a case that never sent that default.
 */

/** A usable Template (a browser on a websocket VNC port); `spec` adds or replaces fields. */
export function templateObject(
  namespace: string | undefined,
  name: string,
  spec: Record<string, unknown> = {},
) {
  return {
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: 'Template',
    metadata: { name, ...(namespace ? { namespace } : {}) },
    spec: {
      displayName: `Test ${name}`,
      baseImage: 'lscr.io/linuxserver/firefox:latest',
      ports: [{ name: 'http', containerPort: 3000, protocol: 'TCP' }],
      vnc: { enabled: true, port: 3000, protocol: 'websocket' },
      ...spec,
    },
  };
}

/**
 * A running Session of `user` on Template `template`; `extra` adds or replaces spec fields, and
 * `metadata` adds annotations and the like, for the cases about them.
 */
export function sessionObject(
  namespace: string | undefined,
  name: string,
  user: string,
  template: string,
  extra: Record<string, unknown> = {},
  metadata: Record<string, unknown> = {},
) {
  return {
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: 'Session',
    metadata: { name, ...(namespace ? { namespace } : {}), ...metadata },
    spec: { user, template, state: 'running', ...extra },
  };
}
