import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  computeDeadlines,
  describeDeadline,
  idleSince,
  type SessionFacts,
  type SessionObservations,
  timeoutMs,
} from './session-deadlines.js';

const S = 1_000;
const M = 60 * S;
const H = 60 * M;
const T0 = Date.parse('2025-01-31T10:00:00Z');
const defaults = { idleTimeoutMs: 30 * M, maxSessionDurationMs: 8 * H };

/** A session created at T0 that became Running (Ready) one minute later. */
function running(overrides: Partial<SessionFacts> = {}): SessionFacts {
  return {
    uid: 'uid-1',
    state: 'running',
    phase: 'Running',
    readyStatus: 'True',
    readySince: T0 + M,
    reaperDisabled: false,
    deleting: false,
    createdAt: T0,
    idleTimeout: '30m',
    maxSessionDuration: '8h',
    ...overrides,
  };
}

/** A controllable clock: the reaper decides at whatever `now` the test says. */
function at(now: number, facts: SessionFacts, observations: SessionObservations = {}) {
  return computeDeadlines(facts, observations, defaults, now);
}

describe('idle deadline', () => {
  it('is counted from the moment the session became Running when no activity was reported', () => {
    const d = at(T0 + 2 * M, running());
    expect(d.idle?.at).toBe(T0 + M + 30 * M);
    expect(d.idle?.from).toBe(T0 + M);
    expect(d.due).toBeUndefined();
  });

  it('is counted from the last activity', () => {
    const d = at(T0 + 20 * M, running(), { activityAt: T0 + 10 * M });
    expect(d.idle?.at).toBe(T0 + 40 * M);
  });

  it('falls due exactly at the deadline, not a millisecond before', () => {
    const facts = running();
    const deadline = T0 + 31 * M;
    expect(at(deadline - 1, facts).due).toBeUndefined();
    expect(at(deadline, facts).due).toMatchObject({ action: 'hibernate', reason: 'Idle', at: deadline });
    expect(at(deadline + 5 * H, facts).due?.action).toBe('hibernate');
    expect(at(T0 + 8 * H, facts).due?.action).toBe('terminate'); // past 8h too: terminate wins
  });

  it('uses the later of the bucket and status.lastActivity', () => {
    const facts = running({ statusLastActivity: T0 + 12 * M });
    expect(at(T0 + 13 * M, facts, { activityAt: T0 + 5 * M }).idle?.at).toBe(T0 + 42 * M);
    expect(at(T0 + 13 * M, facts, { activityAt: T0 + 12 * M + 500 }).idle?.at).toBe(T0 + 42 * M + 500);
  });

  it('keeps moving while activity keeps coming, and never falls due', () => {
    const facts = running();
    for (let t = T0 + 2 * M; t < T0 + 3 * H; t += 10 * M) {
      const d = at(t, facts, { activityAt: t - M });
      expect(d.due).toBeUndefined();
      expect(d.idle?.at).toBe(t - M + 30 * M);
    }
  });

  it('does not idle a session that is not running', () => {
    for (const facts of [
      running({ state: 'hibernated', phase: 'Hibernated' }),
      running({ phase: 'Pending', readyStatus: 'False', readySince: T0 }),
      running({ phase: 'Failed', readyStatus: 'False', readySince: T0 }),
      running({ phase: undefined, readyStatus: undefined, readySince: undefined }),
    ]) {
      const d = at(T0 + 10 * H, { ...facts, maxSessionDuration: '0' });
      expect(d.idle).toBeUndefined();
      expect(d.due).toBeUndefined();
    }
  });

  it('waits while the status says Running but Ready is not True (a hibernation being undone)', () => {
    const d = at(T0 + 5 * H, running({ readyStatus: 'False', readySince: T0, maxSessionDuration: '0' }));
    expect(d.idle).toBeUndefined();
    expect(d.notes).toContain('not running');
  });

  it('counts from creation when a Running status has no Ready condition at all', () => {
    expect(at(T0, running({ readyStatus: undefined, readySince: undefined })).idle?.at).toBe(T0 + 30 * M);
  });
});

