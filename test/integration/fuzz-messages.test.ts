import { connect as tcpConnect } from 'node:net';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { API_GROUP, API_VERSION, STREAMS, streamConfigs, subjects } from '@streamspace/shared';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionObject, templateObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  installCrds,
  kube,
  kubectl,
  ServiceProcess,
} from './harness.js';
import { type PrivateNats, startPrivateNats } from './private-nats.js';

/**
 * Issue 7, fuzzing of the messages the services consume: malformed, truncated, oversized, wrongly
 * typed and binary payloads on every consumed subject (work items, change events, activity
 * reports, commands) and as POST /activity bodies. The services keep running and ready, count
 * and log each rejection, and valid traffic sent afterwards is still processed.
 */

const SEED = Number(process.env.FC_SEED ?? Date.now() % 1_000_000);
const TOKEN = 'fuzz-activity-token-0123456789';
const k = kube();
let namespace: string;
let nats: PrivateNats;
let nc: NatsConnection;
const services: Record<'watcher' | 'reconciler' | 'metrics' | 'reaper', ServiceProcess> = {} as never;

const encoder = new TextEncoder();

/** Hand-picked nasties, then seeded random ones; none can be a valid message of any kind. */
function payloads(validExample: Record<string, unknown>): Uint8Array[] {
  const valid = JSON.stringify(validExample);
  const fixed: (string | Uint8Array)[] = [
    '',
    ' ',
    'not json',
    '{',
    valid.slice(0, Math.floor(valid.length / 2)), // truncated
    valid.slice(0, -1),
    'null',
    '[]',
    '42',
    '"a string"',
    'true',
    '{}',
    JSON.stringify(Object.fromEntries(Object.keys(validExample).map((key) => [key, 12345]))), // wrongly typed
    JSON.stringify(Object.fromEntries(Object.keys(validExample).map((key) => [key, { nested: [key] }]))),
    JSON.stringify({ ...validExample, namespace: 'Not_A_Namespace!', name: '../../etc/passwd' }),
    JSON.stringify({ ...validExample, namespace: 'x'.repeat(500) }),
    `${'['.repeat(5_000)}${']'.repeat(5_000)}`, // deep nesting
    JSON.stringify({ __proto__: { polluted: true }, constructor: { prototype: { polluted: true } } }),
    JSON.stringify([validExample]),
    `${valid}garbage`,
    new Uint8Array([0xff, 0xfe, 0x00, 0x01, 0x80, 0x81, 0xc3, 0x28]), // binary, invalid UTF-8
    JSON.stringify({ big: 'x'.repeat(900_000) }), // large but under max_payload
  ];
  const random = fc.sample(
    fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 256 }),
      fc.json().map((j) => encoder.encode(j)),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 100 }).map((s) => encoder.encode(s)),
    ),
    { numRuns: 12, seed: SEED },
  );
  return [...fixed.map((p) => (typeof p === 'string' ? encoder.encode(p) : p)), ...random];
}

/** The sum of the samples of one metric whose labels include `labels`, from a /metrics page. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:]+)(\{([^}]*)\})? ([^ ]+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries(
      [...(match[3] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((m) => [m[1], m[2]] as [string, string]),
    );
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) total += Number(match[4]);
  }
  return total;
}

async function scrape(
  service: ServiceProcess,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const { status, body } = await service.get('/metrics');
  expect(status).toBe(200);
  return metric(body, name, labels);
}

async function expectAllHealthy(): Promise<void> {
  for (const service of Object.values(services)) {
    expect(service.running, `${service.service} exited:\n${service.logs.slice(-10).join('\n')}`).toBe(true);
    const ready = await service.get('/readyz');
    expect(ready.status, `${service.service} /readyz: ${ready.body}`).toBe(200);
  }
}

/** One subject per payload: the work stream keeps only the newest message of a subject (coalescing). */
function publishAll(subject: (i: number) => string, list: Uint8Array[]): void {
  for (const [i, payload] of list.entries()) nc.publish(subject(i), payload);
}

