import { describe, expect, it } from 'vitest';
import type { K8sObject } from '../../test/integration/helm.js';
import {
  type PodInputs,
  podContainer,
  quantity,
  serviceHosts,
} from '../../test/integration/pod-container.js';

/**
 * The image test runs each service as the chart renders its pod; these check the translation of
 * a rendered Deployment into `podman run` / `docker run` arguments on small pods, including that
 * what it cannot reproduce is refused by name rather than left out.
 */

// biome-ignore lint/suspicious/noExplicitAny: test pods are written as plain objects
function deployment(container: any = {}, pod: any = {}): K8sObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'r-streamspace-watcher', namespace: 'ns' },
    spec: {
      template: {
        metadata: { labels: { app: 'watcher' } },
        spec: {
          serviceAccountName: 'r-streamspace-watcher',
          enableServiceLinks: false,
          securityContext: { runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, runAsNonRoot: true },
          containers: [
            {
              name: 'watcher',
              image: 'localhost/streamspace:test',
              args: ['watcher'],
              ports: [{ name: 'http', containerPort: 8081 }],
              readinessProbe: { httpGet: { path: '/readyz', port: 'http' } },
              livenessProbe: { httpGet: { path: '/healthz', port: 'http' } },
              ...container,
            },
          ],
          ...pod,
        },
      },
    },
  };
}

const configMap: K8sObject = {
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'r-streamspace-watcher' },
  data: { HTTP_PORT: '8081', LOG_LEVEL: 'info' },
};

function inputs(overrides: Partial<PodInputs> = {}): PodInputs {
  return {
    engine: 'podman',
    rendered: [configMap],
    secrets: { nats: { password: 's3cret' } },
    serviceAccountDir: '/tmp/sa',
    apiServer: { host: '127.0.0.1', port: '6443' },
    volumeDirs: {},
    name: 'c',
    hosts: [],
    ...overrides,
  };
}

/** The value after each occurrence of a flag. */
const values = (args: string[], flag: string) =>
  args.flatMap((a, i) => (a === flag ? [args[i + 1] as string] : []));

