import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON logs on stdout. Fields that could carry credentials are redacted wherever they appear,
 * so a careless `log.info({ options })` cannot leak a NATS password or a bearer token.
 */
export function createLogger(service: string, level = 'info'): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
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
    formatters: { level: (label) => ({ level: label }) },
  });
}
