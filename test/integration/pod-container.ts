import type { K8sObject } from './helm.js';

/**
 * A Deployment the chart renders, turned into the `podman run` / `docker run` arguments that give
 * its container what the kubelet would: the command and args, the environment (envFrom and env,
 * resolved as the kubelet resolves them), the user, the read-only root filesystem, the dropped
 * capabilities, no privilege escalation, the memory limit, the volumes and the ServiceAccount
 * token. Generic over what the chart renders: anything it cannot give faithfully is an error
 * naming the field, so a chart change that this does not understand fails the test instead of
 * being silently left out.
 *
 * Pure: everything read from the cluster or written to disk is passed in (`PodInputs`).
 */

export type Engine = 'podman' | 'docker';

export interface PodInputs {
  engine: Engine;
  /** The rendered objects of the release (ConfigMaps are read from here). */
  rendered: K8sObject[];
  /** Secrets the pod references, by name (read from the cluster by the caller). */
  secrets: Record<string, Record<string, string>>;
  /** The host directory holding token, ca.crt and namespace of the pod's ServiceAccount. */
  serviceAccountDir: string;
  /** The API server as the kubelet announces it (KUBERNETES_SERVICE_HOST / _PORT). */
  apiServer: { host: string; port: string };
  /** Host directories with the files of each secret/configMap volume (see volumeFiles). */
  volumeDirs: Record<string, string>;
  /** Container name. */
  name: string;
  /** --add-host arguments (see serviceHosts). */
  hosts: string[];
}

export interface PodContainer {
  /** Arguments after `<engine> run`. */
  args: string[];
  /** The port of the container's probes (named or numbered in the chart). */
  port: number;
  readinessPath: string;
  livenessPath: string;
  /** The uid the container runs as. */
  uid: number;
  memoryLimitBytes: number | undefined;
}

const SERVICE_ACCOUNT_MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked field by field
type Any = any;

/** Kubernetes quantities (128Mi, 1G, 16777216, 500m) in base units. */
export function quantity(value: string | number): number {
  const text = String(value);
  const match = /^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$/.exec(text);
  if (!match) throw new Error(`cannot read the quantity '${text}'`);
  const factor: Record<string, number> = {
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    m: 1e-3,
  };
  return Number(match[1]) * (match[2] ? (factor[match[2]] as number) : 1);
}

function configMap(inputs: PodInputs, name: string): Record<string, string> | undefined {
  return inputs.rendered.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name)?.data;
}

function noExpansion(where: string, value: string): string {
  // The kubelet expands $(VAR) in env values, command and args; nothing here does, so refuse it.
  if (/\$\([A-Za-z_]/.test(value))
    throw new Error(`${where}: '${value}' uses $(VAR) expansion, which this runner does not do`);
  return value;
}

/** The container's environment, as the kubelet builds it: envFrom first, then env (which wins). */
export function containerEnv(
  deployment: K8sObject,
  container: Any,
  inputs: PodInputs,
  podName: string,
): Record<string, string> {
  const where = `${deployment.metadata.name}/${container.name}`;
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    const prefix = source.prefix ?? '';
    let data: Record<string, string> | undefined;
    if (source.configMapRef) data = configMap(inputs, source.configMapRef.name);
    else if (source.secretRef) data = inputs.secrets[source.secretRef.name];
    else throw new Error(`${where}: envFrom ${JSON.stringify(source)} is not supported`);
    const ref = source.configMapRef ?? source.secretRef;
    if (!data) {
      if (ref.optional) continue;
      throw new Error(`${where}: envFrom names ${ref.name}, which neither the chart nor the test provides`);
    }
    for (const [key, value] of Object.entries(data)) env[prefix + key] = String(value);
  }
  for (const entry of container.env ?? []) {
    if (entry.value !== undefined) {
      env[entry.name] = noExpansion(`${where} env ${entry.name}`, String(entry.value));
      continue;
    }
    const from = entry.valueFrom ?? {};
    let value: string | undefined;
    if (from.configMapKeyRef)
      value = configMap(inputs, from.configMapKeyRef.name)?.[from.configMapKeyRef.key];
    else if (from.secretKeyRef) value = inputs.secrets[from.secretKeyRef.name]?.[from.secretKeyRef.key];
    else if (from.fieldRef) {
      const fields: Record<string, string> = {
        'metadata.name': podName,
        'metadata.namespace': deployment.metadata.namespace ?? '',
        'spec.serviceAccountName': deployment.spec.template.spec.serviceAccountName ?? 'default',
        'status.podIP': '127.0.0.1',
        'status.hostIP': '127.0.0.1',
      };
      value = fields[from.fieldRef.fieldPath];
      if (value === undefined)
        throw new Error(
          `${where}: env ${entry.name} reads ${from.fieldRef.fieldPath}, which is not supported`,
        );
    } else if (from.resourceFieldRef) {
      const [kind, resource] = String(from.resourceFieldRef.resource).split('.') as [string, string];
      const amount = container.resources?.[kind]?.[resource];
      if (amount === undefined)
        throw new Error(
          `${where}: env ${entry.name} reads ${from.resourceFieldRef.resource}, which is not set`,
        );
      value = String(Math.ceil(quantity(amount) / quantity(from.resourceFieldRef.divisor ?? 1)));
    } else throw new Error(`${where}: env ${entry.name} has a valueFrom this runner does not support`);
    const ref = from.configMapKeyRef ?? from.secretKeyRef;
    if (value === undefined) {
      if (ref?.optional) continue;
      throw new Error(`${where}: env ${entry.name} names ${ref?.name}/${ref?.key}, which does not exist`);
    }
    env[entry.name] = value;
  }
  return env;
}