describe('a rendered pod as container arguments', () => {
  it('gives Kubernetes’ meaning to command and args: the first word of command is the entrypoint, the rest follows the image', () => {
    const { args } = podContainer(
      deployment({ command: ['node', '--lite-mode', '/app/entrypoint.mjs'], args: ['idle-reaper'] }),
      inputs(),
    );
    expect(values(args, '--entrypoint')).toEqual(['node']);
    expect(args.slice(args.indexOf('localhost/streamspace:test'))).toEqual([
      'localhost/streamspace:test',
      '--lite-mode',
      '/app/entrypoint.mjs',
      'idle-reaper',
    ]);
    // Without a command the image's ENTRYPOINT stays and args replace its CMD.
    const plain = podContainer(deployment(), inputs()).args;
    expect(plain).not.toContain('--entrypoint');
    expect(plain.slice(-2)).toEqual(['localhost/streamspace:test', 'watcher']);
  });

  it('builds the environment as the kubelet does: API server, envFrom, then env (which wins), secrets resolved', () => {
    const { args } = podContainer(
      deployment({
        envFrom: [{ configMapRef: { name: 'r-streamspace-watcher' } }],
        env: [
          { name: 'LOG_LEVEL', value: 'debug' },
          { name: 'NATS_PASSWORD', valueFrom: { secretKeyRef: { name: 'nats', key: 'password' } } },
          { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
        ],
      }),
      inputs(),
    );
    const env = Object.fromEntries(values(args, '--env').map((e) => e.split(/=(.*)/s).slice(0, 2)));
    expect(env).toEqual({
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: '6443',
      HTTP_PORT: '8081',
      LOG_LEVEL: 'debug',
      NATS_PASSWORD: 's3cret',
      POD_NAMESPACE: 'ns',
    });
  });

  it('applies the security context, the memory limit (no swap), the emptyDir and the ServiceAccount mount', () => {
    const { args, port, uid, memoryLimitBytes } = podContainer(
      deployment(
        {
          resources: { limits: { memory: '100Mi' } },
          securityContext: {
            readOnlyRootFilesystem: true,
            allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] },
          },
          volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
        },
        { volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '16Mi' } }] },
      ),
      inputs(),
    );
    expect(values(args, '--user')).toEqual(['1000:1000']);
    expect(values(args, '--group-add')).toEqual(['1000']);
    expect(args).toContain('--read-only');
    expect(args).toContain('--read-only-tmpfs=false');
    expect(values(args, '--cap-drop')).toEqual(['ALL']);
    expect(values(args, '--security-opt')).toEqual(['no-new-privileges']);
    expect(values(args, '--memory')).toEqual(['104857600']);
    expect(values(args, '--memory-swap')).toEqual(['104857600']);
    expect(values(args, '--tmpfs')).toEqual(['/tmp:rw,mode=1777,size=16777216']);
    expect(values(args, '--volume')).toEqual(['/tmp/sa:/var/run/secrets/kubernetes.io/serviceaccount:ro']);
    expect({ port, uid, memoryLimitBytes }).toEqual({ port: 8081, uid: 1000, memoryLimitBytes: 104857600 });
    // docker has no --read-only-tmpfs (and adds no tmpfs to a read-only container).
    const docker = podContainer(
      deployment({ securityContext: { readOnlyRootFilesystem: true } }),
      inputs({ engine: 'docker' }),
    );
    expect(docker.args).toContain('--read-only');
    expect(docker.args).not.toContain('--read-only-tmpfs=false');
    // automountServiceAccountToken: false mounts no token.
    const noToken = podContainer(deployment({}, { automountServiceAccountToken: false }), inputs());
    expect(values(noToken.args, '--volume')).toEqual([]);
  });

  it('refuses, by name, what it cannot reproduce', () => {
    expect(() =>
      podContainer(
        deployment(
          { volumeMounts: [{ name: 'h', mountPath: '/h' }] },
          { volumes: [{ name: 'h', hostPath: { path: '/' } }] },
        ),
        inputs(),
      ),
    ).toThrow(/volume h is of a kind the runner does not support/);
    expect(() => podContainer(deployment({ env: [{ name: 'A', value: '$(B)/x' }] }), inputs())).toThrow(
      /\$\(VAR\) expansion/,
    );
    expect(() =>
      podContainer(
        deployment({ env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 'absent', key: 'k' } } }] }),
        inputs(),
      ),
    ).toThrow(/env P names absent\/k, which does not exist/);
    expect(() => podContainer(deployment({}, { securityContext: {} }), inputs())).toThrow(/no runAsUser/);
    expect(() => podContainer(deployment({}, { enableServiceLinks: true }), inputs())).toThrow(
      /enableServiceLinks/,
    );
  });

  it('resolves a rendered Service’s in-cluster names to this machine only where its port is the container’s', () => {
    const service = (port: number): K8sObject => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'r-streamspace-watcher' },
      spec: { selector: { app: 'watcher' }, ports: [{ name: 'http', port, targetPort: 'http' }] },
    });
    expect(serviceHosts([deployment(), service(8081)], 'ns')).toEqual([
      '--add-host',
      'r-streamspace-watcher:127.0.0.1',
      '--add-host',
      'r-streamspace-watcher.ns:127.0.0.1',
      '--add-host',
      'r-streamspace-watcher.ns.svc:127.0.0.1',
      '--add-host',
      'r-streamspace-watcher.ns.svc.cluster.local:127.0.0.1',
    ]);
    expect(() => serviceHosts([deployment(), service(80)], 'ns')).toThrow(/maps port 80 to 8081/);
  });

  it('reads Kubernetes quantities', () => {
    expect([quantity('100Mi'), quantity('1G'), quantity('500m'), quantity(16)]).toEqual([
      104857600, 1e9, 0.5, 16,
    ]);
    expect(() => quantity('lots')).toThrow(/cannot read the quantity 'lots'/);
  });
});
