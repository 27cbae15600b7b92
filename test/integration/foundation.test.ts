import { spawn } from 'node:child_process';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { API_GROUP, API_VERSION } from '@streamspace/shared';
import { apiCorpus, type CorpusObject } from '../../packages/shared/src/api-corpus.test-support.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, installCrds, kube, kubectl, repo } from './harness.js';

/** Issue 2: the CRDs in a real API server, the zod/CRD agreement, JetStream, and config errors. */

const k = kube();
let namespace: string;

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('foundation');
});
afterAll(() => deleteNamespace(namespace));

const plural = (object: CorpusObject) => (object.kind === 'Session' ? 'sessions' : 'templates');

async function create(object: CorpusObject) {
  return k.custom.createNamespacedCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    namespace,
    plural: plural(object),
    body: { ...object, metadata: { ...object.metadata, namespace } },
  });
}

describe('the CRDs in a real API server', () => {
  const valid = [...apiCorpus.sessions.valid, ...apiCorpus.templates.valid];
  const invalid = [...apiCorpus.sessions.invalid, ...apiCorpus.templates.invalid];

  it('has a corpus big enough to mean something', () => {
    expect(apiCorpus.sessions.valid.length).toBeGreaterThanOrEqual(15);
    expect(apiCorpus.sessions.invalid.length).toBeGreaterThanOrEqual(15);
    expect(apiCorpus.templates.valid.length).toBeGreaterThanOrEqual(15);
    expect(apiCorpus.templates.invalid.length).toBeGreaterThanOrEqual(15);
  });

  it.each(valid.map((c) => [c.description, c] as const))(
    'accepts and reads back: %s',
    async (_, testCase) => {
      await create(testCase.object);
      const read = (await k.custom.getNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace,
        plural: plural(testCase.object),
        name: testCase.object.metadata.name,
      })) as { spec: Record<string, unknown> };
      for (const [key, value] of Object.entries(
        (testCase.object as { spec: Record<string, unknown> }).spec,
      )) {
        if (typeof value !== 'object') expect(read.spec[key]).toEqual(value);
      }
    },
  );

  it.each(invalid.map((c) => [c.description, c] as const))(
    'refuses, naming the field: %s',
    async (_, testCase) => {
      const result = await kubectl(['apply', '-n', namespace, '-f', '-'], JSON.stringify(testCase.object));
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain(testCase.field);
    },
  );

  it('fills in the documented defaults', async () => {
    const name = 'defaults-check';
    await create({
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: 'Session',
      metadata: { name },
      spec: { user: 'zoe', template: 'firefox' },
    } as CorpusObject);
    const read = (await k.custom.getNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace,
      plural: 'sessions',
      name,
    })) as {
      spec: Record<string, unknown>;
    };
    expect(read.spec).toMatchObject({
      state: 'running',
      idleTimeout: '30m',
      maxSessionDuration: '8h',
      persistentHome: false,
    });
  });

  it('prints the Session columns in kubectl get ss, and kubectl explain helps', async () => {
    const table = await kubectl(['get', 'ss', '-n', namespace]);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+USER\s+TEMPLATE\s+STATE\s+PHASE\s+URL\s+AGE$/);
    const explained = await kubectl(['explain', 'session.spec.idleTimeout']);
    expect(explained.code).toBe(0);
    expect(explained.stdout).toMatch(/30m/);
    const templates = await kubectl(['get', 'tpl', '-n', namespace]);
    expect(templates.code).toBe(0);
  });
});

describe('the local cluster runs workloads', () => {
  it('takes a Deployment created with kubectl to READY 1/1 on a KWOK node', async () => {
    const created = await kubectl(['create', 'deployment', 'hello', '-n', namespace, '--image=nginx']);
    expect(created.code, created.stderr).toBe(0);
    const rollout = await kubectl([
      'rollout',
      'status',
      'deployment/hello',
      '-n',
      namespace,
      '--timeout=60s',
    ]);
    expect(rollout.code, rollout.stderr).toBe(0);
    const ready = await kubectl(['get', 'deployment', 'hello', '-n', namespace, '--no-headers']);
    expect(ready.stdout).toMatch(/^hello\s+1\/1\s/);
    const nodes = await kubectl(['get', 'nodes', '--no-headers']);
    expect(
      nodes.stdout
        .trim()
        .split('\n')
        .filter((line) => /\sReady\s/.test(line)).length,
    ).toBeGreaterThanOrEqual(3);
  });
});

describe('JetStream on the local nats-server', () => {
  it('publishes and consumes a message through a stream', async () => {
    const nc = await connect({ servers: process.env.NATS_URL as string });
    try {
      const jsm = await jetstreamManager(nc);
      const stream = `FOUNDATION_${Date.now()}`;
      await jsm.streams.add({ name: stream, subjects: [`foundation.${Date.now()}.>`] });
      const subject = (await jsm.streams.info(stream)).config.subjects[0]?.replace('>', 'hello') as string;
      const js = jetstream(nc);
      const ack = await js.publish(subject, JSON.stringify({ hello: 'world' }), { msgID: 'one' });
      const duplicate = await js.publish(subject, JSON.stringify({ hello: 'world' }), { msgID: 'one' });
      expect(duplicate.duplicate).toBe(true);
      await jsm.consumers.add(stream, { durable_name: 'reader', ack_policy: 'explicit' as never });
      const consumer = await js.consumers.get(stream, 'reader');
      const message = await consumer.next({ expires: 5_000 });
      expect(message?.seq).toBe(ack.seq);
      expect(message?.json()).toEqual({ hello: 'world' });
      message?.ack();
      await jsm.streams.delete(stream);
    } finally {
      await nc.close();
    }
  });
});

describe('configuration from the environment', () => {
  it.each([
    ['reconciler', { HTTP_PORT: '99999' }, 'HTTP_PORT'],
    ['reconciler', { NATS_URL: 'localhost' }, 'NATS_URL'],
    ['reconciler', { STARTUP_DEADLINE: '5 minutes' }, 'STARTUP_DEADLINE'],
    ['watcher', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
  ])('%s stops at start with a message naming the bad variable (%o)', async (service, env, variable) => {
    const child = spawn(process.execPath, [`${repo}/services/${service}/dist/main.js`], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toContain(`${variable}:`);
  });
});
