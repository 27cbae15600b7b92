import { API_GROUP, API_VERSION, validateSession, validateTemplate } from '@streamspace/shared';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  installCrds,
  kube,
  ServiceProcess,
} from './harness.js';
import { type PrivateNats, startPrivateNats } from './private-nats.js';

/**
 * Issue 7, fuzzing the API: seeded, generated Sessions and Templates, each field valid or not,
 * sent to the real API server (server-side dry run). The API server and the zod schemas must
 * agree on every object; a refusal must name a field that zod names too. Then the accepted ones
 * are created for real and a watcher and a reconciler (on a private NATS) reconcile them all,
 * without either exiting or becoming unready. Replay with FC_SEED=<seed>.
 */

const SEED = Number(process.env.FC_SEED ?? Date.now() % 1_000_000);
const CASES = 40;
const k = kube();
let namespace: string;
let nats: PrivateNats;
let watcher: ServiceProcess;
let reconciler: ServiceProcess;

type Obj = { apiVersion: string; kind: string; metadata: { name: string }; spec: Record<string, unknown> };

/** A field that is valid most of the time and, sometimes, one of the ways to get it wrong. */
function field<T>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<unknown>): fc.Arbitrary<T | unknown> {
  return fc.oneof({ arbitrary: valid, weight: 9 }, { arbitrary: invalid, weight: 1 });
}
const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 3 });
const quantity = fc.constantFrom('250m', '500m', '1', '2', '512Mi', '1Gi', '4Gi');
const badQuantity = fc.constantFrom('1.5.5', 'lots', '2 GB', '-', 12.5, true);
const duration = fc.constantFrom('30m', '0', '45s', '1h30m', '8h', '2h15m10s');
const badDuration = fc.constantFrom('30 minutes', '-5m', '1.5h', '1d', 'forever', 30, '');

const sessionSpec = fc.record(
  {
    user: field(
      fc.oneof(fc.emailAddress(), fc.string({ minLength: 1, maxLength: 60 })),
      fc.constantFrom('', 'x'.repeat(300), 42),
    ),
    template: field(
      fc.constantFrom('missing-template', 't-0', 't-1', 't-2', 't-3'),
      fc.constantFrom('Bad_Name', '', '-x', 'a'.repeat(64)),
    ),
    state: optional(
      field(fc.constantFrom('running', 'hibernated', 'terminated'), fc.constantFrom('paused', 'Running', 1)),
    ),
    resources: optional(
      field(
        fc.record(
          { requests: fc.record({ cpu: quantity }), limits: fc.record({ memory: quantity }) },
          { requiredKeys: [] },
        ),
        fc.oneof(
          badQuantity.map((q) => ({ requests: { cpu: q } })),
          fc.constant({ requests: { cpu: '2' }, limits: { cpu: '1' } }),
          fc.constant('4 CPUs'),
        ),
      ),
    ),
    persistentHome: optional(field(fc.boolean(), fc.constantFrom('yes', 1))),
    idleTimeout: optional(field(duration, badDuration)),
    maxSessionDuration: optional(field(duration, badDuration)),
  },
  { requiredKeys: ['user', 'template'] },
);

const port = fc.record({
  name: fc.constantFrom('http', 'vnc', 'web-ui'),
  containerPort: fc.integer({ min: 1, max: 65535 }),
});
const templateSpec = fc.record(
  {
    displayName: field(fc.string({ minLength: 1, maxLength: 40 }), fc.constantFrom('', 7)),
    description: optional(fc.string({ maxLength: 80 })),
    baseImage: field(
      fc.constantFrom('lscr.io/linuxserver/firefox:latest', 'ghcr.io/example/desk@sha256:abc', 'nginx'),
      fc.constantFrom('bad image!', '', ':latest', ' spaced'),
    ),
    ports: optional(
      field(
        fc.uniqueArray(port, { minLength: 1, maxLength: 3, selector: (p) => p.name }).map((ps) => {
          const byPort = new Map<number, { name: string; containerPort: number }>();
          for (const p of ps) if (!byPort.has(p.containerPort)) byPort.set(p.containerPort, p);
          return [...byPort.values()];
        }),
        fc.constantFrom(
          [{ name: 'http', containerPort: 70000 }],
          [{ name: 'Bad_Name', containerPort: 80 }],
          [{ name: 'http', containerPort: 0 }],
        ),
      ),
    ),
    vncPort: field(fc.constant('first-port'), fc.constantFrom(5900, 0, 99999)),
    vncProtocol: optional(field(fc.constantFrom('rfb', 'websocket'), fc.constantFrom('vnc', 'http'))),
    capabilities: optional(
      field(
        fc.uniqueArray(fc.constantFrom('SYS_ADMIN', 'NET_ADMIN', 'SYS_PTRACE'), { maxLength: 2 }),
        fc.constantFrom(['cap_sys_admin'], ['CAP SYS']),
      ),
    ),
    shmSize: optional(field(fc.constantFrom('1Gi', '64Mi', '2Gi'), fc.constantFrom('-1Gi', 'lots'))),
    tags: optional(
      field(
        fc.uniqueArray(fc.constantFrom('browser', 'web', 'dev'), { maxLength: 3 }),
        fc.constantFrom(['Bad Tag'], ['UPPER']),
      ),
    ),
    homePath: optional(field(fc.constantFrom('/config', '/home/user'), fc.constantFrom('relative/path', ''))),
    volumeMounts: optional(
      field(
        fc.constant([{ name: 'cache', mountPath: '/cache' }]),
        fc.constantFrom([{ name: 'home', mountPath: '/h' }], [{ name: 'cache', mountPath: 'rel' }]),
      ),
    ),
  },
  { requiredKeys: ['displayName', 'baseImage', 'vncPort'] },
);