describe('a woken session', () => {
  it('gets the full idle timeout from the moment it became Running again, whatever its old activity', () => {
    // Hibernated at T0+1h after idling; woken 3 hours later; Ready again at T0+4h.
    const woken = running({ readyStatus: 'True', readySince: T0 + 4 * H, statusLastActivity: T0 + 30 * M });
    const d = at(T0 + 4 * H + S, woken, { activityAt: T0 + 30 * M });
    expect(d.due).toBeUndefined();
    expect(d.idle?.at).toBe(T0 + 4 * H + 30 * M);
  });

  it('is not re-hibernated when it is woken before the status caught up (reaper annotation)', () => {
    // The reaper hibernated it at T0+1h; a person set it running before the pod stopped, so the
    // Ready condition never changed and still dates from T0+1m.
    const d = at(T0 + 1 * H + 10 * S, running({ reaperStateChangeAt: T0 + H }), { activityAt: T0 + 20 * M });
    expect(d.due).toBeUndefined();
    expect(d.idle?.at).toBe(T0 + H + 30 * M);
  });

  it('counts from the wake this process observed', () => {
    const d = at(T0 + 2 * H, running(), { wokenAt: T0 + 2 * H - 5 * S });
    expect(d.due).toBeUndefined();
    expect(d.idle?.at).toBe(T0 + 2 * H - 5 * S + 30 * M);
  });

  it('hibernates nothing for idleness during the restart grace, and ends nothing early for it', () => {
    // Idle since T0+20m (deadline T0+50m), but the process started at T0+2h with a 30 s grace.
    const grace = { activityAt: T0 + 20 * M, idleNotBefore: T0 + 2 * H + 30 * S };
    const during = at(T0 + 2 * H + 10 * S, running(), grace);
    expect(during.due).toBeUndefined();
    expect(during.idle?.at).toBe(T0 + 2 * H + 30 * S);
    // Still described from the last activity, not from the restart.
    expect(during.idle?.from).toBe(T0 + 20 * M);
    expect(at(T0 + 2 * H + 30 * S, running(), grace).due?.reason).toBe('Idle');
    // The grace does not move a deadline that is later anyway, nor the maximum duration.
    expect(
      at(T0 + 2 * H, running(), { activityAt: T0 + 2 * H, idleNotBefore: T0 + 2 * H + 30 * S }).idle?.at,
    ).toBe(T0 + 2 * H + 30 * M);
    expect(at(T0 + 9 * H, running(), { idleNotBefore: T0 + 9 * H + 30 * S }).due?.reason).toBe(
      'MaxDurationExceeded',
    );
  });
});

describe('a changed idle timeout', () => {
  it('takes effect at once when shortened: a session idle for longer is due now', () => {
    const facts = running({ idleTimeout: '2h' });
    const now = T0 + 45 * M;
    expect(at(now, facts).due).toBeUndefined();
    const shortened = at(now, { ...facts, idleTimeout: '10m' });
    expect(shortened.due).toMatchObject({ action: 'hibernate', at: T0 + 11 * M });
  });

  it('moves the deadline later when lengthened', () => {
    expect(at(T0 + 5 * M, running({ idleTimeout: '1h30m' })).idle?.at).toBe(T0 + M + 90 * M);
  });

  it('falls back to the default when the field is absent', () => {
    expect(at(T0 + 2 * M, running({ idleTimeout: undefined })).idle?.at).toBe(T0 + M + 30 * M);
    expect(
      computeDeadlines(
        running({ idleTimeout: undefined }),
        {},
        { ...defaults, idleTimeoutMs: 5 * M },
        T0 + 2 * M,
      ).idle?.at,
    ).toBe(T0 + 6 * M);
  });

  it('is disabled by 0', () => {
    const d = at(T0 + 7 * H, running({ idleTimeout: '0' }));
    expect(d.idle).toBeUndefined();
    expect(d.next?.reason).toBe('MaxDurationExceeded');
    expect(d.notes).toContain('idle timeout disabled');
  });

  it('decides nothing on a value that is not a duration', () => {
    const d = at(T0 + 7 * H, running({ idleTimeout: 'soon' }));
    expect(d.idle).toBeUndefined();
    expect(d.notes.join()).toContain("idleTimeout 'soon' is not a duration");
  });

  it('supports second-scale timeouts', () => {
    expect(at(T0 + M, running({ idleTimeout: '3s' })).idle?.at).toBe(T0 + M + 3 * S);
    expect(at(T0 + M, running({ idleTimeout: '1m30s500ms' })).idle?.at).toBe(T0 + M + 90_500);
  });
});

