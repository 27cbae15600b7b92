import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';
import { natsConnectionOptions, natsEnvSchema } from './nats-connection.js';
import { Readiness } from './readiness.js';
import { redactUrlCredentials, splitUrlCredentials } from './url-credentials.js';

describe('redactUrlCredentials', () => {
  it.each([
    ['nats://alice:s3cret@nats:4222', 'nats://[redacted]@nats:4222'],
    ['tls://token@nats.example:4443', 'tls://[redacted]@nats.example:4443'],
    ['nats://a:p1@n1:4222,nats://b:p2@n2:4222', 'nats://[redacted]@n1:4222,nats://[redacted]@n2:4222'],
    // An unescaped '@' in the password: everything up to the host is hidden.
    ['nats://u:p@ss@host:4222', 'nats://[redacted]@host:4222'],
    ['cannot connect to nats://u:pw@h:1: timeout', 'cannot connect to nats://[redacted]@h:1: timeout'],
  ])('hides the credentials of %s', (text, expected) => {
    const redacted = redactUrlCredentials(text);
    expect(redacted).toBe(expected);
    expect(redacted).not.toMatch(/s3cret|p1|p2|pw\b|p@ss|token@/);
  });

  it.each(['nats://nats:4222', 'mail alice@example.com about it', 'wss://host:443/path?x=a@b'])(
    'leaves %s unchanged',
    (text) => {
      expect(redactUrlCredentials(text)).toBe(text);
    },
  );
});

describe('credentials in NATS_URL', () => {
  it('never reach /readyz reasons', () => {
    const readiness = new Readiness();
    readiness.register('nats', 'connecting to nats://svc:hunter2hunter2@nats:4222');
    expect(JSON.stringify(readiness.snapshot())).not.toContain('hunter2');
    readiness.set('nats', false, 'cannot connect to nats://svc:hunter2hunter2@nats:4222: refused');
    expect(readiness.snapshot().nats?.reason).toBe('cannot connect to nats://[redacted]@nats:4222: refused');
  });

  it('never reach a configuration error', () => {
    let message = '';
    try {
      loadConfig(natsEnvSchema, { NATS_URL: 'nats://svc:hunter2hunter2@nats:4222,bogus' });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toMatch(/NATS_URL: must be one or more comma-separated URLs/);
    expect(message).toContain('nats://[redacted]@nats:4222');
    expect(message).not.toContain('hunter2');
  });
});

describe('splitUrlCredentials', () => {
  it('takes the user and password out of the URL', () => {
    expect(splitUrlCredentials('tls://streamspace-metrics:p%40ss@nats:4222')).toEqual({
      url: 'tls://nats:4222',
      user: 'streamspace-metrics',
      pass: 'p@ss',
    });
    expect(splitUrlCredentials(' nats://token@nats:4222')).toEqual({
      url: 'nats://nats:4222',
      user: 'token',
    });
    expect(splitUrlCredentials('nats://nats:4222')).toEqual({ url: 'nats://nats:4222' });
  });

  it('hands the client the URLs without credentials, and the credentials as user and password', async () => {
    const options = await natsConnectionOptions(
      { NATS_URL: 'nats://svc:hunter2hunter2@n1:4222, nats://n2:4222' },
      'test',
      'metrics',
    );
    expect(options).toMatchObject({
      servers: ['nats://n1:4222', 'nats://n2:4222'],
      user: 'svc',
      pass: 'hunter2hunter2',
      inboxPrefix: '_INBOX_metrics',
    });
  });
});