function sessionObject(i: number, spec: Record<string, unknown>, badName: boolean): Obj {
  return {
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: 'Session',
    metadata: { name: badName ? `Bad_Session_${i}` : `s-${i}` },
    spec: Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined)),
  };
}

function templateObject(i: number, generated: Record<string, unknown>, badName: boolean): Obj {
  const { vncPort, vncProtocol, ...rest } = generated;
  const ports = rest.ports as { containerPort: number }[] | undefined;
  const port =
    vncPort === 'first-port' ? (Array.isArray(ports) && ports[0] ? ports[0].containerPort : 3000) : vncPort;
  const spec = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
  spec.vnc = { port, ...(vncProtocol !== undefined ? { protocol: vncProtocol } : {}) };
  return {
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: 'Template',
    metadata: { name: badName ? `Bad.Template_${i}` : `t-${i}` },
    spec,
  };
}

const badNameFlags = fc.sample(
  fc.oneof({ arbitrary: fc.constant(false), weight: 15 }, { arbitrary: fc.constant(true), weight: 1 }),
  {
    numRuns: 2 * CASES,
    seed: SEED,
  },
);
const templates = fc
  .sample(templateSpec, { numRuns: CASES, seed: SEED })
  .map((spec, i) => templateObject(i, spec as Record<string, unknown>, badNameFlags[i] ?? false));
const sessions = fc
  .sample(sessionSpec, { numRuns: CASES, seed: SEED + 1 })
  .map((spec, i) => sessionObject(i, spec as Record<string, unknown>, badNameFlags[CASES + i] ?? false));

interface Verdict {
  object: Obj;
  accepted: boolean;
  message: string;
}

async function send(object: Obj, dryRun: boolean): Promise<Verdict> {
  try {
    await k.custom.createNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace,
      plural: object.kind === 'Session' ? 'sessions' : 'templates',
      body: object,
      ...(dryRun ? { dryRun: 'All' } : {}),
    });
    return { object, accepted: true, message: '' };
  } catch (error) {
    const body = (error as { body?: unknown }).body;
    const text = typeof body === 'string' ? body : JSON.stringify(body ?? String(error));
    let message = text;
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? text;
    } catch {
      // not JSON: keep the text
    }
    const code = (error as { code?: number }).code;
    if (code !== 422 && code !== 400) throw new Error(`unexpected API error ${code}: ${message}`);
    return { object, accepted: false, message };
  }
}

/** Each prefix of a zod path, longest first: `spec.ports[0].name`, `spec.ports[0]`, `spec.ports`, `spec`. */
function prefixes(path: string): string[] {
  const out: string[] = [];
  let rest = path;
  while (rest.length > 0) {
    out.push(rest);
    const cut = Math.max(rest.lastIndexOf('.'), rest.lastIndexOf('['));
    rest = cut > 0 ? rest.slice(0, cut) : '';
  }
  return out.filter((p) => p !== 'spec');
}

