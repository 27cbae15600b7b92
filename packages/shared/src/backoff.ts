/**
 * Exponential backoff with full jitter. Every retry loop in the services uses this, so that a
 * fleet of replicas recovering from the same outage does not hammer the API server or NATS in
 * lockstep.
 */
export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** Random source in [0, 1); injectable so tests are deterministic. */
  random?: () => number;
}

export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const { initialMs = 200, maxMs = 30_000, factor = 2, random = Math.random } = options;
  const ceiling = Math.min(maxMs, initialMs * factor ** Math.max(0, attempt));
  // Keep at least half of the ceiling so a retry never fires immediately after a failure.
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs `operation` until it succeeds or `signal` aborts, sleeping with backoff between failures.
 * `onError` sees every failure (to log it and flip readiness); it is never asked to decide.
 */
export async function retryForever<T>(
  operation: (attempt: number) => Promise<T>,
  options: BackoffOptions & { signal?: AbortSignal; onError?: (error: unknown, attempt: number, delayMs: number) => void } = {},
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const delay = backoffDelay(attempt, options);
      options.onError?.(error, attempt, delay);
      await sleep(delay, options.signal);
      if (options.signal?.aborted) throw error;
    }
  }
}
