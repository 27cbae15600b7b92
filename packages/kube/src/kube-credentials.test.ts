import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FakeApiServer, send } from './fake-api-server.test-support.js';
import { KubeClient } from './kube-client.js';
import { inClusterCredentials, loadCredentials, parseKubeconfig, tokenFile } from './kube-credentials.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kube-credentials-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const b64 = (text: string) => Buffer.from(text).toString('base64');

/**
 * A credential plugin as EKS, GKE and AKS kubeconfigs run one: it prints an ExecCredential.
 * This one counts its runs in a file, echoes what it was told in KUBERNETES_EXEC_INFO, and
 * gives a token that expires `EXPIRES_IN` seconds from now.
 */
function writePlugin(apiVersion: string): string {
  const path = write(
    'plugin.mjs',
    `#!/usr/bin/env node
import { appendFileSync } from 'node:fs';
const info = JSON.parse(process.env.KUBERNETES_EXEC_INFO);
appendFileSync(process.env.RUNS_FILE, 'run\\n');
const runs = (await import('node:fs')).readFileSync(process.env.RUNS_FILE, 'utf8').split('\\n').length - 1;
console.log(JSON.stringify({
  apiVersion: '${apiVersion}',
  kind: 'ExecCredential',
  status: {
    token: 'exec-token-' + runs + '-' + (info.spec.cluster ? info.spec.cluster.server : 'no-cluster') + '-' + process.argv[2],
    expirationTimestamp: new Date(Date.now() + Number(process.env.EXPIRES_IN) * 1000).toISOString(),
  },
}));
`,
  );
  chmodSync(path, 0o755);
  return path;
}

