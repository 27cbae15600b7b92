import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { at, iso, type SessionShape, snapshot } from './session-fixtures.test-support.js';
import {
  type ChangeType,
  creationTime,
  episodeKey,
  episodeOf,
  isNewerVersion,
  type Transition,
  TransitionTracker,
} from './transition-tracker.js';

function change(type: ChangeType, shape: SessionShape, observed: string) {
  return { type, snapshot: snapshot(shape), observedAtMs: at(observed) };
}

/** A session's whole life as the watcher would report it, one change per step. */
const life = {
  created: change('added', { rv: 10 }, '10:00:00.300'),
  starting: change(
    'modified',
    { rv: 11, phase: 'Pending', ready: ['False', 'Starting', iso('10:00:00.350')] },
    '10:00:00.360',
  ),
  running: change(
    'modified',
    { rv: 12, phase: 'Running', ready: ['True', 'PodReady', iso('10:00:01.800')] },
    '10:00:01.810',
  ),
  hibernateAsked: change(
    'modified',
    {
      rv: 20,
      generation: 2,
      state: 'hibernated',
      phase: 'Running',
      ready: ['True', 'PodReady', iso('10:00:01.800')],
    },
    '10:05:00.000',
  ),
  hibernating: change(
    'modified',
    {
      rv: 21,
      generation: 2,
      state: 'hibernated',
      phase: 'Running',
      ready: ['False', 'Hibernating', iso('10:05:00.050')],
    },
    '10:05:00.060',
  ),
  hibernated: change(
    'modified',
    {
      rv: 22,
      generation: 2,
      state: 'hibernated',
      phase: 'Hibernated',
      ready: ['False', 'Hibernated', iso('10:05:00.900')],
    },
    '10:05:00.910',
  ),
  wakeAsked: change(
    'modified',
    {
      rv: 30,
      generation: 3,
      state: 'running',
      phase: 'Hibernated',
      ready: ['False', 'Hibernated', iso('10:05:00.900')],
    },
    '10:10:00.000',
  ),
  waking: change(
    'modified',
    { rv: 31, generation: 3, phase: 'Pending', ready: ['False', 'Starting', iso('10:10:00.100')] },
    '10:10:00.110',
  ),
  woken: change(
    'modified',
    { rv: 32, generation: 3, phase: 'Running', ready: ['True', 'PodReady', iso('10:10:00.600')] },
    '10:10:00.610',
  ),
  terminateAsked: change(
    'modified',
    {
      rv: 40,
      generation: 4,
      state: 'terminated',
      phase: 'Running',
      ready: ['True', 'PodReady', iso('10:10:00.600')],
    },
    '10:20:00.000',
  ),
  terminating: change(
    'modified',
    {
      rv: 41,
      generation: 4,
      state: 'terminated',
      phase: 'Running',
      ready: ['False', 'Terminating', iso('10:20:00.010')],
    },
    '10:20:00.020',
  ),
  terminated: change(
    'modified',
    {
      rv: 42,
      generation: 4,
      state: 'terminated',
      phase: 'Terminated',
      ready: ['False', 'Terminated', iso('10:20:00.500')],
    },
    '10:20:00.510',
  ),
};

function feed(tracker: TransitionTracker, changes: ReturnType<typeof change>[]): Transition[] {
  return changes.flatMap((c) => tracker.observe(c));
}

