import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, log: createLogger('test', 'debug', stream) };
}

describe('createLogger', () => {
  it('redacts credentials in URLs from messages and fields, however deep', () => {
    const { lines, log } = capture();
    const url = 'nats://streamspace-watcher:hunter2hunter2@nats:4222';
    log.warn({ url, err: `cannot connect to ${url}` }, `connection to ${url} failed`);
    log.info({ config: { NATS_URL: url, nested: [url] } }, 'starting');
    log.info(`plain ${url}`);
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      expect(line).not.toContain('hunter2');
      expect(line).toContain('nats://[redacted]@nats:4222');
    }
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      url: 'nats://[redacted]@nats:4222',
      msg: 'connection to nats://[redacted]@nats:4222 failed',
    });
  });

  it('still censors password and token fields', () => {
    const { lines, log } = capture();
    log.info({ password: 'hunter2hunter2', options: { pass: 'hunter2hunter2', token: 'abc' } }, 'x');
    expect(lines[0]).not.toContain('hunter2');
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      password: '[redacted]',
      options: { pass: '[redacted]' },
    });
  });

  it('stamps each line with its time in ISO 8601 UTC, as pino.stdTimeFunctions.isoTime does', () => {
    const { lines, log } = capture();
    const before = Date.now();
    log.info('x');
    const { time } = JSON.parse(lines[0] as string) as { time: string };
    expect(time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(Date.parse(time)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(time)).toBeLessThanOrEqual(Date.now());
  });
});