describe('kubeconfig', () => {
  it('merges every file of a KUBECONFIG list: the first to set a thing wins, paths are relative to their file', () => {
    write('ca.crt', 'CA FROM FILE');
    const first = write(
      'first.yaml',
      stringify({
        'current-context': 'work',
        contexts: [{ name: 'work', context: { cluster: 'prod', user: 'alice' } }],
        users: [{ name: 'alice', user: { tokenFile: 'alice.token' } }],
      }),
    );
    write('alice.token', 'alice-token\n');
    const second = write(
      'second.yaml',
      stringify({
        'current-context': 'ignored',
        clusters: [
          {
            name: 'prod',
            cluster: { server: 'https://prod.example:6443', 'certificate-authority': 'ca.crt' },
          },
          {
            name: 'dev',
            cluster: { server: 'https://dev.example', 'certificate-authority-data': b64('CA DATA') },
          },
        ],
        contexts: [
          { name: 'work', context: { cluster: 'dev', user: 'bob' } },
          { name: 'dev', context: { cluster: 'dev', user: 'bob' } },
        ],
        users: [
          { name: 'bob', user: { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') } },
        ],
      }),
    );
    const env = { KUBECONFIG: [join(dir, 'missing.yaml'), first, second].join(delimiter) };
    const work = loadCredentials(env);
    expect(work.server.href).toBe('https://prod.example:6443/');
    expect(work.ca?.toString()).toBe('CA FROM FILE');
    expect(work.token?.get()).toBe('alice-token');
    const dev = loadCredentials({ ...env, KUBE_CONTEXT: 'dev' });
    expect(dev.server.host).toBe('dev.example');
    expect(dev.ca?.toString()).toBe('CA DATA');
    expect(dev.cert?.toString()).toBe('CERT');
    expect(dev.key?.toString()).toBe('KEY');
    expect(() => loadCredentials({ ...env, KUBE_CONTEXT: 'nope' })).toThrow(/no context named 'nope'/);
  });

  it('says what to do when there is neither a kubeconfig nor a service account', () => {
    expect(() => loadCredentials({ KUBECONFIG: join(dir, 'none') })).toThrow(/set KUBECONFIG/);
  });

  const KUBECONFIG = {
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'kwok',
    clusters: [
      {
        name: 'kwok',
        cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': b64('CA') },
      },
    ],
    users: [
      { name: 'kwok', user: { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') } },
    ],
    contexts: [{ name: 'kwok', context: { cluster: 'kwok', user: 'kwok' } }],
  };

  it('reads a JSON kubeconfig (kubectl config view -o json) as its YAML twin, and YAML flow style and anchors as before', () => {
    const fromJson = loadCredentials({
      KUBECONFIG: write('config.json', JSON.stringify(KUBECONFIG, null, 4)),
    });
    const fromYaml = loadCredentials({ KUBECONFIG: write('config.yaml', stringify(KUBECONFIG)) });
    expect(fromJson).toEqual(fromYaml);
    expect(fromJson.server.href).toBe('https://127.0.0.1:6443/');
    expect(fromJson.cert?.toString()).toBe('CERT');
    expect(parseKubeconfig(JSON.stringify(KUBECONFIG))).toEqual(KUBECONFIG);
    // YAML that is not JSON: flow mappings with plain scalars, an anchor and its alias.
    expect(parseKubeconfig('users: [{name: a, user: &u {token: t}}, {name: b, user: *u}]')).toEqual({
      users: [
        { name: 'a', user: { token: 't' } },
        { name: 'b', user: { token: 't' } },
      ],
    });
    expect(parseKubeconfig('')).toBeNull();
    expect(() => parseKubeconfig('clusters: [')).toThrow();
  });

  it('loads the yaml package only for a kubeconfig that is not JSON', () => {
    // In a fresh node, on the built module (a child process runs JavaScript): which modules of
    // the yaml package are loaded after reading each kind of kubeconfig.
    const kube = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    expect(existsSync(kube), `${kube} missing: run pnpm build`).toBe(true);
    const yamlLoadedAfter = (file: string): boolean => {
      const script = `
        const { createRequire } = await import('node:module');
        const { loadCredentials } = await import(${JSON.stringify(kube)});
        loadCredentials({ KUBECONFIG: ${JSON.stringify(file)} });
        const cache = Object.keys(createRequire(import.meta.url).cache);
        process.stdout.write(String(cache.some((p) => /[\\/]yaml[\\/]dist[\\/]/.test(p))));`;
      return (
        execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }) === 'true'
      );
    };
    expect(yamlLoadedAfter(write('config.json', JSON.stringify(KUBECONFIG)))).toBe(false);
    expect(yamlLoadedAfter(write('config.yaml', stringify(KUBECONFIG)))).toBe(true);
  });
});

describe('exec credential plugins', () => {
  let api: FakeApiServer;
  beforeEach(async () => {
    api = await FakeApiServer.start((_q, r) => send(r, 200, {}));
  });
  afterEach(() => api.close());

  function kubeconfig(apiVersion: string, expiresIn: number): NodeJS.ProcessEnv {
    writePlugin(apiVersion);
    const path = write(
      'config',
      stringify({
        'current-context': 'eks',
        clusters: [{ name: 'c', cluster: { server: api.url.href } }],
        contexts: [{ name: 'eks', context: { cluster: 'c', user: 'u' } }],
        users: [
          {
            name: 'u',
            user: {
              exec: {
                apiVersion,
                command: './plugin.mjs',
                args: ['arg1'],
                env: [
                  { name: 'RUNS_FILE', value: join(dir, 'runs') },
                  { name: 'EXPIRES_IN', value: String(expiresIn) },
                ],
                provideClusterInfo: true,
                interactiveMode: 'Never',
              },
            },
          },
        ],
      }),
    );
    return { KUBECONFIG: path };
  }
  const runs = () => readFileSync(join(dir, 'runs'), 'utf8').split('\n').length - 1;

  for (const apiVersion of ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1']) {
    it(`runs a ${apiVersion.split('/')[1]} plugin once and reuses its token until it expires`, async () => {
      const kube = KubeClient.fromEnvironment({}, kubeconfig(apiVersion, 3600));
      await Promise.all([
        kube.get({ version: 'v1', plural: 'pods' }),
        kube.get({ version: 'v1', plural: 'pods' }),
      ]);
      await kube.get({ version: 'v1', plural: 'pods' });
      expect(runs()).toBe(1);
      expect(new Set(api.requests.map((q) => q.headers.authorization))).toEqual(
        new Set([`Bearer exec-token-1-${api.url.href}-arg1`]),
      );
    });
  }

  it('runs the plugin again for a token about to expire, and after a 401', async () => {
    // Expires in 5 s: inside the margin, so every request asks for a fresh one.
    const kube = KubeClient.fromEnvironment({}, kubeconfig('client.authentication.k8s.io/v1', 5));
    await kube.get({ version: 'v1', plural: 'pods' });
    await kube.get({ version: 'v1', plural: 'pods' });
    expect(runs()).toBe(2);
    const longLived = KubeClient.fromEnvironment({}, kubeconfig('client.authentication.k8s.io/v1', 3600));
    api.handler = (q, r) =>
      q.headers.authorization?.startsWith('Bearer exec-token-3-')
        ? send(r, 401, { message: 'expired' })
        : send(r, 200, {});
    await longLived.get({ version: 'v1', plural: 'pods' });
    expect(runs()).toBe(4);
    expect(api.requests.at(-1)?.headers.authorization).toMatch(/^Bearer exec-token-4-/);
  });

  it('refuses a plugin of an apiVersion Kubernetes no longer supports', () => {
    expect(() => loadCredentials(kubeconfig('client.authentication.k8s.io/v1alpha1', 60))).toThrow(
      /supported: /,
    );
  });
});

describe('the service account of a pod', () => {
  it('reads the token again when it may have been rotated', () => {
    write('ca.crt', 'CLUSTER CA');
    const token = write('token', 'first');
    const credentials = inClusterCredentials(
      { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' },
      dir,
    );
    expect(credentials.server.host).toBe('[fd00::1]');
    expect(credentials.ca?.toString()).toBe('CLUSTER CA');
    expect(credentials.token?.get()).toBe('first');
    writeFileSync(token, 'rotated');
    credentials.token?.invalidate();
    expect(credentials.token?.get()).toBe('rotated');
  });

  it('re-reads a token file once a minute without being asked', () => {
    const path = write('token', 'one');
    let now = 0;
    const source = tokenFile(path, () => now);
    expect(source.get()).toBe('one');
    writeFileSync(path, 'two');
    now = 59_000;
    expect(source.get()).toBe('one');
    now = 60_000;
    expect(source.get()).toBe('two');
  });
});
