import { z } from 'zod';

/**
 * Durations in the API (`spec.idleTimeout`, `spec.maxSessionDuration`) are written like Go
 * durations: one or more `<digits><unit>` parts, units in decreasing order `h`, `m`, `s`, `ms`
 * (`30m`, `8h`, `1h30m`, `45s`, `1m30s`, `500ms`), or `0` to disable. Each part has at most 9
 * digits, so every value fits a JavaScript safe integer of milliseconds. No sign, no fractions,
 * no spaces.
 *
 * DURATION_PATTERN is used verbatim by the zod schemas and by the CRDs' OpenAPI `pattern`, so
 * `kubectl apply` and the services accept exactly the same strings. It is written in the common
 * subset of ECMAScript and RE2 (Go) regular expressions: no look-around, no back-references.
 */
export const DURATION_PATTERN =
  '^(0|[0-9]{1,9}h([0-9]{1,9}m)?([0-9]{1,9}s)?([0-9]{1,9}ms)?|[0-9]{1,9}m([0-9]{1,9}s)?([0-9]{1,9}ms)?|[0-9]{1,9}s([0-9]{1,9}ms)?|[0-9]{1,9}ms)$';

/** Longest duration string the pattern admits; also the CRD `maxLength`. */
export const DURATION_MAX_LENGTH = 41;

const durationRegex = new RegExp(DURATION_PATTERN);
const partRegex = /([0-9]+)(h|ms|m|s)/g;

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };

/** The human hint shared by every duration error (zod issue, thrown error, CRD description). */
export const DURATION_HINT = 'use a number followed by h, m or s, e.g. 30m, 8h or 1h30m (0 disables)';

export function durationErrorMessage(text: string): string {
  return `invalid duration '${text}': ${DURATION_HINT}`;
}

export function isDuration(text: unknown): text is string {
  return typeof text === 'string' && text.length <= DURATION_MAX_LENGTH && durationRegex.test(text);
}

/**
 * Parses a duration such as `30m`, `8h`, `1h30m`, `45s`, `250ms` or `0` into milliseconds.
 * Throws an Error naming the text and the expected format for anything else
 * (`30 minutes`, `-5m`, `1.5h`, `''`).
 */
export function parseDuration(text: string): number {
  if (!isDuration(text)) throw new Error(durationErrorMessage(String(text)));
  if (text === '0') return 0;
  let total = 0;
  for (const match of text.matchAll(partRegex)) {
    total += Number(match[1]) * UNIT_MS[match[2]!]!;
  }
  return total;
}

/**
 * Formats milliseconds as the canonical duration string: `0s`, `45s`, `30m`, `1h30m`,
 * `1m30s500ms`. Fractions of a millisecond are rounded. The result always round-trips through
 * parseDuration (for values up to 999999999h).
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`cannot format duration ${ms}: expected a finite number of milliseconds >= 0`);
  }
  let rest = Math.round(ms);
  if (rest === 0) return '0s';
  let out = '';
  for (const unit of ['h', 'm', 's', 'ms'] as const) {
    const size = UNIT_MS[unit]!;
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (count > 0) out += `${count}${unit}`;
  }
  return out;
}

/** zod schema for a duration string (validated with DURATION_PATTERN). */
export const durationSchema = z
  .string()
  .max(DURATION_MAX_LENGTH, { error: `must be at most ${DURATION_MAX_LENGTH} characters` })
  .regex(durationRegex, { error: (issue) => durationErrorMessage(String(issue.input)) });
