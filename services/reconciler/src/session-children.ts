import type {
  KubernetesObject,
  V1Deployment,
  V1Ingress,
  V1PersistentVolumeClaim,
  V1PodTemplateSpec,
  V1Service,
} from '@kubernetes/client-node';
import {
  ANNOTATIONS,
  API_GROUP_VERSION,
  homeClaimName,
  LABELS,
  MANAGED_BY,
  sessionChildName,
  sessionHostLabel,
  sessionLabelValue,
  userSlug,
} from '@streamspace/shared';
import {
  type ActivityAgentSettings,
  activityAgentParts,
  buildActivitySecret,
  wantsActivityAgent,
} from './activity-agent.js';
import type { ReconcilerSettings, ResourceCeiling } from './reconciler-settings.js';
import { applyResourceCeiling, type CeilingResult } from './resource-ceiling.js';
import { desktopAuthAnnotations } from './desktop-access.js';
import type { StoredSession as Session, StoredTemplate as Template } from './stored-objects.js';

/**
 * Builders of the objects a Session owns. Pure: the same Session, Template and settings give the
 * same objects, byte for byte, which is what makes server-side apply of them idempotent.
 */

const DESKTOP_CONTAINER = 'desktop';
const DEFAULT_HOME_PATH = '/config';

export function childLabels(session: Session): Record<string, string> {
  return {
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.name]: 'streamspace-session',
    [LABELS.session]: sessionLabelValue(session.metadata.name),
    [LABELS.template]: session.spec.template,
    [LABELS.user]: userSlug(session.spec.user),
  };
}

function ownerReference(session: Session) {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: 'Session',
    name: session.metadata.name,
    uid: session.metadata.uid as string,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/**
 * Where the session label holds a shortened name, the full name goes in an annotation, so the
 * watcher can still tell which Session a child (or its pods) belongs to. Names that fit carry no
 * such annotation, so their pod templates, and so their pods, stay as they always were.
 */
function sessionNameAnnotation(session: Session): Record<string, string> {
  const name = session.metadata.name;
  return sessionLabelValue(name) === name ? {} : { [ANNOTATIONS.session]: name };
}

/** The selector of a Session's pods (its Deployment's and its Service's). */
function podSelector(session: Session): Record<string, string> {
  return { [LABELS.managedBy]: MANAGED_BY, [LABELS.session]: sessionLabelValue(session.metadata.name) };
}

function childMetadata(session: Session, component: string) {
  return {
    name: sessionChildName(session.metadata.name),
    namespace: session.metadata.namespace,
    labels: { ...childLabels(session), [LABELS.component]: component },
    annotations: { [ANNOTATIONS.user]: session.spec.user, ...sessionNameAnnotation(session) },
    ownerReferences: [ownerReference(session)],
  };
}

type ResourceList = Record<string, string>;

/** The Session's requests and limits win over the Template's defaults, key by key. */
export function effectiveResources(
  session: Session,
  template: Template,
): { requests?: ResourceList; limits?: ResourceList } {
  const base = template.spec.defaultResources ?? {};
  const own = session.spec.resources ?? {};
  const merge = (
    a?: Record<string, string | number>,
    b?: Record<string, string | number>,
  ): ResourceList | undefined => {
    const merged = { ...(a ?? {}), ...(b ?? {}) };
    return Object.keys(merged).length > 0
      ? Object.fromEntries(Object.entries(merged).map(([k, v]) => [k, String(v)]))
      : undefined;
  };
  const requests = merge(base.requests as ResourceList | undefined, own.requests as ResourceList | undefined);
  const limits = merge(base.limits as ResourceList | undefined, own.limits as ResourceList | undefined);
  return { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) };
}

export function vncPort(template: Template): number {
  return template.spec.vnc?.port ?? 3000;
}

/** The Session's resources held to the platform's ceiling (see resource-ceiling.ts). */
export function sessionResources(
  session: Session,
  template: Template,
  ceiling: ResourceCeiling | undefined,
): CeilingResult {
  return applyResourceCeiling(effectiveResources(session, template), ceiling, (kind, name) =>
    session.spec.resources?.[kind]?.[name] !== undefined
      ? `the Session`
      : `Template "${template.metadata.name}"'s defaultResources`,
  );
}

