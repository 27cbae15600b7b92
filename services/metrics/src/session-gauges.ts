import { SESSION_PHASES } from '@streamspace/shared';
import type { SessionSnapshot } from './session-snapshot.js';

export interface GaugeSample {
  labels: Record<string, string>;
  value: number;
}

export interface SessionGauges {
  /** streamspace_active_sessions: sessions in phase Running. */
  active: GaugeSample[];
  /** streamspace_sessions: sessions by phase, every phase of every known template present (0 included). */
  byPhase: GaugeSample[];
  /** streamspace_session_oldest_pending_seconds: how long the longest-waiting Pending session has waited. */
  oldestPending: GaugeSample[];
}

export interface GaugeOptions {
  /** With the user label, one active series per user and template; without it, one per template. */
  userLabel: boolean;
  nowMs: number;
}

/** Templates the gauges speak of: those that exist and those Sessions name (even when missing). */
export function knownTemplates(sessions: Iterable<SessionSnapshot>, templates: Iterable<string>): string[] {
  const names = new Set(templates);
  for (const session of sessions) names.add(session.template);
  return [...names].sort();
}

/** Since when a Pending session has been waiting: its Ready condition's transition, else its creation. */
function pendingSince(session: SessionSnapshot): number | undefined {
  return session.ready?.sinceMs ?? session.createdAtMs;
}

/**
 * The gauges, computed afresh from the cluster's current state on every scrape: nothing is
 * incremented or remembered, so any replica, restarted or not, reports the same numbers.
 */
export function sessionGauges(
  sessions: readonly SessionSnapshot[],
  templates: Iterable<string>,
  options: GaugeOptions,
): SessionGauges {
  const known = knownTemplates(sessions, templates);
  const phaseCounts = new Map<string, number>();
  const activeCounts = new Map<string, { user: string; template: string; count: number }>();
  const oldest = new Map<string, number>();
  for (const session of sessions) {
    const phaseKey = `${session.template}\u0000${session.phase}`;
    phaseCounts.set(phaseKey, (phaseCounts.get(phaseKey) ?? 0) + 1);
    if (session.phase === 'Running') {
      const user = options.userLabel ? session.user : '';
      const key = `${user}\u0000${session.template}`;
      const entry = activeCounts.get(key) ?? { user, template: session.template, count: 0 };
      entry.count++;
      activeCounts.set(key, entry);
    }
    if (session.phase === 'Pending') {
      const since = pendingSince(session);
      if (since !== undefined) {
        const waited = Math.max(0, (options.nowMs - since) / 1000);
        oldest.set(session.template, Math.max(oldest.get(session.template) ?? 0, waited));
      }
    }
  }

  const byPhase: GaugeSample[] = [];
  const oldestPending: GaugeSample[] = [];
  for (const template of known) {
    for (const phase of SESSION_PHASES) {
      byPhase.push({ labels: { phase, template }, value: phaseCounts.get(`${template}\u0000${phase}`) ?? 0 });
    }
    oldestPending.push({ labels: { template }, value: oldest.get(template) ?? 0 });
  }

  const active: GaugeSample[] = [];
  if (options.userLabel) {
    // Only the pairs that exist: a zero series per user and template would grow without bound.
    for (const { user, template, count } of activeCounts.values())
      active.push({ labels: { user, template }, value: count });
    // By code units, not localeCompare: its first call loads ICU's collation data, ~3 MiB of
    // resident memory in a service (BENCHMARKS.md, run M3); any fixed order will do here.
    active.sort((a, b) => {
      const x = `${a.labels.template}/${a.labels.user}`;
      const y = `${b.labels.template}/${b.labels.user}`;
      return x < y ? -1 : x > y ? 1 : 0;
    });
  } else {
    for (const template of known)
      active.push({ labels: { template }, value: activeCounts.get(`\u0000${template}`)?.count ?? 0 });
  }
  return { active, byPhase, oldestPending };
}
