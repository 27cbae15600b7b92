import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { ConfigError, env, loadConfig } from './config.js';

const schema = z.object({
  HTTP_PORT: env.port(8080),
  WORKERS: env.positiveInt(4),
  VERBOSE: env.boolean(false),
  NATS_PASSWORD: z.string().min(8, 'must be at least 8 characters'),
});

describe('loadConfig', () => {
  it('applies defaults and coerces values', () => {
    expect(loadConfig(schema, { NATS_PASSWORD: 'longenough', VERBOSE: 'yes' })).toEqual({ HTTP_PORT: 8080, WORKERS: 4, VERBOSE: true, NATS_PASSWORD: 'longenough' });
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig(schema, { NATS_PASSWORD: 'longenough', HTTP_PORT: '' }).HTTP_PORT).toBe(8080);
  });

  it('names every bad variable and what it got', () => {
    const error = (() => {
      try {
        loadConfig(schema, { HTTP_PORT: '99999', WORKERS: 'many', NATS_PASSWORD: 'short' });
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('expected a ConfigError');
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain("HTTP_PORT: must be between 0 and 65535 (got '99999')");
    expect(error.message).toContain("WORKERS: must be a number (got 'many')");
    expect(error.message).toContain('NATS_PASSWORD: must be at least 8 characters (given value hidden)');
    expect(error.message).not.toContain('short');
  });

  it('says when a required variable is missing', () => {
    expect(() => loadConfig(schema, {})).toThrow(/NATS_PASSWORD: .*\(not set\)/);
  });
});

describe('env.durationMs', () => {
  const durations = z.object({ TTL: env.durationMs('1s', 1_000), RESYNC: env.durationMs('30m', 1_000, true) });

  it('reads durations as milliseconds, with their defaults', () => {
    expect(loadConfig(durations, {})).toEqual({ TTL: 1_000, RESYNC: 1_800_000 });
    expect(loadConfig(durations, { TTL: '1m30s', RESYNC: '0' })).toEqual({ TTL: 90_000, RESYNC: 0 });
  });

  it('refuses one below its minimum, and 0 where nothing may be turned off', () => {
    expect(() => loadConfig(durations, { TTL: '999ms' })).toThrow(/TTL: must be at least 1s \(got '999ms'\)/);
    expect(() => loadConfig(durations, { TTL: '0' })).toThrow(/TTL: must be at least 1s \(got '0'\)/);
    expect(() => loadConfig(durations, { RESYNC: '500ms' })).toThrow(/RESYNC: must be at least 1s \(or 0 to disable\)/);
    expect(() => loadConfig(durations, { TTL: '5 minutes' })).toThrow(/TTL: invalid duration '5 minutes'/);
  });
});
