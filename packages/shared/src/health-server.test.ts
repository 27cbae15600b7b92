import { Counter, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { type HealthServer, startHealthServer } from './health-server.js';
import { Readiness } from './readiness.js';

let server: HealthServer | undefined;
afterEach(async () => server?.close());

describe('health server', () => {
  it('serves liveness, readiness with reasons, and metrics on loopback', async () => {
    const readiness = new Readiness();
    const registry = new Registry();
    new Counter({ name: 'test_things_total', help: 'things', registers: [registry] }).inc(3);
    readiness.register('nats', 'connecting to NATS');
    server = await startHealthServer({ host: '127.0.0.1', port: 0, readiness, registry });
    expect(server.address.address).toBe('127.0.0.1');
    const base = `http://127.0.0.1:${server.address.port}`;

    const before = Math.floor(Date.now() / 1000) * 1000;
    const live = await fetch(`${base}/healthz`);
    expect(live.status).toBe(200);
    // Its own Date header (utc-time.ts): an IMF-fixdate of the time of the response.
    const date = live.headers.get('date') ?? '';
    expect(date).toMatch(/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
    expect(Date.parse(date)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(date)).toBeLessThanOrEqual(Date.now());
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ ready: false, checks: { nats: { ok: false, reason: 'connecting to NATS' } } });
    readiness.set('nats', true);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${base}/metrics`)).text()).toContain('test_things_total 3');
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });
});