/** The files of a secret or configMap volume (its items, or every key), by relative path. */
export function volumeFiles(volume: Any, inputs: PodInputs): Record<string, string> {
  const source = volume.secret ?? volume.configMap;
  const name = volume.secret ? source.secretName : source.name;
  const data = volume.secret ? inputs.secrets[name] : configMap(inputs, name);
  if (!data)
    throw new Error(`volume ${volume.name} names ${name}, which neither the chart nor the test provides`);
  const items: { key: string; path: string }[] =
    source.items ?? Object.keys(data).map((key) => ({ key, path: key }));
  return Object.fromEntries(
    items.map(({ key, path }) => {
      if (data[key] === undefined) throw new Error(`volume ${volume.name}: ${name} has no key ${key}`);
      return [path, data[key] as string];
    }),
  );
}

/** The `<engine> run` arguments for the only container of a rendered Deployment. */
export function podContainer(deployment: K8sObject, inputs: PodInputs): PodContainer {
  const pod = deployment.spec.template.spec;
  const containers: Any[] = pod.containers ?? [];
  if (containers.length !== 1 || pod.initContainers?.length)
    throw new Error(`${deployment.metadata.name}: expected exactly one container and no init containers`);
  const container = containers[0];
  const where = `${deployment.metadata.name}/${container.name}`;
  const args = ['--name', inputs.name, '--network', 'host', ...inputs.hosts];

  // Security context: the container's settings win over the pod's.
  const security = { ...(pod.securityContext ?? {}), ...(container.securityContext ?? {}) };
  if (security.runAsUser === undefined)
    throw new Error(`${where}: no runAsUser; the runner needs a numeric user`);
  const uid = Number(security.runAsUser);
  if (security.runAsNonRoot && uid === 0) throw new Error(`${where}: runAsNonRoot with runAsUser 0`);
  args.push('--user', `${uid}:${security.runAsGroup ?? 0}`);
  // The kubelet adds the fsGroup (and supplementalGroups) to the process's groups.
  for (const group of [pod.securityContext?.fsGroup, ...(pod.securityContext?.supplementalGroups ?? [])]) {
    if (group !== undefined) args.push('--group-add', String(group));
  }
  if (security.readOnlyRootFilesystem) {
    args.push('--read-only');
    // podman mounts writable tmpfs on /tmp, /var/tmp and /run of a read-only container unless
    // told not to; Kubernetes does not, so only the pod's own volumes are writable.
    if (inputs.engine === 'podman') args.push('--read-only-tmpfs=false');
  }
  if (security.privileged) args.push('--privileged');
  if (security.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
  for (const cap of security.capabilities?.drop ?? []) args.push('--cap-drop', cap);
  for (const cap of security.capabilities?.add ?? []) args.push('--cap-add', cap);
  const seccomp = security.seccompProfile?.type;
  if (seccomp === 'Unconfined') args.push('--security-opt', 'seccomp=unconfined');
  else if (seccomp !== undefined && seccomp !== 'RuntimeDefault')
    throw new Error(`${where}: seccompProfile ${seccomp} is not supported`);

  // Resources: the memory limit is enforced by the kernel as in a pod, and with no swap.
  const limits = container.resources?.limits ?? {};
  let memoryLimitBytes: number | undefined;
  if (limits.memory !== undefined) {
    memoryLimitBytes = quantity(limits.memory);
    args.push('--memory', String(memoryLimitBytes), '--memory-swap', String(memoryLimitBytes));
  }
  if (limits.cpu !== undefined) args.push('--cpus', String(quantity(limits.cpu)));
  args.push('--stop-timeout', String(pod.terminationGracePeriodSeconds ?? 30));

  // Environment: what the kubelet always sets, then the container's own.
  const env: Record<string, string> = {
    KUBERNETES_SERVICE_HOST: inputs.apiServer.host,
    KUBERNETES_SERVICE_PORT: inputs.apiServer.port,
    ...containerEnv(deployment, container, inputs, inputs.name),
  };
  if (pod.enableServiceLinks !== false)
    throw new Error(`${where}: enableServiceLinks is on; the runner does not make service link variables`);
  for (const [key, value] of Object.entries(env)) args.push('--env', `${key}=${value}`);

  // Volumes.
  const volumes: Any[] = pod.volumes ?? [];
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.find((v) => v.name === mount.name);
    if (!volume) throw new Error(`${where}: volumeMount ${mount.name} names no volume`);
    if (mount.subPath)
      throw new Error(`${where}: volumeMount ${mount.name} uses subPath, which is not supported`);
    if (volume.emptyDir) {
      const size = volume.emptyDir.sizeLimit ? `,size=${quantity(volume.emptyDir.sizeLimit)}` : '';
      args.push('--tmpfs', `${mount.mountPath}:rw,mode=1777${size}`);
    } else if (volume.secret || volume.configMap) {
      const dir = inputs.volumeDirs[volume.name];
      if (!dir) throw new Error(`${where}: no files were written for volume ${volume.name}`);
      args.push('--volume', `${dir}:${mount.mountPath}:ro`);
    } else {
      throw new Error(`${where}: volume ${volume.name} is of a kind the runner does not support`);
    }
  }
  if (pod.automountServiceAccountToken !== false)
    args.push('--volume', `${inputs.serviceAccountDir}:${SERVICE_ACCOUNT_MOUNT}:ro`);

  // Command and args with Kubernetes' meaning: command replaces the image's ENTRYPOINT (and then
  // its CMD is not used), args replace its CMD. Only the first word can be the engine's
  // --entrypoint (docker takes one word), the rest goes after the image.
  const command: string[] | undefined = container.command?.map(String);
  const commandArgs: string[] = (container.args ?? []).map(String);
  for (const word of [...(command ?? []), ...commandArgs]) noExpansion(`${where} command`, word);
  if (command?.length) args.push('--entrypoint', command[0] as string);
  args.push(container.image, ...(command?.slice(1) ?? []), ...commandArgs);

  // Probes: their port by name or number.
  const portOf = (port: string | number): number => {
    if (typeof port === 'number') return port;
    const named = (container.ports ?? []).find((p: Any) => p.name === port);
    if (!named) throw new Error(`${where}: probe port ${port} names no container port`);
    return Number(named.containerPort);
  };
  const readiness = container.readinessProbe?.httpGet;
  const liveness = container.livenessProbe?.httpGet;
  if (!readiness || !liveness) throw new Error(`${where}: expected HTTP readiness and liveness probes`);
  if (portOf(readiness.port) !== portOf(liveness.port))
    throw new Error(`${where}: the probes use different ports`);
  return {
    args,
    port: portOf(readiness.port),
    readinessPath: readiness.path,
    livenessPath: liveness.path,
    uid,
    memoryLimitBytes,
  };
}

