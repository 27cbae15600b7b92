import { createLogger, subjects } from '@streamspace/shared';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ActivityIntake, activityTime, decodeNatsReport } from './activity-intake.js';
import { tokensMatch, bearerToken, TokenSource } from './bearer-token.js';
import { createReaperMetrics } from './reaper-metrics.js';

const NOW = Date.parse('2025-01-31T10:00:00Z');
const encode = (value: unknown) =>
  new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));

describe('activityTime', () => {
  const report = { namespace: 'ns', session: 's' };

  it('is the time of receipt when the report has none', () => {
    expect(activityTime(report, NOW, 2_000)).toEqual({ at: NOW, clampedFuture: false });
  });

  it('keeps a past timestamp', () => {
    expect(activityTime({ ...report, at: '2025-01-31T09:59:30Z' }, NOW, 2_000)).toEqual({
      at: NOW - 30_000,
      clampedFuture: false,
    });
  });

  it('clamps a future timestamp to the time of receipt, counting it only beyond the allowed skew', () => {
    expect(activityTime({ ...report, at: '2025-01-31T10:00:01Z' }, NOW, 2_000)).toEqual({
      at: NOW,
      clampedFuture: false,
    });
    expect(activityTime({ ...report, at: '2025-01-31T10:00:03Z' }, NOW, 2_000)).toEqual({
      at: NOW,
      clampedFuture: true,
    });
    expect(activityTime({ ...report, at: '2100-01-01T00:00:00Z' }, NOW, 2_000)).toEqual({
      at: NOW,
      clampedFuture: true,
    });
  });
});

describe('decodeNatsReport', () => {
  it('takes the session from the subject when the body is empty', () => {
    expect(decodeNatsReport('streamspace.activity.team-a.desk-1', new Uint8Array())).toEqual({
      ok: true,
      value: { namespace: 'team-a', session: 'desk-1' },
    });
  });

  it('accepts a body that agrees with its subject', () => {
    const body = { namespace: 'team-a', session: 'desk-1', at: '2025-01-31T09:00:00Z', source: 'vnc-proxy' };
    expect(decodeNatsReport('streamspace.activity.team-a.desk-1', encode(body))).toEqual({
      ok: true,
      value: body,
    });
  });

  it('reads a dotted Session name from its escaped subject token, with or without a body', () => {
    const subject = subjects.activity('team-a', 'alice.firefox');
    expect(decodeNatsReport(subject, new Uint8Array())).toEqual({
      ok: true,
      value: { namespace: 'team-a', session: 'alice.firefox' },
    });
    const body = { namespace: 'team-a', session: 'alice.firefox' };
    expect(decodeNatsReport(subject, encode(body))).toEqual({ ok: true, value: body });
  });

  it('refuses a body that names another session than its subject', () => {
    const decoded = decodeNatsReport(
      'streamspace.activity.team-a.desk-1',
      encode({ namespace: 'team-a', session: 'desk-2' }),
    );
    expect(decoded).toMatchObject({ ok: false, error: expect.stringContaining('team-a/desk-2') });
  });

  it('refuses malformed bodies and subjects with a reason', () => {
    expect(decodeNatsReport('streamspace.activity.a.b', encode('{not json'))).toMatchObject({
      ok: false,
      error: expect.stringContaining('not JSON'),
    });
    expect(
      decodeNatsReport('streamspace.activity.a.b', encode({ namespace: 'a', session: 'b', at: 'yesterday' })),
    ).toMatchObject({ ok: false, error: expect.stringContaining('at') });
    expect(decodeNatsReport('streamspace.activity.a', new Uint8Array())).toMatchObject({ ok: false });
    expect(decodeNatsReport('streamspace.activity.A_B.c', new Uint8Array())).toMatchObject({ ok: false });
  });
});

