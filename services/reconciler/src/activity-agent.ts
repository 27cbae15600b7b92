import type {
  V1Container,
  V1OwnerReference,
  V1PodTemplateSpec,
  V1Secret,
  V1Volume,
} from '@kubernetes/client-node';
import { sessionActivityToken, sessionChildName } from '@streamspace/shared';
import type { StoredSession as Session, StoredTemplate as Template } from './stored-objects.js';

/**
 * The activity agent in a desktop's pod (services/activity-agent, docs/idle-reaper.md): a container
 * of the platform's own image that reports to the idle reaper while a client is connected to the
 * desktop's port, with a token that is valid for this Session only, kept in a Secret the Session
 * owns. Pure builders, like session-children.ts.
 */

export interface ActivityAgentSettings {
  /** The platform's image (the one the control plane runs), started as `activity-agent`. */
  image: string;
  /** The idle reaper's POST /activity, as pods in session namespaces reach it. */
  url: string;
  /** The key of session tokens, shared with the idle reaper only. Never logged. */
  key: string;
  /** V8 flags on the agent's node command line (kept small, see docs/idle-reaper.md). */
  nodeArgs: string[];
}

export const ACTIVITY_AGENT_CONTAINER = 'activity-agent';
const TOKEN_VOLUME = 'activity-token';
const TOKEN_DIR = '/var/run/secrets/streamspace-activity';
/** Says in `kubectl describe pod` what the extra container is. */
export const ACTIVITY_AGENT_ANNOTATION = 'stream.streamspace.io/activity-agent';

/** Whether a Template's desktops get the agent: `spec.activity.agent`, by default when it has a VNC endpoint. */
export function wantsActivityAgent(template: Template): boolean {
  return template.spec.activity?.agent ?? template.spec.vnc.enabled;
}

/** The port whose clients count as activity: the VNC endpoint, else the port that serves the session. */
export function activityPort(template: Template): number {
  return template.spec.vnc.enabled
    ? template.spec.vnc.port
    : (template.spec.ports?.[0]?.containerPort ?? template.spec.vnc.port);
}

export function activitySecretName(session: Session): string {
  return `${sessionChildName(session.metadata.name)}-activity`;
}

/** The Session's own token, in a Secret it owns (so it is deleted with it). */
export function buildActivitySecret(
  session: Session,
  agent: ActivityAgentSettings,
  metadata: {
    labels: Record<string, string>;
    annotations: Record<string, string>;
    ownerReferences: V1OwnerReference[];
  },
): V1Secret {
  const { namespace, name, uid } = session.metadata;
  const token = sessionActivityToken(agent.key, namespace, name, uid as string);
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: activitySecretName(session),
      namespace,
      labels: metadata.labels,
      annotations: metadata.annotations,
      ownerReferences: metadata.ownerReferences,
    },
    type: 'Opaque',
    data: { token: Buffer.from(token, 'utf8').toString('base64') },
  };
}

/** The agent's container and the volume of its token. */
export function activityAgentParts(
  session: Session,
  template: Template,
  agent: ActivityAgentSettings,
): { container: V1Container; volume: V1Volume; annotation: Record<string, string> } {
  const port = activityPort(template);
  return {
    container: {
      name: ACTIVITY_AGENT_CONTAINER,
      image: agent.image,
      command: ['node', ...agent.nodeArgs, '/app/entrypoint.mjs'],
      args: ['activity-agent'],
      env: [
        { name: 'STREAMSPACE_NAMESPACE', value: session.metadata.namespace },
        { name: 'STREAMSPACE_SESSION', value: session.metadata.name },
        { name: 'DESKTOP_PORT', value: String(port) },
        { name: 'ACTIVITY_URL', value: agent.url },
        { name: 'ACTIVITY_TOKEN_FILE', value: `${TOKEN_DIR}/token` },
      ],
      // Measured in BENCHMARKS.md ("Activity agent"): ~44 MB resident, well under 1m CPU.
      resources: { requests: { cpu: '5m', memory: '48Mi' }, limits: { cpu: '50m', memory: '64Mi' } },
      volumeMounts: [{ name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true }],
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 1000,
        runAsGroup: 1000,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      },
    },
    // optional: a desktop never waits for its agent; the agent waits for its token (it re-reads it).
    volume: { name: TOKEN_VOLUME, secret: { secretName: activitySecretName(session), optional: true } },
    annotation: {
      [ACTIVITY_AGENT_ANNOTATION]: `container ${ACTIVITY_AGENT_CONTAINER} reports to the idle reaper while a client is connected to port ${port} (docs/idle-reaper.md)`,
    },
  };
}

/** Whether a pod template carries the agent (a running desktop keeps the one it started with). */
export function hasActivityAgent(podTemplate: V1PodTemplateSpec | undefined): boolean {
  return podTemplate?.spec?.containers?.some((c) => c.name === ACTIVITY_AGENT_CONTAINER) ?? false;
}
