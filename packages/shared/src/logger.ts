import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import { redactUrlCredentials } from './url-credentials.js';
import { isoTime } from './utc-time.js';

export type { Logger };

/**
 * Redacts credentials in URLs among an object's string fields, a few levels deep (log calls pass
 * small objects such as `{ url }` or `{ config }`); copies only what changes.
 */
function redactUrlFields<T>(value: T, depth = 0): T {
  if (typeof value === 'string') return (value.includes('@') ? redactUrlCredentials(value) : value) as T;
  if (depth > 3 || value === null || typeof value !== 'object' || value instanceof Error) return value;
  let copy: Record<string, unknown> | unknown[] | undefined;
  for (const [key, field] of Object.entries(value)) {
    const redacted = redactUrlFields(field, depth + 1);
    if (redacted === field) continue;
    copy ??= Array.isArray(value) ? [...value] : { ...(value as Record<string, unknown>) };
    (copy as Record<string, unknown>)[key] = redacted;
  }
  return (copy ?? value) as T;
}

/**
 * JSON logs on stdout. Fields that could carry credentials are redacted wherever they appear,
 * so a careless `log.info({ options })` cannot leak a NATS password or a bearer token, and
 * credentials in URLs (nats://user:password@host) are redacted from messages and string fields.
 */
export function createLogger(service: string, level = 'info', destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service },
    // pino.stdTimeFunctions.isoTime's text, without V8's Date formatting (utc-time.ts says why).
    timestamp: () => `,"time":"${isoTime()}"`,
    redact: {
      paths: [
        'pass',
        'password',
        'token',
        '*.pass',
        '*.password',
        '*.token',
        '*.authorization',
        '*.headers.authorization',
        'headers.authorization',
        'config.natsPassword',
        'config.NATS_PASSWORD',
        'config.ACTIVITY_TOKEN',
      ],
      censor: '[redacted]',
    },
    formatters: { level: (label) => ({ level: label }), log: redactUrlFields },
    hooks: {
      logMethod(args, method) {
        for (let i = 0; i < args.length; i++) {
          const arg = args[i];
          if (typeof arg === 'string') args[i] = redactUrlCredentials(arg);
        }
        return method.apply(this, args as Parameters<typeof method>);
      },
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