describe('transition detection', () => {
  it('counts each step of a whole life once, with its duration', () => {
    const transitions = feed(new TransitionTracker(), Object.values(life));
    expect(transitions).toEqual([
      // Created at 10:00:00 (whole seconds); the watcher saw it at .300, which is the better start.
      { type: 'started', template: 'firefox', from: 'created', startSeconds: 1.5, wakeSeconds: undefined },
      { type: 'hibernated', template: 'firefox', reason: 'user', seconds: 0.9 },
      { type: 'started', template: 'firefox', from: 'hibernated', startSeconds: 0.6, wakeSeconds: 0.6 },
      { type: 'terminated', template: 'firefox', reason: 'user' },
    ]);
  });

  it('counts nothing twice: duplicates, resyncs and stale replays of any step', () => {
    const tracker = new TransitionTracker();
    const all = Object.values(life);
    const noisy = all.flatMap((c, i) => [
      c,
      { ...c, type: 'resync' as const },
      ...(i > 2 ? [all[i - 2] as ReturnType<typeof change>] : []),
    ]);
    expect(feed(tracker, noisy).map((t) => t.type)).toEqual([
      'started',
      'hibernated',
      'started',
      'terminated',
    ]);
  });

  it('repairs a missed message with the next one, untimed when the start was never seen', () => {
    const transitions = feed(new TransitionTracker(), [
      life.created,
      life.starting,
      life.running,
      life.hibernated,
    ]);
    expect(transitions[1]).toEqual({
      type: 'hibernated',
      template: 'firefox',
      reason: 'user',
      seconds: undefined,
    });
  });

  it('times a hibernation from the Hibernating condition when the spec change itself was missed', () => {
    const transitions = feed(new TransitionTracker(), [
      life.created,
      life.starting,
      life.running,
      life.hibernating,
      life.hibernated,
    ]);
    expect(transitions[1]).toMatchObject({ type: 'hibernated', seconds: 0.85 });
  });

  it('attributes hibernations and terminations to the idle reaper only when its annotations belong to the change', () => {
    const reaper = { changedBy: 'idle-reaper', changeReason: 'Idle', changedAt: iso('10:04:59.900') };
    const byReaper = (c: ReturnType<typeof change>, shape: Partial<SessionShape>) =>
      change(c.type, { ...shapeOf(c), ...shape }, isoOf(c.observedAtMs));
    const tracker = new TransitionTracker();
    const transitions = feed(tracker, [
      life.created,
      life.starting,
      life.running,
      byReaper(life.hibernateAsked, reaper),
      byReaper(life.hibernating, reaper),
      byReaper(life.hibernated, reaper),
      // The user wakes it and later ends it: the reaper's old annotations stay on the object.
      byReaper(life.wakeAsked, reaper),
      byReaper(life.waking, reaper),
      byReaper(life.woken, reaper),
      byReaper(life.terminateAsked, reaper),
      byReaper(life.terminated, reaper),
    ]);
    // The reaper's recorded time (before the watcher saw the change) starts the hibernation.
    expect(transitions[1]).toEqual({ type: 'hibernated', template: 'firefox', reason: 'idle', seconds: 1 });
    expect(transitions[3]).toEqual({ type: 'terminated', template: 'firefox', reason: 'user' });

    const maxDuration = {
      changedBy: 'idle-reaper',
      changeReason: 'MaxDurationExceeded',
      changedAt: iso('10:19:59.990'),
    };
    const ended = feed(new TransitionTracker(), [
      life.created,
      life.starting,
      life.running,
      byReaper(life.terminateAsked, { ...maxDuration, ready: ['True', 'PodReady', iso('10:00:01.800')] }),
      byReaper(life.terminated, maxDuration),
    ]);
    expect(ended[1]).toEqual({ type: 'terminated', template: 'firefox', reason: 'max_duration' });
  });

  it('counts a failure with the Ready reason', () => {
    const failed = change(
      'modified',
      { rv: 13, phase: 'Failed', ready: ['False', 'StartupDeadlineExceeded', iso('10:05:00.350')] },
      '10:05:00.400',
    );
    expect(feed(new TransitionTracker(), [life.created, life.starting, failed])).toEqual([
      { type: 'failed', template: 'firefox', reason: 'StartupDeadlineExceeded' },
    ]);
  });

  it('ignores older resourceVersions and forgets deleted sessions', () => {
    const tracker = new TransitionTracker();
    feed(tracker, [life.created, life.starting, life.running]);
    expect(tracker.observe(life.starting)).toEqual([]);
    expect(tracker.size).toBe(1);
    tracker.observe({ ...life.running, type: 'deleted' });
    expect(tracker.size).toBe(0);
  });

  it('counts a session first seen already settled as new (it appeared after the seed)', () => {
    const late = change(
      'modified',
      { rv: 12, phase: 'Running', ready: ['True', 'PodReady', iso('10:00:01.800')] },
      '10:00:01.810',
    );
    expect(feed(new TransitionTracker(), [late])).toEqual([
      { type: 'started', template: 'firefox', from: 'created', startSeconds: 1.8, wakeSeconds: undefined },
    ]);
  });
});

