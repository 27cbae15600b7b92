import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

/**
 * Two of our dependency patches (why: pnpm-workspace.yaml) that only save memory, so nothing else
 * fails when an upgrade drops them.
 */
const require = createRequire(import.meta.url);

/** Runs CommonJS code in a fresh node (this package's dependencies resolvable) and returns its output. */
function inFreshNode(code: string): string {
  return execFileSync(process.execPath, ['-e', code], { cwd: import.meta.dirname, encoding: 'utf8' });
}

describe('the prom-client patch', () => {
  it('loads @opentelemetry/api only for exemplars, which still work', () => {
    // Exemplars need an OpenMetrics registry.
    const loaded = (exemplars: boolean) =>
      inFreshNode(`
        const client = require('prom-client');
        const registry = new client.Registry(${exemplars ? 'client.Registry.OPENMETRICS_CONTENT_TYPE' : ''});
        client.collectDefaultMetrics({ register: registry, enableExemplars: ${exemplars} });
        registry.metrics().then((text) => {
          const otel = Object.keys(require.cache).some((p) => p.includes('@opentelemetry'));
          process.stdout.write(JSON.stringify({ otel, cpu: /^process_cpu_seconds_total/m.test(text) }));
        });`);
    expect(JSON.parse(loaded(false))).toEqual({ otel: false, cpu: true });
    expect(JSON.parse(loaded(true))).toEqual({ otel: true, cpu: true });
  });
});

describe('the zod patch', () => {
  it("leaves no character above U+00FF in zod's ES modules but its locales (so V8 stores their text one byte a character)", () => {
    const v4 = join(dirname(require.resolve('zod/package.json')), 'v4');
    const files = readdirSync(v4, { recursive: true, encoding: 'utf8' }).filter(
      (f) => f.endsWith('.js') && !f.startsWith('locales'),
    );
    expect(files.length).toBeGreaterThan(30);
    const wide = files.filter((f) => /[\u0100-\uffff]/.test(readFileSync(join(v4, f), 'utf8')));
    expect(wide).toEqual([]);
  });

  it('keeps what the escaped characters meant: prettifyError still marks issues with ✖ and →', () => {
    const result = z.object({ name: z.string() }).safeParse({ name: 1 });
    expect(result.success).toBe(false);
    expect(z.prettifyError((result as { error: z.ZodError }).error)).toBe(
      '✖ Invalid input: expected string, received number\n  → at name',
    );
  });
});
