import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Compares a presented token with the expected one in constant time (both are hashed first, so
 * neither the content nor the length leaks through timing).
 */
export function tokensMatch(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  const match = value ? /^Bearer\s+(\S+)\s*$/i.exec(value) : null;
  return match?.[1];
}

/**
 * The expected token: fixed (ACTIVITY_TOKEN) or read from a file (ACTIVITY_TOKEN_FILE, a mounted
 * Secret) and read again when the file changes, so a rotated Secret takes effect without a restart.
 */
export class TokenSource {
  private cached: string | undefined;
  private mtimeMs = -1;
  private checkedAt = 0;

  constructor(private readonly options: { token?: string; file?: string; recheckMs?: number }) {
    this.cached = options.token;
  }

  get configured(): boolean {
    return Boolean(this.options.token || this.options.file);
  }

  /** Reads the file now; throws with the path in the message when it cannot be read or is empty. */
  async load(): Promise<void> {
    if (!this.options.file) return;
    const info = await stat(this.options.file);
    const text = (await readFile(this.options.file, 'utf8')).trim();
    if (!text) throw new Error(`the activity token file ${this.options.file} is empty`);
    this.cached = text;
    this.mtimeMs = info.mtimeMs;
    this.checkedAt = Date.now();
  }

  async current(): Promise<string | undefined> {
    if (this.options.file && Date.now() - this.checkedAt >= (this.options.recheckMs ?? 10_000)) {
      this.checkedAt = Date.now();
      try {
        const info = await stat(this.options.file);
        if (info.mtimeMs !== this.mtimeMs) await this.load();
      } catch {
        // Keep the last good token while a Secret update swaps the file.
      }
    }
    return this.cached;
  }

  async verify(header: string | string[] | undefined): Promise<boolean> {
    const presented = bearerToken(header);
    const expected = await this.current();
    if (!presented || !expected) return false;
    return tokensMatch(presented, expected);
  }
}
