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

/**
 * Splits `scheme://user:password@host` into the URL without its credentials and the (decoded)
 * user and password, so NATS_URL may carry them as other NATS clients allow; the URL handed to
 * the client (and shown in its errors) then carries none.
 */
export function splitUrlCredentials(url: string): { url: string; user?: string; pass?: string } {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)([^/\s]+)@(.*)$/i.exec(url.trim());
  if (!match) return { url: url.trim() };
  const [, scheme, userinfo, rest] = match as unknown as [string, string, string, string];
  const colon = userinfo.indexOf(':');
  const decode = (text: string) => {
    try {
      return decodeURIComponent(text);
    } catch {
      return text;
    }
  };
  return {
    url: `${scheme}${rest}`,
    user: decode(colon < 0 ? userinfo : userinfo.slice(0, colon)),
    ...(colon < 0 ? {} : { pass: decode(userinfo.slice(colon + 1)) }),
  };
}