describe('after a restart', () => {
  it('takes the current state as history and counts only what happens next', () => {
    const tracker = new TransitionTracker();
    tracker.seed([life.running.snapshot], at('10:01:00.000'));
    expect(feed(tracker, [{ ...life.running, type: 'resync' }])).toEqual([]);
    expect(feed(tracker, [life.hibernateAsked, life.hibernating, life.hibernated])).toEqual([
      { type: 'hibernated', template: 'firefox', reason: 'user', seconds: 0.9 },
    ]);
  });

  it('times a transition under way at the restart from the condition on the object', () => {
    const tracker = new TransitionTracker();
    tracker.seed([life.hibernating.snapshot], at('10:05:00.500'));
    expect(feed(tracker, [life.hibernated])).toEqual([
      { type: 'hibernated', template: 'firefox', reason: 'user', seconds: 0.85 },
    ]);
  });

  it('times a wake under way at the restart from its Starting condition, as a start of unknown origin', () => {
    const tracker = new TransitionTracker();
    tracker.seed([life.waking.snapshot], at('10:10:00.200'));
    expect(feed(tracker, [life.woken])).toEqual([
      { type: 'started', template: 'firefox', from: 'unknown', startSeconds: 0.5, wakeSeconds: undefined },
    ]);
  });

  it('does not count a transition that settled before the subscription began, even if the seed missed it', () => {
    const tracker = new TransitionTracker();
    // The seed saw the session still starting; the change to Running (at 10:00:01.800) happened before we subscribed.
    tracker.seed([life.starting.snapshot], at('10:00:02.000'));
    expect(feed(tracker, [life.running])).toEqual([]);
    expect(feed(tracker, [life.hibernateAsked, life.hibernating, life.hibernated])).toHaveLength(1);
  });

  it('prunes sessions that vanished without a deletion event', () => {
    const tracker = new TransitionTracker();
    tracker.seed([life.running.snapshot], at('10:00:00.000'));
    expect(tracker.prune(new Set(['uid-1']), at('11:00:00.000'), 60_000)).toBe(0);
    expect(tracker.prune(new Set(), at('10:00:30.000'), 60_000)).toBe(0);
    expect(tracker.prune(new Set(), at('11:00:00.000'), 60_000)).toBe(1);
  });
});

describe('episodes', () => {
  it('are settled phases only, never a phase kept while the pod is going', () => {
    expect(episodeOf(life.starting.snapshot)).toBeUndefined();
    expect(episodeOf(life.hibernating.snapshot)).toBeUndefined();
    expect(episodeOf(life.terminating.snapshot)).toBeUndefined();
    expect(episodeOf(life.running.snapshot)?.phase).toBe('Running');
    const hibernated = episodeOf(life.hibernated.snapshot);
    expect(hibernated && episodeKey(hibernated)).toBe(`Hibernated/Hibernated/${at('10:05:00.900')}`);
  });

  it('compares resourceVersions as numbers when they are', () => {
    expect(isNewerVersion('100', '99')).toBe(true);
    expect(isNewerVersion('99', '100')).toBe(false);
    expect(isNewerVersion('abc', 'abd')).toBe(true);
    expect(isNewerVersion('abc', 'abc')).toBe(false);
  });

  it('refines the whole-second creation time with the sighting of the creation', () => {
    expect(creationTime(at('10:00:00.000'), at('10:00:00.400'))).toBe(at('10:00:00.400'));
    expect(creationTime(at('10:00:00.000'), at('10:00:03.000'))).toBe(at('10:00:00.000'));
    expect(creationTime(undefined, at('10:00:03.000'))).toBe(at('10:00:03.000'));
  });
});

