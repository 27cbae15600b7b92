import { Counter, Gauge, type Registry } from 'prom-client';

/** What the client reports about itself; every call site may leave it out (tests, CLIs). */
export interface KubeClientMetrics {
  /** A request is sent again: `reason` is the HTTP status (429, 503, …) or the socket error code. */
  retried(method: string, reason: string): void;
  /** A request gave up after the last retry. */
  exhausted(method: string, reason: string): void;
  /** Milliseconds a request waited for the client-side rate limit. */
  throttled(waitMs: number): void;
  /** A watch line that is not a JSON watch event (skipped). */
  malformedWatchLine(): void;
  /** A watch consumer threw; the watch goes on. */
  consumerError(): void;
  /** A watch was asked for: from here until it ends it counts as requested. */
  watchRequested(): void;
  /** The API server answered a requested watch (its response headers came): it is streaming. */
  watchAnswered(): void;
  /** A requested watch ended, whether it had been answered or not. */
  watchEnded(answered: boolean): void;
}

export const RETRY_REASONS = ['429', '500', '502', '503', '504', 'ECONNREFUSED', 'ECONNRESET'] as const;

const byRegistry = new WeakMap<Registry, KubeClientMetrics>();

/**
 * The client's metrics, every label combination that can occur starting at zero. One set per
 * registry: a service with two clients (the reaper's) counts both in the same series.
 */
export function createKubeClientMetrics(registry: Registry): KubeClientMetrics {
  const existing = byRegistry.get(registry);
  if (existing) return existing;
  const registers = [registry];
  const retries = new Counter({
    name: 'streamspace_kube_request_retries_total',
    help: 'API requests sent again after a 429, a 5xx or a refused connection, by method and reason (the status or error code).',
    labelNames: ['method', 'reason'],
    registers,
  });
  const exhausted = new Counter({
    name: 'streamspace_kube_request_retries_exhausted_total',
    help: 'API requests that failed after their last retry, by method and reason.',
    labelNames: ['method', 'reason'],
    registers,
  });
  const throttled = new Counter({
    name: 'streamspace_kube_rate_limit_wait_seconds_total',
    help: 'Seconds requests waited for the client-side rate limit (KUBE_QPS, KUBE_BURST).',
    registers,
  });
  const malformed = new Counter({
    name: 'streamspace_kube_watch_malformed_lines_total',
    help: 'Watch stream lines that were not JSON watch events and were skipped.',
    registers,
  });
  const consumerErrors = new Counter({
    name: 'streamspace_kube_watch_consumer_errors_total',
    help: 'Watch events whose consumer threw; the watch went on with the next event.',
    registers,
  });
  // Open watches, and of them those the API server answered: a gap that lasts is a watch that was
  // never sent or never answered (issue 13 found 16 of 80 queued behind the connection cap, unseen).
  const watchesRequested = new Gauge({
    name: 'streamspace_kube_watches_requested',
    help: 'Watches asked of the API server and not ended, answered or not.',
    registers,
  });
  const watchesAnswered = new Gauge({
    name: 'streamspace_kube_watches_answered',
    help: 'Open watches the API server answered (response headers received); requested minus answered are waiting for an answer.',
    registers,
  });
  for (const method of ['GET', 'PATCH', 'POST', 'DELETE']) {
    for (const reason of RETRY_REASONS) {
      retries.labels(method, reason).inc(0);
      exhausted.labels(method, reason).inc(0);
    }
  }
  const metrics: KubeClientMetrics = {
    retried: (method, reason) => retries.labels(method, reason).inc(),
    exhausted: (method, reason) => exhausted.labels(method, reason).inc(),
    throttled: (waitMs) => throttled.inc(waitMs / 1000),
    malformedWatchLine: () => malformed.inc(),
    consumerError: () => consumerErrors.inc(),
    watchRequested: () => watchesRequested.inc(),
    watchAnswered: () => watchesAnswered.inc(),
    watchEnded: (answered) => {
      watchesRequested.dec();
      if (answered) watchesAnswered.dec();
    },
  };
  byRegistry.set(registry, metrics);
  return metrics;
}