/**
 * `--add-host` arguments that make each rendered Service's in-cluster names resolve to this
 * machine, where (with host networking) the container behind it listens on the same port.
 */
export function serviceHosts(rendered: K8sObject[], namespace: string): string[] {
  const args: string[] = [];
  for (const service of rendered.filter((o) => o.kind === 'Service')) {
    const deployment = rendered.find(
      (o) =>
        o.kind === 'Deployment' &&
        Object.entries(service.spec.selector ?? {}).every(
          ([k, v]) => o.spec.template.metadata.labels?.[k] === v,
        ),
    );
    if (!deployment) continue;
    const container = deployment.spec.template.spec.containers[0];
    for (const port of service.spec.ports ?? []) {
      const target =
        typeof port.targetPort === 'number'
          ? port.targetPort
          : (container.ports ?? []).find((p: Any) => p.name === (port.targetPort ?? port.port))
              ?.containerPort;
      if (Number(target) !== Number(port.port))
        throw new Error(
          `Service ${service.metadata.name} maps port ${port.port} to ${target}; with host networking only equal ports can be reached`,
        );
    }
    const name = service.metadata.name;
    for (const host of [
      name,
      `${name}.${namespace}`,
      `${name}.${namespace}.svc`,
      `${name}.${namespace}.svc.cluster.local`,
    ])
      args.push('--add-host', `${host}:127.0.0.1`);
  }
  return args;
}