async function apply(object: object): Promise<void> {
  const result = await kubectl(['apply', '-f', '-'], JSON.stringify(object));
  if (result.code !== 0) throw new Error(`kubectl apply failed: ${result.stderr}`);
}

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('fuzz-msg');
  nats = await startPrivateNats();
  const env = { NATS_URL: nats.url, WATCH_NAMESPACE: namespace };
  services.watcher = new ServiceProcess('watcher', { ...env, RESYNC_INTERVAL: '30s' });
  services.reconciler = new ServiceProcess('reconciler', {
    ...env,
    INGRESS_DOMAIN: 'desktops.test',
    STARTUP_DEADLINE: '30s',
  });
  services.metrics = new ServiceProcess('metrics', env);
  services.reaper = new ServiceProcess('idle-reaper', { ...env, ACTIVITY_TOKEN: TOKEN });
  await Promise.all(Object.values(services).map((s) => s.waitReady(45_000)));
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.close();
  await Promise.all(Object.values(services).map((s) => s?.stop()));
  await nats?.stop();
  if (namespace) await deleteNamespace(namespace);
});

describe('malformed messages on every consumed subject', () => {
  it('rejects, logs and counts them, and every service stays up and ready', async () => {
    const now = new Date().toISOString();
    const work = payloads({ kind: 'session', namespace, name: 'x', reason: 'fuzz' });
    const events = payloads({
      type: 'modified',
      kind: 'session',
      namespace,
      name: 'x',
      uid: 'u',
      resourceVersion: '1',
      observedAt: now,
      object: {},
    });
    // An empty body on an activity subject is a valid report by design (the subject names the
    // session), so it is left out here.
    const activity = payloads({ namespace, session: 'x', at: now, source: 'fuzz' }).filter(
      (p) => p.length > 0,
    );
    const commands = payloads({
      action: 'hibernate',
      namespace,
      name: 'x',
      uid: 'u',
      reason: 'Idle',
      message: 'm',
      issuedBy: 'fuzz',
      issuedAt: now,
    });
    const before = {
      work: await scrape(services.reconciler, 'streamspace_reconciler_dead_letters_total', {
        reason: 'malformed',
      }),
      events: await scrape(services.metrics, 'streamspace_metrics_malformed_events_total'),
      activity: await scrape(services.reaper, 'streamspace_reaper_malformed_reports_total', {
        source: 'nats',
      }),
      commands: await scrape(services.reaper, 'streamspace_reaper_commands_handled_total', {
        result: 'malformed',
      }),
      http: await scrape(services.reaper, 'streamspace_reaper_malformed_reports_total', { source: 'http' }),
      unauthorized: await scrape(services.reaper, 'streamspace_reaper_unauthorized_requests_total'),
    };

    publishAll((i) => subjects.work('session', namespace, `fuzz-${i}`), work);
    publishAll((i) => subjects.work('template', namespace, `fuzz-${i}`), work.slice(0, 3));
    publishAll((i) => subjects.event('session', namespace, `fuzz-${i}`), events);
    publishAll((i) => subjects.activity(namespace, `fuzz-${i}`), activity);
    publishAll((i) => subjects.command('idle-reaper', namespace, `fuzz-${i}`), commands);
    await nc.flush();

    // POST /activity: malformed bodies with a valid token; then a body over the 16 KiB limit;
    // and one without a token (refused before the body is read).
    const post = (body: Uint8Array | string, token = TOKEN) =>
      fetch(`http://127.0.0.1:${services.reaper.port}/activity`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body,
      });
    const bodies = activity.filter((p) => p.length <= 16 * 1024);
    const statuses: number[] = [];
    for (const body of bodies) statuses.push((await post(body)).status);
    expect(new Set(statuses)).toEqual(new Set([400]));
    expect((await post('x'.repeat(64 * 1024))).status).toBe(413);
    expect((await post(JSON.stringify({ namespace, session: 'x' }), 'wrong-token-0123456789')).status).toBe(
      401,
    );

    // Messages over a stream's max_msg_size never reach a consumer: the stream refuses them.
    const fitting = (stream: string, payloads: Uint8Array[]) => {
      const max = streamConfigs().find((c) => c.name === stream)?.max_msg_size ?? -1;
      return payloads.filter((p) => max < 0 || p.length <= max).length;
    };
    expect(fitting(STREAMS.commands, commands)).toBeLessThan(commands.length);
    expect(fitting(STREAMS.work, work)).toBeLessThan(work.length);
    const expected = {
      work: before.work + fitting(STREAMS.work, work) + fitting(STREAMS.work, work.slice(0, 3)),
      events: before.events + fitting(STREAMS.events, events),
      activity: before.activity + activity.length,
      commands: before.commands + fitting(STREAMS.commands, commands),
      http: before.http + bodies.length + 1,
      unauthorized: before.unauthorized + 1,
    };
    await eventually(async () => {
      expect(
        await scrape(services.reconciler, 'streamspace_reconciler_dead_letters_total', {
          reason: 'malformed',
        }),
      ).toBe(expected.work);
      expect(await scrape(services.metrics, 'streamspace_metrics_malformed_events_total')).toBe(
        expected.events,
      );
      expect(
        await scrape(services.reaper, 'streamspace_reaper_malformed_reports_total', { source: 'nats' }),
      ).toBe(expected.activity);
      expect(
        await scrape(services.reaper, 'streamspace_reaper_commands_handled_total', { result: 'malformed' }),
      ).toBe(expected.commands);
      expect(
        await scrape(services.reaper, 'streamspace_reaper_malformed_reports_total', { source: 'http' }),
      ).toBe(expected.http);
      expect(await scrape(services.reaper, 'streamspace_reaper_unauthorized_requests_total')).toBe(
        expected.unauthorized,
      );
    }, 30_000);

    // Logged: one warning per rejection, in each consumer's own words.
    const count = (service: ServiceProcess, pattern: RegExp) =>
      service.logs.filter((l) => pattern.test(l)).length;
    expect(count(services.reconciler, /malformed work item/)).toBeGreaterThanOrEqual(
      expected.work - before.work,
    );
    expect(count(services.metrics, /change event that cannot be read/)).toBeGreaterThanOrEqual(
      expected.events - before.events,
    );
    expect(count(services.reaper, /malformed activity report rejected/)).toBeGreaterThanOrEqual(
      activity.length + bodies.length + 1,
    );
    expect(count(services.reaper, /malformed command dropped/)).toBeGreaterThanOrEqual(
      expected.commands - before.commands,
    );
    await expectAllHealthy();
    console.log(
      `fuzz-messages: seed ${SEED}; ${work.length + 3} work items, ${events.length} change events, ${activity.length} activity reports, ${commands.length} commands, ${bodies.length + 2} HTTP bodies rejected and counted`,
    );
  });

  it('refuses messages over max_payload (1 MiB) at the client and at the server', async () => {
    const big = new Uint8Array(1024 * 1024 + 1).fill(0x61);
    expect(() => nc.publish(subjects.work('session', namespace, 'huge'), big)).toThrow(/payload/i);
    // A raw client that ignores the limit: the server refuses the PUB header and drops the connection.
    const reply = await new Promise<string>((resolve, reject) => {
      const url = new URL(nats.url);
      const socket = tcpConnect(Number(url.port), url.hostname);
      let text = '';
      socket.on('data', (d) => {
        text += d.toString();
        if (text.startsWith('INFO') && !text.includes('sent')) {
          text += 'sent';
          socket.write('CONNECT {"verbose":false,"pedantic":false}\r\n');
          socket.write(`PUB ${subjects.command('idle-reaper', namespace, 'huge')} ${big.length}\r\n`);
        }
      });
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(text));
      setTimeout(() => {
        socket.destroy();
        reject(new Error(`no answer: ${text}`));
      }, 10_000);
    });
    expect(reply).toMatch(/-ERR 'Maximum Payload Violation'/);
    await expectAllHealthy();
    console.log('fuzz-messages: 1 MiB + 1 byte refused by the client library and by nats-server');
  });

  it('still processes valid traffic afterwards: a Session reaches Running and activity is accepted', async () => {
    await apply(templateObject(namespace, 'firefox', { displayName: 'Firefox' }));
    await apply(sessionObject(namespace, 'after-fuzz', 'alice@example.com', 'firefox'));
    await eventually(
      async () => {
        const s = (await k.custom.getNamespacedCustomObject({
          group: API_GROUP,
          version: API_VERSION,
          namespace,
          plural: 'sessions',
          name: 'after-fuzz',
        })) as { status?: { phase?: string } };
        expect(s.status?.phase).toBe('Running');
      },
      60_000,
      300,
    );
    const accepted = await scrape(services.reaper, 'streamspace_reaper_activity_reports_total', {
      source: 'nats',
      result: 'accepted',
    });
    await eventually(
      async () => {
        nc.publish(
          subjects.activity(namespace, 'after-fuzz'),
          JSON.stringify({ namespace, session: 'after-fuzz' }),
        );
        await nc.flush();
        expect(
          await scrape(services.reaper, 'streamspace_reaper_activity_reports_total', {
            source: 'nats',
            result: 'accepted',
          }),
        ).toBeGreaterThan(accepted);
      },
      20_000,
      500,
    );
    await expectAllHealthy();
    console.log(
      'fuzz-messages: a Session reached Running and an activity report was accepted after the fuzzing',
    );
  });
});
