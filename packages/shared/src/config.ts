import { z } from 'zod';
import { formatDuration, parseDuration } from './duration.js';
import { redactUrlCredentials } from './url-credentials.js';

/** Thrown when the environment does not describe a usable configuration; the message names every bad variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

// Values of variables with these words in their names are never echoed back in an error.
const SECRET_NAME = /PASS|TOKEN|SECRET|KEY|CREDS/i;

/**
 * Validates the environment against one zod object schema whose keys are the variable names.
 * The error lists each offending variable with what was wrong and the value that was given
 * (unless the variable holds a secret), so a person can fix the deployment without reading code.
 */
export function loadConfig<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  // An empty variable means "unset": Kubernetes manifests and shells often set FOO= to clear one.
  const cleaned: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined && value !== '') cleaned[key] = value;
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const variable = String(issue.path[0] ?? '(environment)');
    const given = cleaned[variable];
    // A URL may carry credentials (nats://user:password@host) even in a variable not named as a secret.
    const shown = given === undefined ? 'not set' : SECRET_NAME.test(variable) ? 'given value hidden' : `got '${redactUrlCredentials(given)}'`;
    return `  ${variable}: ${issue.message} (${shown})`;
  });
  throw new ConfigError(`invalid configuration in the environment:\n${lines.join('\n')}`);
}

/** Env helpers: readable messages for the common variable shapes. */
export const env = {
  port: (fallback: number) =>
    z.coerce
      .number({ message: 'must be a TCP port number' })
      .int('must be a whole number')
      .min(0, 'must be between 0 and 65535')
      .max(65535, 'must be between 0 and 65535')
      .default(fallback),
  positiveInt: (fallback: number) =>
    z.coerce.number({ message: 'must be a number' }).int('must be a whole number').positive('must be greater than 0').default(fallback),
  boolean: (fallback: boolean) =>
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: "must be 'true' or 'false'" })
      .transform((v) => v === 'true' || v === '1' || v === 'yes')
      .default(fallback),
  /**
   * A duration variable (`30s`, `5m`, `24h`) read as milliseconds, at least `minMs`; 0 as well
   * when `zeroAllowed` (a setting that 0 turns off).
   */
  durationMs: (fallback: string, minMs: number, zeroAllowed = false) =>
    z
      .string()
      .default(fallback)
      .transform((text, ctx) => {
        try {
          const ms = parseDuration(text);
          if (ms >= minMs || (zeroAllowed && ms === 0)) return ms;
          const zero = zeroAllowed ? ' (or 0 to disable)' : '';
          ctx.addIssue({ code: 'custom', message: `must be at least ${formatDuration(minMs)}${zero}` });
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: (error as Error).message });
        }
        return z.NEVER;
      }),
  logLevel: () =>
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      message: 'must be one of fatal, error, warn, info, debug, trace, silent',
    }).default('info'),
};
