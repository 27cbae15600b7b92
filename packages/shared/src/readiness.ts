import { redactUrlCredentials } from './url-credentials.js';

/**
 * A service is ready when every check it registered is passing. Each check carries the reason it
 * is failing, which /readyz shows, so "not ready" always comes with a why.
 */
export class Readiness {
  private readonly checks = new Map<string, { ok: boolean; reason: string }>();

  /** Registers a check that starts failing with `reason` until something marks it ok. */
  register(name: string, reason = 'starting'): void {
    if (!this.checks.has(name)) this.checks.set(name, { ok: false, reason: redactUrlCredentials(reason) });
  }

  /** `reason` is shown on /readyz: credentials in URLs it names are redacted. */
  set(name: string, ok: boolean, reason = ok ? 'ok' : 'failing'): void {
    this.checks.set(name, { ok, reason: redactUrlCredentials(reason) });
  }

  get ready(): boolean {
    for (const check of this.checks.values()) if (!check.ok) return false;
    return true;
  }

  snapshot(): Record<string, { ok: boolean; reason: string }> {
    return Object.fromEntries(this.checks);
  }
}
