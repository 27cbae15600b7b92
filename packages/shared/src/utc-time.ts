/**
 * Timestamps as text, formatted from a Date's UTC fields instead of by V8.
 *
 * Why not `Date.prototype.toISOString`: V8 turns a Date into text (toISOString, toUTCString,
 * toString, JSON.stringify of a Date) through one routine that also looks up the local time zone's
 * display name, even for a format that does not print it. On its first call ICU maps its time zone
 * names and metazone tables, and the code that reads them, from the node binary, and they stay
 * resident for the life of the process. Measured on a bare node with the workers' flags: one
 * `toISOString()` made 0.88 MiB more of /usr/bin/node resident (0.62 of ICU data, 0.20 of ICU
 * code), the UTC getters none of it; an idle watcher and an idle worker each held 0.81 MiB less of
 * it with these (BENCHMARKS.md, runs M4-M6). Node's HTTP server does the same for the `Date`
 * header of every response (toUTCString, and getMilliseconds, which reads the local time zone):
 * health-server.ts sets that header itself.
 */

const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);
const pad3 = (n: number): string => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : `${n}`);
const pad4 = (n: number): string => (n < 1000 ? `000${n}`.slice(-4) : `${n}`);

/** The years both formats print with four digits; outside them (never in practice) V8's own text. */
function inFourDigitYears(date: Date): boolean {
  const year = date.getUTCFullYear();
  return year >= 0 && year <= 9999;
}

/**
 * `2026-11-30T18:00:00.000Z`: exactly what `toISOString()` returns for the same instant, including
 * its RangeError for an invalid date.
 */
export function isoTime(at: number | Date = Date.now()): string {
  const date = typeof at === 'number' ? new Date(at) : at;
  if (!inFourDigitYears(date)) return date.toISOString();
  return (
    `${pad4(date.getUTCFullYear())}-${pad2(date.getUTCMonth() + 1)}-${pad2(date.getUTCDate())}` +
    `T${pad2(date.getUTCHours())}:${pad2(date.getUTCMinutes())}:${pad2(date.getUTCSeconds())}` +
    `.${pad3(date.getUTCMilliseconds())}Z`
  );
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** An HTTP `Date` header (RFC 9110's IMF-fixdate, `Mon, 30 Nov 2026 18:00:00 GMT`), as `toUTCString()`. */
export function httpDate(at: number | Date = Date.now()): string {
  const date = typeof at === 'number' ? new Date(at) : at;
  if (!inFourDigitYears(date)) return date.toUTCString();
  return (
    `${DAYS[date.getUTCDay()]}, ${pad2(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]} ${pad4(date.getUTCFullYear())}` +
    ` ${pad2(date.getUTCHours())}:${pad2(date.getUTCMinutes())}:${pad2(date.getUTCSeconds())} GMT`
  );
}