describe('any delivery of a session’s changes', () => {
  const steps = ['hibernate', 'wake', 'fail', 'restart', 'terminate'] as const;
  type Step = (typeof steps)[number];

  /** A lifetime of settled phases and the changes between them, with strictly growing versions and times. */
  function lifetime(plan: Step[]): ReturnType<typeof change>[] {
    let rv = 1;
    let t = at('10:00:00.000');
    let generation = 1;
    const out: ReturnType<typeof change>[] = [];
    const stamp = () => {
      t += 1000;
      return new Date(t).toISOString().slice(11, 23);
    };
    const push = (shape: Omit<SessionShape, 'rv'>, type: ChangeType = 'modified') => {
      out.push(change(type, { ...shape, rv: rv++, generation }, stamp()));
    };
    push({}, 'added');
    push({ phase: 'Pending', ready: ['False', 'Starting', new Date(t + 10).toISOString()] });
    push({ phase: 'Running', ready: ['True', 'PodReady', new Date(t + 500).toISOString()] });
    let state: 'running' | 'hibernated' | 'terminated' = 'running';
    for (const step of plan) {
      if (state === 'terminated') break;
      if (step === 'hibernate' && state === 'running') {
        generation++;
        state = 'hibernated';
        push({ state, phase: 'Running', ready: ['False', 'Hibernating', new Date(t + 10).toISOString()] });
        push({ state, phase: 'Hibernated', ready: ['False', 'Hibernated', new Date(t + 500).toISOString()] });
      } else if (step === 'wake' && state === 'hibernated') {
        generation++;
        state = 'running';
        push({ state, phase: 'Pending', ready: ['False', 'Starting', new Date(t + 10).toISOString()] });
        push({ state, phase: 'Running', ready: ['True', 'PodReady', new Date(t + 500).toISOString()] });
      } else if (step === 'fail' && state === 'running') {
        push({ state, phase: 'Pending', ready: ['False', 'Starting', new Date(t + 10).toISOString()] });
        push({
          state,
          phase: 'Failed',
          ready: ['False', 'StartupDeadlineExceeded', new Date(t + 500).toISOString()],
        });
      } else if (step === 'restart' && state === 'running') {
        push({ state, phase: 'Running', ready: ['True', 'PodReady', new Date(t + 500).toISOString()] });
      } else if (step === 'terminate') {
        generation++;
        state = 'terminated';
        push({ state, phase: 'Terminated', ready: ['False', 'Terminated', new Date(t + 500).toISOString()] });
      }
    }
    return out;
  }

  it('yields the transitions of a clean, once-each delivery', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...steps), { maxLength: 12 }),
        fc.array(fc.tuple(fc.nat(), fc.nat(3)), { maxLength: 40 }),
        (plan, noise) => {
          const changes = lifetime(plan);
          const clean = feed(new TransitionTracker(), changes);
          // Each change delivered one or more times, with older ones replayed in between.
          const noisy: ReturnType<typeof change>[] = [];
          changes.forEach((c, i) => {
            const [pick, repeat] = noise[i % Math.max(1, noise.length)] ?? [0, 0];
            noisy.push(c);
            for (let r = 0; r < repeat; r++)
              noisy.push(
                r % 2 ? { ...c, type: 'resync' } : (changes[pick % (i + 1)] as ReturnType<typeof change>),
              );
          });
          expect(feed(new TransitionTracker(), noisy)).toEqual(clean);
          // And every settled Running, Hibernated, Terminated and Failed episode is one transition.
          const episodes = new Set(
            changes
              .map((c) => episodeOf(c.snapshot))
              .filter((e) => e !== undefined)
              .map(episodeKey),
          );
          expect(clean).toHaveLength(episodes.size);
        },
      ),
    );
  });
});

function shapeOf(c: ReturnType<typeof change>): SessionShape {
  const s = c.snapshot;
  return {
    rv: Number(s.resourceVersion),
    generation: s.generation,
    state: s.state,
    ...(s.phase !== 'Pending' || s.ready ? { phase: s.phase } : {}),
    ...(s.ready
      ? {
          ready: [s.ready.status, s.ready.reason, new Date(s.ready.sinceMs as number).toISOString()] as [
            string,
            string,
            string,
          ],
        }
      : {}),
  };
}

function isoOf(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}
