import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';

/**
 * patches/@nats-io__nats-core@3.4.0.patch (why: pnpm-workspace.yaml): a request that got its
 * reply builds no RequestError. Upstream's request.js ends every request with cancel(), which
 * builds one (a stack trace) to reject a promise already settled. Fails when an upgrade drops
 * the patch. Its modules are CommonJS behind an exports map, so they are loaded by path.
 */
const require = createRequire(import.meta.url);
const lib = dirname(require.resolve('@nats-io/nats-core'));
const errors = require(join(lib, 'errors.js')) as { RequestError: new (message?: string) => Error };
const { RequestOne } = require(join(lib, 'request.js')) as {
  RequestOne: new (
    mux: { cancel(request: unknown): void },
    subject: string,
    opts: { timeout: number },
    asyncTraces: boolean,
  ) => { deferred: Promise<unknown>; resolver(err: Error | null, msg: unknown): void; cancel(err?: Error): void };
};

const Original = errors.RequestError;
let built = 0;

describe('the nats-core request patch', () => {
  afterEach(() => {
    errors.RequestError = Original;
  });

  function countRequestErrors(): void {
    built = 0;
    errors.RequestError = class extends Original {
      constructor(message?: string) {
        super(message);
        built++;
      }
    };
  }

  it('settles a request with its reply, unregisters it and builds no RequestError', async () => {
    countRequestErrors();
    const mux = { cancel: vi.fn() };
    const request = new RequestOne(mux, 'subject', { timeout: 60_000 }, false);
    const reply = { data: new Uint8Array() };
    request.resolver(null, reply);
    await expect(request.deferred).resolves.toBe(reply);
    expect(mux.cancel).toHaveBeenCalledWith(request);
    expect(built).toBe(0);
  });

  it('still rejects a request cancelled before its reply', async () => {
    countRequestErrors();
    const mux = { cancel: vi.fn() };
    const request = new RequestOne(mux, 'subject', { timeout: 60_000 }, false);
    request.cancel();
    await expect(request.deferred).rejects.toThrow('cancelled');
    expect(mux.cancel).toHaveBeenCalledWith(request);
    expect(built).toBe(1);
  });
});
