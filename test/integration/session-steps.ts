import type * as k8s from '@kubernetes/client-node';
import { API_GROUP, API_VERSION } from '@streamspace/shared';
import { expect } from 'vitest';
import { sessionObject, templateObject } from './fixtures.js';
import { eventually, kube, kubectl } from './harness.js';

/** What a user does to a Session, and waiting for its phase: the steps of a session's life in a test. */

interface SessionStatus {
  phase?: string;
  url?: string;
}

/** Creates a Session as a user would (kubectl apply of a Session), with the given spec. */
export async function createSession(
  namespace: string,
  name: string,
  spec: { user: string; template: string; [field: string]: unknown },
): Promise<void> {
  const { user, template, ...extra } = spec;
  await kube().custom.createNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
    body: sessionObject(undefined, name, user, template, extra),
  });
}

/**
 * The Template most tests run their Sessions from: a browser (a websocket VNC endpoint on 3000)
 * with small requests, so many of its desktops fit on a KWOK node. `custom` is the cluster's API
 * (the shared test cluster's unless a test runs its own).
 */
export async function createFirefoxTemplate(
  namespace: string,
  custom: Pick<k8s.CustomObjectsApi, 'createNamespacedCustomObject'> = kube().custom,
): Promise<void> {
  await custom.createNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'templates',
    body: templateObject(namespace, 'firefox', {
      displayName: 'Firefox',
      description: 'A browser',
      category: 'browsers',
      defaultResources: { requests: { cpu: '10m', memory: '64Mi' } },
    }),
  });
}

/** Sets spec.state (running, hibernated, terminated), as a user or the idle reaper does. */
export async function setSessionState(namespace: string, name: string, state: string): Promise<void> {
  const r = await kubectl([
    'patch',
    'session',
    name,
    '-n',
    namespace,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { state } }),
  ]);
  expect(r.code, r.stderr).toBe(0);
}

/** The Session as the API server has it now. */
export async function readSession<
  T = { metadata: { uid: string }; spec: { state: string }; status?: SessionStatus },
>(namespace: string, name: string): Promise<T> {
  return (await kube().custom.getNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: 'sessions',
    name,
  })) as T;
}

/** Waits until the Session's status.phase is `want`, and returns its status. */
export function waitSessionPhase(
  namespace: string,
  name: string,
  want: string,
  timeoutMs = 45_000,
): Promise<SessionStatus> {
  return eventually(async () => {
    const s = await readSession<{ status?: SessionStatus }>(namespace, name);
    expect(s.status?.phase, JSON.stringify(s.status)).toBe(want);
    return s.status ?? {};
  }, timeoutMs);
}

/** Waits until a terminated Session's Deployment, Service and Ingress are gone. */
export async function waitSessionChildrenGone(namespace: string, name: string): Promise<void> {
  await eventually(async () => {
    const left = await kubectl([
      'get',
      'deployment,service,ingress',
      '-n',
      namespace,
      '-o',
      'name',
      '-l',
      `stream.streamspace.io/session=${name}`,
    ]);
    expect(left.stdout.trim()).toBe('');
  });
}