/** `homeClaim`: the claim to mount as the home (the plan checks whose it is; see child-ownership.ts). */
export function renderPodTemplate(
  session: Session,
  template: Template,
  homeClaim: string = homeClaimName(session.spec.user),
  ceiling?: ResourceCeiling,
  activityAgent?: ActivityAgentSettings,
): V1PodTemplateSpec {
  const spec = template.spec;
  const ports = new Map<number, { name: string; containerPort: number; protocol: string }>();
  for (const port of spec.ports ?? [])
    ports.set(port.containerPort, {
      name: port.name,
      containerPort: port.containerPort,
      protocol: port.protocol ?? 'TCP',
    });
  if (!ports.has(vncPort(template)))
    ports.set(vncPort(template), { name: 'vnc', containerPort: vncPort(template), protocol: 'TCP' });

  const volumes: NonNullable<NonNullable<V1PodTemplateSpec['spec']>['volumes']> = [];
  const mounts: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[] = [];
  for (const mount of spec.volumeMounts ?? []) {
    // A template's own mounts are scratch space for the application; what must survive goes in the home.
    // The Template's sizeLimit caps what the application may write there (the kubelet evicts a
    // pod that exceeds it); without it one desktop could fill its node's disk.
    volumes.push({
      name: mount.name,
      emptyDir: mount.sizeLimit !== undefined ? { sizeLimit: String(mount.sizeLimit) } : {},
    });
    mounts.push({
      name: mount.name,
      mountPath: mount.mountPath,
      ...(mount.readOnly ? { readOnly: true } : {}),
    });
  }
  if (spec.shmSize) {
    // Browsers and Electron apps crash with the container runtime's default 64 MiB /dev/shm.
    volumes.push({ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: String(spec.shmSize) } });
    mounts.push({ name: 'dshm', mountPath: '/dev/shm' });
  }
  if (session.spec.persistentHome) {
    volumes.push({ name: 'home', persistentVolumeClaim: { claimName: homeClaim } });
    // One claim per user; each template keeps its settings in its own folder of it.
    mounts.push({
      name: 'home',
      mountPath: spec.homePath ?? DEFAULT_HOME_PATH,
      subPath: session.spec.template,
    });
  }

  const capabilities = spec.capabilities ?? [];
  const { resources } = sessionResources(session, template, ceiling);
  const agent =
    activityAgent && wantsActivityAgent(template)
      ? activityAgentParts(session, template, activityAgent)
      : undefined;
  if (agent) volumes.push(agent.volume);
  const podAnnotations = { ...sessionNameAnnotation(session), ...(agent?.annotation ?? {}) };
  return {
    metadata: {
      labels: childLabels(session),
      ...(Object.keys(podAnnotations).length > 0 ? { annotations: podAnnotations } : {}),
    },
    spec: {
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      // The container runtime's default seccomp filter: the syscalls a desktop never needs
      // (kernel modules, kexec, ptrace of others…) stay closed even with a capability added.
      securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: DESKTOP_CONTAINER,
          image: spec.baseImage,
          ports: [...ports.values()].sort((a, b) => a.containerPort - b.containerPort),
          env: (spec.env ?? []).map((e) => ({ name: e.name, value: e.value ?? '' })),
          ...(Object.keys(resources).length > 0 ? { resources } : {}),
          volumeMounts: mounts,
          readinessProbe: { tcpSocket: { port: vncPort(template) }, periodSeconds: 5, failureThreshold: 3 },
          securityContext: {
            allowPrivilegeEscalation: false,
            // Nothing of the runtime's default set: exactly what the Template adds, which
            // template validation held to the platform owner's allow-list.
            capabilities: { drop: ['ALL'], ...(capabilities.length > 0 ? { add: [...capabilities] } : {}) },
          },
        },
        ...(agent ? [agent.container] : []),
      ],
      volumes,
    },
  };
}

/** The Secret holding the Session's activity token (see activity-agent.ts). */
export function buildSessionActivitySecret(session: Session, activityAgent: ActivityAgentSettings) {
  const { labels, annotations, ownerReferences } = childMetadata(session, 'activity');
  return buildActivitySecret(session, activityAgent, { labels, annotations, ownerReferences });
}

export function buildDeployment(
  session: Session,
  podTemplate: V1PodTemplateSpec,
  replicas: 0 | 1,
): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: childMetadata(session, 'desktop'),
    spec: {
      replicas,
      // A desktop is one person's: never two pods of it at once, even during an update.
      strategy: { type: 'Recreate' },
      selector: { matchLabels: podSelector(session) },
      template: podTemplate,
    },
  };
}

