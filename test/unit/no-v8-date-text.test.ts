import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The services format timestamps with isoTime and httpDate (packages/shared/src/utc-time.ts), never
 * with V8's Date-to-text methods: the first call of any of those maps ~0.8 MiB of ICU's time zone
 * data and code into the process for good (utc-time.ts says more). The activity agent is not
 * checked: it runs on Node's built-ins alone and does not depend on @streamspace/shared.
 */
const repo = join(import.meta.dirname, '..', '..');
const EXEMPT = new Set(['packages/shared/src/utc-time.ts']);

function v8DateText(source: string): string[] {
  const pattern =
    /\.(toISOString|toUTCString|toGMTString|toDateString|toTimeString|toLocale(?:Date|Time)?String)\s*\(|stdTimeFunctions\.isoTime/g;
  return source
    .split('\n')
    .filter((line) => !/^\s*(\/\/|\*|\/\*)/.test(line))
    .flatMap((line) => [...line.matchAll(pattern)].map((m) => m[0]));
}

function serviceSources(): string[] {
  const files: string[] = [];
  for (const group of ['packages', 'services']) {
    for (const pkg of readdirSync(join(repo, group))) {
      if (group === 'services' && pkg === 'activity-agent') continue;
      const src = join(group, pkg, 'src');
      for (const file of readdirSync(join(repo, src), { recursive: true, encoding: 'utf8' }))
        if (/\.ts$/.test(file) && !/\.test\.ts$|test-support/.test(file)) files.push(join(src, file));
    }
  }
  return files;
}

describe("V8's Date-to-text methods stay out of the running services", () => {
  it('recognises a call of each, and not a comment about one', () => {
    expect(v8DateText('const at = new Date(ms).toISOString();')).toEqual(['.toISOString(']);
    expect(v8DateText("res.setHeader('date', new Date().toUTCString())")).toEqual(['.toUTCString(']);
    expect(v8DateText('now.toLocaleTimeString ()')).toEqual(['.toLocaleTimeString (']);
    expect(v8DateText('timestamp: pino.stdTimeFunctions.isoTime,')).toEqual(['stdTimeFunctions.isoTime']);
    expect(v8DateText(' * exactly what `toISOString()` returns')).toEqual([]);
    expect(v8DateText('const at = isoTime(ms);')).toEqual([]);
  });

  it('is called by no source file of the services and their packages', () => {
    const files = serviceSources();
    expect(files.length).toBeGreaterThan(50);
    const offenders = files
      .filter((file) => !EXEMPT.has(file))
      .flatMap((file) =>
        v8DateText(readFileSync(join(repo, file), 'utf8')).map((call) => `${file}: ${call}`),
      );
    expect(offenders).toEqual([]);
  });
});