describe('decodeNatsReport for a tracked Session (without the schema)', () => {
  const subject = 'streamspace.activity.team-a.desk-1';
  const trusted = () => true;

  it('decodes exactly as the schema does, whatever the body', () => {
    const at = fc.oneof(
      fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }).map((d) => d.toISOString()),
      fc.constantFrom(
        '2025-01-31T09:00:00+02:00',
        '2025-02-30T09:00:00Z',
        '2025-01-31 09:00',
        'yesterday',
        '',
      ),
      fc.integer(),
      fc.constant(null),
    );
    const body = fc.record(
      {
        namespace: fc.constantFrom('team-a', 'team-b', 'Team-A', 5),
        session: fc.constantFrom('desk-1', 'desk-2', ''),
        at,
        source: fc.oneof(fc.string({ maxLength: 120 }), fc.integer()),
        extra: fc.string(),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(
        fc.oneof(
          body.map((b) => JSON.stringify(b)),
          fc.string(),
        ),
        (text) => {
          const data = encode(text);
          const quick = decodeNatsReport(subject, data, trusted);
          const bySchema = decodeNatsReport(subject, data);
          expect(quick.ok).toBe(bySchema.ok);
          if (quick.ok && bySchema.ok) expect(quick.value).toEqual(bySchema.value);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('takes the names from the subject for an empty body', () => {
    expect(decodeNatsReport(subject, new Uint8Array(), trusted)).toEqual({
      ok: true,
      value: { namespace: 'team-a', session: 'desk-1' },
    });
  });
});

describe('ActivityIntake', () => {
  function setup(
    known: boolean | undefined,
    store: (key: string, at: number) => Promise<boolean>,
    offer: (key: string, at: number) => boolean = () => {
      throw new Error('this test waits for every report');
    },
  ) {
    const registry = new Registry();
    const metrics = createReaperMetrics(registry);
    const intake = new ActivityIntake({
      log: createLogger('test', 'silent'),
      metrics,
      maxSkewMs: 2_000,
      isKnownSession: () => known,
      record: store,
      offer,
      now: () => NOW,
    });
    const count = async (source: string, result: string) =>
      (await registry.getSingleMetric('streamspace_reaper_activity_reports_total')!.get()).values.find(
        (v) => v.labels.source === source && v.labels.result === result,
      )?.value;
    return { intake, count, registry };
  }

  it('stores a report for a known session and counts it', async () => {
    const stored: [string, number][] = [];
    const { intake, count } = setup(true, async (key, at) => {
      stored.push([key, at]);
      return true;
    });
    expect(
      await intake.accept({ namespace: 'ns', session: 's', at: '2025-01-31T09:59:00Z' }, 'http'),
    ).toEqual({ result: 'accepted', at: NOW - 60_000 });
    expect(stored).toEqual([['ns.s', NOW - 60_000]]);
    expect(await count('http', 'accepted')).toBe(1);
    expect(await count('nats', 'accepted')).toBe(0);
  });

  it('queues a plain publish without waiting for the bucket, and counts a failure to queue', async () => {
    const offered: number[] = [];
    const { intake, count } = setup(
      true,
      async () => {
        throw new Error('must not wait');
      },
      (_key, at) => {
        offered.push(at);
        return offered.length === 1;
      },
    );
    expect((await intake.accept({ namespace: 'ns', session: 's' }, 'nats', false)).result).toBe('accepted');
    expect((await intake.accept({ namespace: 'ns', session: 's' }, 'nats', false)).result).toBe('stale');
    expect(offered).toEqual([NOW, NOW]);
    const down = setup(
      true,
      async () => true,
      () => {
        throw new Error('NATS is not connected yet');
      },
    );
    expect((await down.intake.accept({ namespace: 'ns', session: 's' }, 'nats', false)).result).toBe(
      'failed',
    );
    expect(await count('nats', 'accepted')).toBe(1);
  });

  it('calls an older report stale', async () => {
    const { intake } = setup(true, async () => false);
    expect((await intake.accept({ namespace: 'ns', session: 's' }, 'nats')).result).toBe('stale');
  });

  it('clamps and counts a report from the future', async () => {
    const stored: number[] = [];
    const { intake, count, registry } = setup(true, async (_k, at) => {
      stored.push(at);
      return true;
    });
    expect(
      (await intake.accept({ namespace: 'ns', session: 's', at: '2100-01-01T00:00:00Z' }, 'nats')).result,
    ).toBe('clamped_future');
    expect(stored).toEqual([NOW]);
    expect(await count('nats', 'clamped_future')).toBe(1);
    expect(
      (await registry.getSingleMetric('streamspace_reaper_future_timestamps_total')!.get()).values.find(
        (v) => v.labels.source === 'nats',
      )?.value,
    ).toBe(1);
  });

  it('drops reports for sessions that do not exist, once the list is known', async () => {
    let calls = 0;
    const { intake } = setup(false, async () => {
      calls++;
      return true;
    });
    expect((await intake.accept({ namespace: 'ns', session: 'ghost' }, 'http')).result).toBe(
      'unknown_session',
    );
    expect(calls).toBe(0);
  });

  it('keeps reports that arrive before the list is known', async () => {
    const { intake } = setup(undefined, async () => true);
    expect((await intake.accept({ namespace: 'ns', session: 'early' }, 'http')).result).toBe('accepted');
  });

  it('answers failed, without throwing, when the bucket cannot be written', async () => {
    const { intake, count } = setup(true, async () => {
      throw new Error('TIMEOUT');
    });
    expect(await intake.accept({ namespace: 'ns', session: 's' }, 'http')).toMatchObject({
      result: 'failed',
      error: expect.stringContaining('TIMEOUT'),
    });
    expect(await count('http', 'failed')).toBe(1);
  });
});

describe('bearer tokens', () => {
  it('reads the token of an Authorization header', () => {
    expect(bearerToken('Bearer abc.def')).toBe('abc.def');
    expect(bearerToken('bearer   xyz ')).toBe('xyz');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken('Bearer')).toBeUndefined();
  });

  it('compares tokens of any length', () => {
    expect(tokensMatch('secret-token-123', 'secret-token-123')).toBe(true);
    expect(tokensMatch('secret-token-12', 'secret-token-123')).toBe(false);
    expect(tokensMatch('', 'secret-token-123')).toBe(false);
  });

  it('verifies a header against the configured token, and refuses all when none is configured', async () => {
    const tokens = new TokenSource({ token: 'a-long-enough-token' });
    expect(await tokens.verify('Bearer a-long-enough-token')).toBe(true);
    expect(await tokens.verify('Bearer wrong')).toBe(false);
    expect(await tokens.verify(undefined)).toBe(false);
    expect(await new TokenSource({}).verify('Bearer anything')).toBe(false);
  });

  it('reads the token from a mounted Secret file and again when the Secret rotates', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reaper-token-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'token');
    writeFileSync(file, 'first-token-0123456789\n');
    const tokens = new TokenSource({ file, recheckMs: 0 });
    await tokens.load();
    expect(await tokens.verify('Bearer first-token-0123456789')).toBe(true);
    writeFileSync(file, 'second-token-0123456789');
    utimesSync(file, new Date(), new Date(Date.now() + 5_000));
    expect(await tokens.verify('Bearer second-token-0123456789')).toBe(true);
    expect(await tokens.verify('Bearer first-token-0123456789')).toBe(false);
    writeFileSync(file, '');
    await expect(new TokenSource({ file }).load()).rejects.toThrow('is empty');
  });
});