describe('maximum duration', () => {
  it('is measured from creation, whatever the activity', () => {
    const d = at(T0 + 8 * H, running(), { activityAt: T0 + 8 * H - S });
    expect(d.maxDuration?.at).toBe(T0 + 8 * H);
    expect(d.due).toMatchObject({ action: 'terminate', reason: 'MaxDurationExceeded' });
  });

  it('also ends a hibernated session, but not a terminated one', () => {
    expect(at(T0 + 9 * H, running({ state: 'hibernated', phase: 'Hibernated' })).due?.action).toBe(
      'terminate',
    );
    const d = at(T0 + 9 * H, running({ state: 'terminated', phase: 'Terminated' }));
    expect(d.due).toBeUndefined();
    expect(d.next).toBeUndefined();
  });

  it('applies to sessions that never became Running', () => {
    expect(
      at(T0 + 9 * H, running({ phase: 'Failed', readyStatus: 'False', readySince: T0 })).due?.action,
    ).toBe('terminate');
  });

  it('is disabled by 0 and falls back to the default when absent', () => {
    expect(at(T0 + 100 * H, running({ maxSessionDuration: '0', idleTimeout: '0' })).next).toBeUndefined();
    expect(at(T0, running({ maxSessionDuration: undefined })).maxDuration?.at).toBe(T0 + 8 * H);
  });

  it('decides nothing without a creation time', () => {
    const d = at(T0 + 100 * H, running({ createdAt: undefined, idleTimeout: '0' }));
    expect(d.maxDuration).toBeUndefined();
    expect(d.notes).toContain('no creation time');
  });
});

describe('both deadlines', () => {
  it('reports the earlier one as next', () => {
    expect(at(T0, running()).next?.reason).toBe('Idle');
    expect(at(T0, running({ maxSessionDuration: '10m' })).next?.reason).toBe('MaxDurationExceeded');
  });

  it('terminates rather than hibernates when both are due, and breaks a tie the same way', () => {
    const tie = running({ idleTimeout: '59m', maxSessionDuration: '1h' });
    expect(at(T0 + H, tie).next?.action).toBe('terminate');
    expect(at(T0 + 2 * H, tie).due?.action).toBe('terminate');
  });
});

describe('opting out', () => {
  it('by annotation disables both deadlines where the platform sets no limits', () => {
    const d = at(T0 + 100 * H, running({ reaperDisabled: true }));
    expect(d).toEqual({ notes: ['reaper disabled by annotation'], limited: [] });
  });

  it('leaves a Session being deleted alone', () => {
    expect(at(T0 + 100 * H, running({ deleting: true })).next).toBeUndefined();
  });
});

describe('the clock', () => {
  it('gives absolute deadlines: a jump forward makes them due, a jump back undoes it', () => {
    const facts = running();
    const deadline = T0 + 31 * M;
    expect(at(T0 + 2 * M, facts).idle?.at).toBe(deadline);
    expect(at(T0 + 5 * H, facts).due?.at).toBe(deadline); // the clock jumped forward
    expect(at(T0 + 3 * M, facts).due).toBeUndefined(); // and back again
    expect(at(T0 + 3 * M, facts).idle?.at).toBe(deadline);
  });

  it('clamps timestamps from the future to now', () => {
    const now = T0 + 2 * H;
    // Activity "from the future" counts as now, not as later.
    expect(at(now, running(), { activityAt: now + 10 * H }).idle?.at).toBe(now + 30 * M);
    // A creation time ahead of our clock (skew with the API server) counts as now.
    const skewed = running({ createdAt: now + 5 * S, readyStatus: 'True', readySince: now + 5 * S });
    expect(at(now, skewed).maxDuration?.at).toBe(now + 8 * H);
    expect(at(now, skewed).idle?.at).toBe(now + 30 * M);
    expect(idleSince(running(), { activityAt: Number.NaN }, now)).toBe(T0 + M);
  });
});

describe('explanations', () => {
  it('says why and what to do', () => {
    const d = at(T0 + 2 * H, running());
    expect(describeDeadline(d.due!)).toMatch(
      /No activity since 2025-01-31T10:01:00.000Z, longer than its idleTimeout 30m: hibernated .* Set spec.state to running/,
    );
    const old = at(T0 + 9 * H, running()).due!;
    expect(describeDeadline(old)).toMatch(
      /Older than its maxSessionDuration 8h .* raise spec.maxSessionDuration/,
    );
  });
});

