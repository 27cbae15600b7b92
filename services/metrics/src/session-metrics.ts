import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type GaugeSample, knownTemplates, sessionGauges } from './session-gauges.js';
import type { SessionSnapshot } from './session-snapshot.js';
import { END_REASONS, FAILURE_REASONS, type Transition } from './transition-tracker.js';

/** Seconds: KWOK starts in well under a second, real desktops pull images for minutes. */
export const DURATION_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export const MALFORMED_EVENT_REASONS = ['not_json', 'bad_envelope', 'bad_object'] as const;
export type MalformedEventReason = (typeof MALFORMED_EVENT_REASONS)[number];

export interface SessionMetricsSources {
  sessions(): SessionSnapshot[];
  templates(): string[];
  /** Whether the sets above are known (listed); until then the gauges export nothing rather than wrong zeros. */
  synced(): boolean;
  userLabel: boolean;
  now(): number;
}

function setAll(gauge: Gauge<string>, samples: GaugeSample[]): void {
  gauge.reset();
  for (const { labels, value } of samples) gauge.set(labels, value);
}

/**
 * The session metrics of the metrics service: gauges computed from the cluster's current state
 * at every scrape, counters and histograms fed by the transitions the event stream shows.
 * Every counter series of every known template starts at zero, so rate() and alerts work from
 * the first scrape.
 */
export function createSessionMetrics(registry: Registry, sources: SessionMetricsSources) {
  const registers = [registry];
  // Computed afresh for each scrape, once for its three gauges: prom-client calls every collect()
  // synchronously, one after the other, before it awaits anything, and nothing can change a
  // Session in between; forgotten at the next microtask, so the figures are as fresh as three
  // passes would make them, for a third of the garbage (a pass copies the list of Sessions).
  let scraped: ReturnType<typeof sessionGauges> | undefined;
  const gauges = () => {
    if (scraped) return scraped;
    const sessions = sources.sessions();
    const templates = sources.templates();
    for (const template of knownTemplates(sessions, templates)) initialise(template);
    scraped = sessionGauges(sessions, templates, { userLabel: sources.userLabel, nowMs: sources.now() });
    queueMicrotask(() => {
      scraped = undefined;
    });
    return scraped;
  };

  new Gauge({
    name: 'streamspace_active_sessions',
    help: sources.userLabel
      ? 'Sessions in phase Running, by user and template (computed from the cluster at each scrape).'
      : 'Sessions in phase Running, by template (computed from the cluster at each scrape; the user label is switched off).',
    labelNames: sources.userLabel ? ['user', 'template'] : ['template'],
    registers,
    collect() {
      if (!sources.synced()) return this.reset();
      setAll(this, gauges().active);
    },
  });
  new Gauge({
    name: 'streamspace_sessions',
    help: 'Sessions by phase and template (a Session without a status yet counts as Pending).',
    labelNames: ['phase', 'template'],
    registers,
    collect() {
      if (!sources.synced()) return this.reset();
      setAll(this, gauges().byPhase);
    },
  });
  new Gauge({
    name: 'streamspace_session_oldest_pending_seconds',
    help: 'How long the longest-waiting Pending session of each template has waited (0 when none is Pending).',
    labelNames: ['template'],
    registers,
    collect() {
      if (!sources.synced()) return this.reset();
      setAll(this, gauges().oldestPending);
    },
  });

  const starts = new Counter({
    name: 'streamspace_session_starts_total',
    help: 'Sessions that reached Running: first starts, wakes, and restarts after a termination or failure.',
    labelNames: ['template'],
    registers,
  });
  const hibernations = new Counter({
    name: 'streamspace_session_hibernations_total',
    help: 'Sessions that reached Hibernated, by who asked: user, idle (idle reaper) or max_duration.',
    labelNames: ['template', 'reason'],
    registers,
  });
  const terminations = new Counter({
    name: 'streamspace_session_terminations_total',
    help: 'Sessions that reached Terminated, by who asked: user, idle (idle reaper) or max_duration.',
    labelNames: ['template', 'reason'],
    registers,
  });
  const failures = new Counter({
    name: 'streamspace_session_failures_total',
    help: 'Sessions that reached Failed, by the Ready condition reason (StartupDeadlineExceeded, InvalidSpec, ...).',
    labelNames: ['template', 'reason'],
    registers,
  });
  const startDuration = new Histogram({
    name: 'streamspace_session_start_duration_seconds',
    help: 'Time from creation (or wake) to Running.',
    labelNames: ['template'],
    buckets: DURATION_BUCKETS,
    registers,
  });
  const wakeDuration = new Histogram({
    name: 'streamspace_session_wake_duration_seconds',
    help: 'Time from spec.state set back to running on a hibernated session to Running.',
    labelNames: ['template'],
    buckets: DURATION_BUCKETS,
    registers,
  });
  const hibernateDuration = new Histogram({
    name: 'streamspace_session_hibernate_duration_seconds',
    help: 'Time from spec.state set to hibernated to Hibernated (the pod gone).',
    labelNames: ['template'],
    buckets: DURATION_BUCKETS,
    registers,
  });
  const untimed = new Counter({
    name: 'streamspace_metrics_untimed_transitions_total',
    help: 'Transitions counted without a duration because their start was not observed (e.g. it happened while this service was down).',
    labelNames: ['transition'],
    registers,
  });
  const malformed = new Counter({
    name: 'streamspace_metrics_malformed_events_total',
    help: 'Change events that could not be read (not JSON, not a change event, or not a Session), logged and skipped.',
    labelNames: ['reason'],
    registers,
  });
  const events = new Counter({
    name: 'streamspace_metrics_session_events_total',
    help: 'Session change events read from the event stream.',
    registers,
  });
  for (const transition of ['start', 'wake', 'hibernate']) untimed.labels(transition).inc(0);
  for (const reason of MALFORMED_EVENT_REASONS) malformed.labels(reason).inc(0);
  events.inc(0);

  const initialised = new Set<string>();
  function initialise(template: string): void {
    if (initialised.has(template)) return;
    initialised.add(template);
    starts.labels(template).inc(0);
    for (const reason of END_REASONS) {
      hibernations.labels(template, reason).inc(0);
      terminations.labels(template, reason).inc(0);
    }
    for (const reason of FAILURE_REASONS) failures.labels(template, reason).inc(0);
    startDuration.zero({ template });
    wakeDuration.zero({ template });
    hibernateDuration.zero({ template });
  }

  function observe(
    histogram: Histogram<'template'>,
    template: string,
    seconds: number | undefined,
    name: string,
  ): void {
    if (seconds === undefined) untimed.labels(name).inc();
    else histogram.labels(template).observe(seconds);
  }

  return {
    malformed: (reason: MalformedEventReason) => malformed.labels(reason).inc(),
    event: () => events.inc(),
    record(transition: Transition): void {
      const { template } = transition;
      initialise(template);
      switch (transition.type) {
        case 'started':
          starts.labels(template).inc();
          observe(startDuration, template, transition.startSeconds, 'start');
          if (transition.from === 'hibernated')
            observe(wakeDuration, template, transition.wakeSeconds, 'wake');
          break;
        case 'hibernated':
          hibernations.labels(template, transition.reason).inc();
          observe(hibernateDuration, template, transition.seconds, 'hibernate');
          break;
        case 'terminated':
          terminations.labels(template, transition.reason).inc();
          break;
        case 'failed':
          failures.labels(template, transition.reason).inc();
          break;
      }
    },
  };
}

export type SessionMetrics = ReturnType<typeof createSessionMetrics>;