export function buildService(session: Session, template: Template): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMetadata(session, 'desktop'),
    spec: {
      type: 'ClusterIP',
      selector: podSelector(session),
      ports: [{ name: 'vnc', port: vncPort(template), targetPort: vncPort(template), protocol: 'TCP' }],
    },
  };
}

export function sessionHost(session: Session, settings: ReconcilerSettings): string {
  return settings.ingressHostPattern
    .replaceAll('{session}', sessionHostLabel(session.metadata.name))
    .replaceAll('{namespace}', session.metadata.namespace)
    .replaceAll('{domain}', settings.ingressDomain);
}

function ingressScheme(settings: ReconcilerSettings): 'http' | 'https' {
  return settings.ingressTls || settings.ingressTlsSecret ? 'https' : 'http';
}

export function sessionUrl(session: Session, settings: ReconcilerSettings): string {
  return `${ingressScheme(settings)}://${sessionHost(session, settings)}/`;
}

/**
 * The TLS block of a desktop's Ingress: a wildcard Secret when one is named, else a certificate
 * of its own that cert-manager issues into `<child>-tls`, else the controller's default
 * certificate (ingress-nginx's --default-ssl-certificate).
 */
function ingressTls(session: Session, host: string, settings: ReconcilerSettings) {
  if (ingressScheme(settings) !== 'https') return {};
  const secretName =
    settings.ingressTlsSecret ??
    (settings.ingressClusterIssuer ? `${sessionChildName(session.metadata.name)}-tls` : undefined);
  return { tls: [{ hosts: [host], ...(secretName ? { secretName } : {}) }] };
}

export function buildIngress(session: Session, template: Template, settings: ReconcilerSettings): V1Ingress {
  const host = sessionHost(session, settings);
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: {
      ...childMetadata(session, 'desktop'),
      annotations: {
        ...childMetadata(session, 'desktop').annotations,
        // Desktops stream over long-lived websockets; the common ingress controllers cut them at 60 s.
        'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
        'nginx.ingress.kubernetes.io/proxy-send-timeout': '3600',
        ...(settings.ingressClusterIssuer && !settings.ingressTlsSecret
          ? { 'cert-manager.io/cluster-issuer': settings.ingressClusterIssuer }
          : {}),
        ...(settings.desktopAuth
          ? desktopAuthAnnotations(
              settings.desktopAuth,
              session.spec.user,
              `${ingressScheme(settings)}://${host}`,
            )
          : {}),
      },
    },
    spec: {
      ...(settings.ingressClassName ? { ingressClassName: settings.ingressClassName } : {}),
      ...ingressTls(session, host, settings),
      rules: [
        {
          host,
          http: {
            paths: [
              {
                path: '/',
                pathType: 'Prefix',
                backend: {
                  service: {
                    name: sessionChildName(session.metadata.name),
                    port: { number: vncPort(template) },
                  },
                },
              },
            ],
          },
        },
      ],
    },
  };
}

/**
 * Who may reach the desktop's pod: the ingress controller on the desktop's port, nobody else, on
 * no other port (a NetworkPolicy that selects a pod denies all ingress it does not allow).
 * Egress stays open: a desktop browses the web.
 */
export function buildNetworkPolicy(
  session: Session,
  template: Template,
  settings: ReconcilerSettings,
): (KubernetesObject & { spec: object }) | undefined {
  if (!settings.desktopIngressFrom) return undefined;
  // Written as the API's JSON (`from`), which the client library's TypeScript model calls `_from`.
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: childMetadata(session, 'desktop'),
    spec: {
      // The shortened label value, as the pods carry it: a name over 63 characters is no label value.
      podSelector: { matchLabels: podSelector(session) },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: structuredClone(settings.desktopIngressFrom),
          ports: [{ protocol: 'TCP', port: vncPort(template) }],
        },
      ],
    },
  };
}

/** The user's home: one per user per namespace, shared by their sessions, owned by none of them. */
export function buildHomeClaim(session: Session, settings: ReconcilerSettings): V1PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: homeClaimName(session.spec.user),
      namespace: session.metadata.namespace,
      labels: {
        [LABELS.managedBy]: MANAGED_BY,
        [LABELS.component]: 'home',
        [LABELS.user]: userSlug(session.spec.user),
      },
      annotations: { [ANNOTATIONS.user]: session.spec.user },
    },
    spec: {
      accessModes: [settings.homeAccessMode],
      ...(settings.homeStorageClass ? { storageClassName: settings.homeStorageClass } : {}),
      resources: { requests: { storage: settings.homeStorageSize } },
    },
  };
}