describe('properties', () => {
  const arbFacts = fc.record({
    state: fc.constantFrom('running', 'hibernated', 'terminated'),
    phase: fc.constantFrom('Running', 'Pending', 'Hibernated', 'Failed', undefined),
    readyStatus: fc.constantFrom('True', 'False', undefined),
    readyAfter: fc.integer({ min: 0, max: 10 * H }),
    idleMs: fc.integer({ min: 0, max: 10 * H }),
    maxMs: fc.integer({ min: 0, max: 20 * H }),
    disabled: fc.boolean(),
  });
  type Generated = typeof arbFacts extends fc.Arbitrary<infer T> ? T : never;
  const toFacts = (f: Generated): SessionFacts => ({
    uid: 'u',
    state: f.state,
    ...(f.phase ? { phase: f.phase } : {}),
    ...(f.readyStatus ? { readyStatus: f.readyStatus, readySince: T0 + f.readyAfter } : {}),
    reaperDisabled: f.disabled,
    deleting: false,
    createdAt: T0,
    idleTimeout: `${f.idleMs}ms`.replace(/^0ms$/, '0'),
    maxSessionDuration: `${f.maxMs}ms`.replace(/^0ms$/, '0'),
  });

  it('nothing is ever due before its deadline, and what is due is the earliest-due action', () => {
    fc.assert(
      fc.property(
        arbFacts,
        fc.integer({ min: 0, max: 30 * H }),
        fc.option(fc.integer({ min: 0, max: 30 * H })),
        (f, offset, activity) => {
          const now = T0 + offset;
          const d = computeDeadlines(
            toFacts(f),
            activity === null ? {} : { activityAt: T0 + activity },
            defaults,
            now,
          );
          if (d.due) expect(d.due.at).toBeLessThanOrEqual(now);
          if (d.idle && d.idle.at > now && d.maxDuration && d.maxDuration.at > now)
            expect(d.due).toBeUndefined();
          if (d.maxDuration && d.maxDuration.at <= now) expect(d.due?.action).toBe('terminate');
          if (d.next && d.due) expect(d.next.at).toBeLessThanOrEqual(d.due.at);
        },
      ),
    );
  });

  it('more recent activity never brings the idle deadline earlier', () => {
    fc.assert(
      fc.property(
        arbFacts,
        fc.integer({ min: 0, max: 30 * H }),
        fc.integer({ min: 0, max: 30 * H }),
        fc.integer({ min: 0, max: H }),
        (f, offset, a, more) => {
          const now = T0 + offset;
          const facts = toFacts(f);
          const before = computeDeadlines(facts, { activityAt: T0 + a }, defaults, now).idle?.at;
          const after = computeDeadlines(facts, { activityAt: T0 + a + more }, defaults, now).idle?.at;
          if (before !== undefined && after !== undefined) expect(after).toBeGreaterThanOrEqual(before);
        },
      ),
    );
  });

  it('a session with activity within its timeout is never due to hibernate', () => {
    fc.assert(
      fc.property(
        arbFacts,
        fc.integer({ min: 0, max: 30 * H }),
        fc.integer({ min: 0, max: 10 * H }),
        (f, offset, ago) => {
          const now = T0 + offset;
          const facts = toFacts(f);
          fc.pre(ago < f.idleMs);
          const d = computeDeadlines(facts, { activityAt: now - ago }, defaults, now);
          expect(d.due?.action).not.toBe('hibernate');
        },
      ),
    );
  });

  it('opted-out, terminated and deleting sessions never have a deadline', () => {
    fc.assert(
      fc.property(arbFacts, fc.integer({ min: 0, max: 30 * H }), (f, offset) => {
        const facts = toFacts(f);
        for (const variant of [
          { ...facts, reaperDisabled: true },
          { ...facts, state: 'terminated' },
          { ...facts, deleting: true },
        ]) {
          expect(computeDeadlines(variant, {}, defaults, T0 + offset).next).toBeUndefined();
        }
      }),
    );
  });
});