function checkAgreement(verdict: Verdict): void {
  const zod =
    verdict.object.kind === 'Session' ? validateSession(verdict.object) : validateTemplate(verdict.object);
  const what = `${verdict.object.kind} ${JSON.stringify(verdict.object)} (seed ${SEED})`;
  if (verdict.accepted) {
    expect(
      zod.ok,
      `API server accepted but zod refused ${what}: ${zod.ok ? '' : JSON.stringify(zod.issues)}`,
    ).toBe(true);
    return;
  }
  expect(zod.ok, `zod accepted but the API server refused ${what}: ${verdict.message}`).toBe(false);
  if (zod.ok) return;
  // The refusal names a field, and one that zod names (or the object holding it).
  const named = zod.issues.flatMap((issue) => prefixes(issue.path)).some((p) => verdict.message.includes(p));
  expect(
    named,
    `API message does not name a field zod names (${zod.issues.map((i) => i.path).join(', ')}): ${verdict.message}`,
  ).toBe(true);
}

beforeAll(async () => {
  await installCrds();
  namespace = await createNamespace('fuzz-api');
  nats = await startPrivateNats();
  const env = { NATS_URL: nats.url, WATCH_NAMESPACE: namespace };
  watcher = new ServiceProcess('watcher', { ...env, RESYNC_INTERVAL: '30s' });
  reconciler = new ServiceProcess('reconciler', {
    ...env,
    INGRESS_DOMAIN: 'desktops.test',
    STARTUP_DEADLINE: '20s',
  });
  await Promise.all([watcher.waitReady(45_000), reconciler.waitReady(45_000)]);
});

afterAll(async () => {
  await Promise.all([watcher?.stop(), reconciler?.stop()]);
  await nats?.stop();
  if (namespace) await deleteNamespace(namespace);
});

const verdicts: Verdict[] = [];

describe('generated Sessions and Templates against the real API server', () => {
  it('the API server and zod agree on every object, and refusals name the field', async () => {
    verdicts.push(...(await Promise.all([...templates, ...sessions].map((object) => send(object, true)))));
    for (const verdict of verdicts) checkAgreement(verdict);
    const tally = (kind: string, accepted: boolean) =>
      verdicts.filter((v) => v.object.kind === kind && v.accepted === accepted).length;
    console.log(
      `fuzz-api: seed ${SEED}; Templates ${tally('Template', true)} accepted / ${tally('Template', false)} refused; Sessions ${tally('Session', true)} accepted / ${tally('Session', false)} refused (server-side dry run, zod agreed on all)`,
    );
    // The generators must exercise both sides, or the property says little.
    for (const kind of ['Template', 'Session']) {
      expect(tally(kind, true)).toBeGreaterThan(5);
      expect(tally(kind, false)).toBeGreaterThan(3);
    }
  });

  it('reconciles every accepted object for real without a service exiting', async () => {
    const accepted = verdicts.filter((v) => v.accepted).map((v) => v.object);
    const create = async (objects: Obj[]) => {
      for (const verdict of await Promise.all(objects.map((o) => send(o, false))))
        expect(verdict.accepted, verdict.message).toBe(true);
    };
    await create(accepted.filter((o) => o.kind === 'Template'));
    const acceptedSessions = accepted.filter((o) => o.kind === 'Session');
    await create(acceptedSessions);
    // Every Session gets a status for its current generation: Running, Pending, Failed (a bad
    // image), Hibernated, Terminated, or a TemplateResolved=False condition when its Template is
    // missing or was refused.
    const phases = new Map<string, string>();
    await eventually(
      async () => {
        const list = (await k.custom.listNamespacedCustomObject({
          group: API_GROUP,
          version: API_VERSION,
          namespace,
          plural: 'sessions',
        })) as {
          items: {
            metadata: { name: string; generation: number };
            status?: { phase?: string; observedGeneration?: number };
          }[];
        };
        for (const item of list.items) {
          expect(
            item.status?.observedGeneration,
            `${item.metadata.name}: ${JSON.stringify(item.status)}`,
          ).toBe(item.metadata.generation);
          phases.set(item.metadata.name, item.status?.phase ?? '?');
        }
        expect(list.items.length).toBe(acceptedSessions.length);
        for (const s of [watcher, reconciler]) {
          expect(s.running, `${s.service} exited`).toBe(true);
        }
      },
      60_000,
      500,
    );
    for (const s of [watcher, reconciler]) {
      expect(s.running).toBe(true);
      expect((await s.get('/readyz')).status).toBe(200);
      expect(s.logs.some((l) => /"level":"(fatal)"/.test(l))).toBe(false);
    }
    const byPhase: Record<string, number> = {};
    for (const phase of phases.values()) byPhase[phase] = (byPhase[phase] ?? 0) + 1;
    console.log(
      `fuzz-api: ${acceptedSessions.length} accepted Sessions reconciled: ${JSON.stringify(byPhase)}`,
    );
  });
});
