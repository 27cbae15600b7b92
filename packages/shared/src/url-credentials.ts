/**
 * `scheme://user:password@host` → `scheme://[redacted]@host`, for every URL in a text. NATS
 * accepts credentials in its URLs (NATS_URL=nats://user:pass@host), and URLs end up in log
 * lines, readiness reasons and error messages; this is applied to all three. Everything up to the
 * last '@' before the host is hidden, so a password with an unescaped '@' is hidden whole.
 */
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^/\s]+@/gi;

export function redactUrlCredentials(text: string): string {
  return text.includes('@') ? text.replace(USERINFO, '$1[redacted]@') : text;
}