describe('the platform’s limits', () => {
  const limits = { allowOptOut: false, maxIdleTimeoutMs: 2 * H, maxSessionDurationMs: 12 * H };
  const limited = (now: number, facts: SessionFacts, l = limits) =>
    computeDeadlines(facts, {}, { ...defaults, limits: l }, now);

  it('ignore the opt-out annotation unless allowed, and say so', () => {
    const d = limited(T0 + 100 * H, running({ reaperDisabled: true }));
    expect(d.due).toMatchObject({ action: 'terminate', reason: 'MaxDurationExceeded', at: T0 + 8 * H });
    expect(d.limited).toEqual([
      {
        setting: 'optOut',
        requested: 'true',
        message: expect.stringContaining(
          'REAPER_OPT_OUT_ALLOWED (chart value sessions.limits.allowReaperOptOut)',
        ),
      },
    ]);
    const allowed = limited(T0 + 100 * H, running({ reaperDisabled: true }), {
      ...limits,
      allowOptOut: true,
    });
    expect(allowed).toEqual({ notes: ['reaper disabled by annotation'], limited: [] });
    // A terminated Session has nothing left to limit, and is not told about it.
    const ended = limited(T0, running({ state: 'terminated', reaperDisabled: true, idleTimeout: '0' }));
    expect(ended).toEqual({ notes: ['state is terminated'], limited: [] });
  });

  it('turn a timeout of 0 (never) into the maximum', () => {
    const d = limited(T0 + 20 * H, running({ idleTimeout: '0', maxSessionDuration: '0' }));
    expect(d.idle).toMatchObject({ at: T0 + M + 2 * H, timeoutMs: 2 * H });
    expect(d.maxDuration).toMatchObject({ at: T0 + 12 * H, timeoutMs: 12 * H });
    expect(d.due?.action).toBe('terminate');
    expect(d.limited.map((l) => [l.setting, l.requested])).toEqual([
      ['idleTimeout', '0'],
      ['maxSessionDuration', '0'],
    ]);
    expect(d.limited[0]?.message).toBe(
      'spec.idleTimeout 0 (never) is beyond what the platform allows: the session is hibernated when idle for 2h, the maximum set by MAX_IDLE_TIMEOUT (chart value sessions.limits.maxIdleTimeout). Set spec.idleTimeout to at most 2h.',
    );
  });

  it('cap longer timeouts and leave those within them alone', () => {
    const long = limited(T0 + 2 * M, running({ idleTimeout: '999h', maxSessionDuration: '48h' }));
    expect(long.idle?.timeoutMs).toBe(2 * H);
    expect(long.maxDuration?.timeoutMs).toBe(12 * H);
    expect(long.limited.map((l) => l.requested)).toEqual(['999h', '48h']);
    const within = limited(T0 + 2 * M, running({ idleTimeout: '2h', maxSessionDuration: '12h' }));
    expect(within.idle?.timeoutMs).toBe(2 * H);
    expect(within.maxDuration?.timeoutMs).toBe(12 * H);
    expect(within.limited).toEqual([]);
  });

  it('apply to text that is not a duration, and are off where the maximum is 0', () => {
    expect(limited(T0, running({ idleTimeout: 'soon' })).idle?.timeoutMs).toBe(2 * H);
    const none = { allowOptOut: false, maxIdleTimeoutMs: 0, maxSessionDurationMs: 0 };
    const d = limited(T0 + 100 * H, running({ idleTimeout: '0', maxSessionDuration: '0' }), none);
    expect(d.next).toBeUndefined();
    expect(d.limited).toEqual([]);
  });

  it('always leave a running session with both deadlines, whatever it asks for', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('0', '1s', '30m', '2h', '3h', '8h', '999999999h', 'x'),
        fc.constantFrom('0', '1s', '8h', '12h', '13h', '999999999h', 'x'),
        fc.boolean(),
        (idleTimeout, maxSessionDuration, reaperDisabled) => {
          const d = limited(T0 + 2 * M, running({ idleTimeout, maxSessionDuration, reaperDisabled }));
          expect(d.idle?.timeoutMs).toBeLessThanOrEqual(2 * H);
          expect(d.maxDuration?.timeoutMs).toBeLessThanOrEqual(12 * H);
        },
      ),
    );
  });
});

describe('durations', () => {
  it('reads a duration the same however often it is asked (parsed once), and text that is not one as none', () => {
    for (let i = 0; i < 3; i++) {
      expect(timeoutMs('1h30m', 0)).toBe(90 * M);
      expect(timeoutMs('soon', 0)).toBeUndefined();
      expect(timeoutMs(undefined, 5 * M)).toBe(5 * M);
    }
    // Many distinct texts (the cache is bounded and starts over) still read right.
    for (let i = 1; i <= 600; i++) expect(timeoutMs(`${i}s`, 0)).toBe(i * S);
    expect(timeoutMs('1h30m', 0)).toBe(90 * M);
  });
});
