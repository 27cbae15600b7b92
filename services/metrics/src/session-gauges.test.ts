import { describe, expect, it } from 'vitest';
import { at, iso, snapshot } from './session-fixtures.test-support.js';
import { knownTemplates, sessionGauges } from './session-gauges.js';

const sessions = [
  snapshot({
    uid: 'a',
    name: 'a',
    rv: 1,
    user: 'alice',
    template: 'firefox',
    phase: 'Running',
    ready: ['True', 'PodReady', iso('10:00:01')],
  }),
  snapshot({
    uid: 'b',
    name: 'b',
    rv: 2,
    user: 'alice',
    template: 'firefox',
    phase: 'Running',
    ready: ['True', 'PodReady', iso('10:00:02')],
  }),
  snapshot({
    uid: 'c',
    name: 'c',
    rv: 3,
    user: 'bob',
    template: 'firefox',
    phase: 'Hibernated',
    ready: ['False', 'Hibernated', iso('10:00:03')],
  }),
  snapshot({
    uid: 'd',
    name: 'd',
    rv: 4,
    user: 'bob',
    template: 'gimp',
    phase: 'Running',
    ready: ['True', 'PodReady', iso('10:00:04')],
  }),
  // Not written by the reconciler yet: Pending since its creation.
  snapshot({ uid: 'e', name: 'e', rv: 5, user: 'carol', template: 'missing', created: iso('10:00:00') }),
  snapshot({
    uid: 'f',
    name: 'f',
    rv: 6,
    user: 'carol',
    template: 'gimp',
    phase: 'Pending',
    ready: ['False', 'Starting', iso('10:09:30')],
  }),
];
const now = at('10:10:00.000');

describe('session gauges', () => {
  it('know every existing template and every template a session names', () => {
    expect(knownTemplates(sessions, ['firefox', 'vscode'])).toEqual(['firefox', 'gimp', 'missing', 'vscode']);
  });

  it('count sessions by phase, every phase of every known template present', () => {
    const { byPhase } = sessionGauges(sessions, ['vscode'], { userLabel: true, nowMs: now });
    const value = (template: string, phase: string) =>
      byPhase.find((s) => s.labels.template === template && s.labels.phase === phase)?.value;
    expect(byPhase).toHaveLength(4 * 5);
    expect(value('firefox', 'Running')).toBe(2);
    expect(value('firefox', 'Hibernated')).toBe(1);
    expect(value('firefox', 'Failed')).toBe(0);
    expect(value('missing', 'Pending')).toBe(1);
    expect(value('vscode', 'Running')).toBe(0);
  });

  it('count active sessions by user and template, only for pairs that exist', () => {
    const { active } = sessionGauges(sessions, ['vscode'], { userLabel: true, nowMs: now });
    expect(active).toEqual([
      { labels: { user: 'alice', template: 'firefox' }, value: 2 },
      { labels: { user: 'bob', template: 'gimp' }, value: 1 },
    ]);
  });

  it('leave the user label out when it is switched off, with a zero for every known template', () => {
    const { active } = sessionGauges(sessions, ['vscode'], { userLabel: false, nowMs: now });
    expect(active).toEqual([
      { labels: { template: 'firefox' }, value: 2 },
      { labels: { template: 'gimp' }, value: 1 },
      { labels: { template: 'missing' }, value: 0 },
      { labels: { template: 'vscode' }, value: 0 },
    ]);
  });

  it('say how long the longest-waiting Pending session of each template has waited', () => {
    const { oldestPending } = sessionGauges(sessions, [], { userLabel: true, nowMs: now });
    expect(oldestPending).toEqual([
      { labels: { template: 'firefox' }, value: 0 },
      { labels: { template: 'gimp' }, value: 30 },
      { labels: { template: 'missing' }, value: 600 },
    ]);
  });
});
