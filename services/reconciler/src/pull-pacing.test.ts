import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAckSubject } from './paced-pull.js';
import { nextPull, type PartitionPullState, type PullPacing } from './pull-pacing.js';

const pacing: PullPacing = { bound: 16, keepAliveMs: 1_250 };
const idle: PartitionPullState = {
  held: 0,
  pullOpen: false,
  keepAliveOpen: false,
  lastSentAtMs: undefined,
  now: 10_000,
};

/**
 * A partition as the 10,000-Session resync made it: the server hands out whatever a pull asks for
 * (its own count of what the worker holds misses the items a newer trigger replaced), triggers
 * come for keys the worker holds and for new ones, reconciles end at random, pulls expire.
 */
type Step =
  | { op: 'deliver'; key: number }
  | { op: 'finish' }
  | { op: 'expire' }
  | { op: 'tick'; ms: number };

const steps: fc.Arbitrary<Step[]> = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant('deliver' as const), key: fc.nat(200) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('finish' as const) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('expire' as const) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.nat(3_000) }) },
  ),
  { maxLength: 400 },
);

describe('nextPull', () => {
  it('never lets a worker hold more keys of a partition than the bound, however the server delivers', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 32 }), steps, (bound, script) => {
        const held = new Set<number>();
        let asked = 0;
        let keepAliveOpen = false;
        let lastSentAtMs: number | undefined;
        let now = 0;
        let longestSilence = 0;
        const decide = () => {
          const decision = nextPull(
            { held: held.size, pullOpen: asked > 0, keepAliveOpen, lastSentAtMs, now },
            { bound, keepAliveMs: 1_250 },
          );
          if (decision.kind === 'pull') {
            expect(decision.batch).toBeGreaterThan(0);
            asked = decision.batch;
          }
          if (decision.kind === 'keepalive') keepAliveOpen = true;
          if (decision.kind !== 'wait') lastSentAtMs = now;
          if (decision.kind === 'wait' && decision.atMs !== undefined)
            expect(decision.atMs).toBeGreaterThan(now);
        };
        decide();
        for (const step of script) {
          if (step.op === 'deliver' && asked > 0) {
            // Only an open pull that may deliver gets an item (a keep-alive is refused it).
            asked--;
            held.add(step.key);
          } else if (step.op === 'deliver' && keepAliveOpen) {
            keepAliveOpen = false; // the server's 409: the item is larger than max_bytes
          } else if (step.op === 'finish') {
            const first = held.values().next();
            if (!first.done) held.delete(first.value);
          } else if (step.op === 'expire') {
            asked = 0;
            keepAliveOpen = false;
          } else if (step.op === 'tick') {
            now += step.ms;
          }
          expect(held.size).toBeLessThanOrEqual(bound);
          decide();
          // With nothing open, a worker under its bound always asks; at its bound it never goes
          // longer than keepAliveMs without a pull (the pin's renewal).
          if (asked === 0 && !keepAliveOpen && lastSentAtMs !== undefined)
            longestSilence = Math.max(longestSilence, now - lastSentAtMs);
          if (held.size < bound) expect(asked > 0).toBe(true);
        }
        expect(longestSilence).toBeLessThan(1_250);
      }),
    );
  });

  it('asks for exactly the room left', () => {
    expect(nextPull({ ...idle, held: 5 }, pacing)).toEqual({ kind: 'pull', batch: 11 });
    expect(nextPull({ ...idle, held: 0 }, pacing)).toEqual({ kind: 'pull', batch: 16 });
  });

  it('waits while a pull is open, whatever room there is', () => {
    expect(nextPull({ ...idle, held: 0, pullOpen: true }, pacing)).toEqual({ kind: 'wait', atMs: undefined });
  });

  it('at the bound sends a keep-alive once keepAliveMs passed since the last pull, and waits until then', () => {
    expect(nextPull({ ...idle, held: 16, lastSentAtMs: 9_000 }, pacing)).toEqual({ kind: 'wait', atMs: 10_250 });
    expect(nextPull({ ...idle, held: 16, lastSentAtMs: 8_750 }, pacing)).toEqual({ kind: 'keepalive' });
    expect(nextPull({ ...idle, held: 16 }, pacing)).toEqual({ kind: 'keepalive' });
    expect(nextPull({ ...idle, held: 16, keepAliveOpen: true, lastSentAtMs: 1 }, pacing)).toEqual({
      kind: 'wait',
      atMs: undefined,
    });
  });

  it('over the bound (a late item of a pull given up for lost) asks for nothing', () => {
    expect(nextPull({ ...idle, held: 17, lastSentAtMs: 9_900 }, pacing).kind).toBe('wait');
  });
});

describe('parseAckSubject', () => {
  it('reads the delivery count, stream sequence and stored time from both forms of the reply subject', () => {
    expect(parseAckSubject('$JS.ACK.WORK.reconciler-p3.2.1047.311.1764489600123456789.12')).toEqual({
      deliveryCount: 2,
      seq: 1047,
      storedAtMs: 1764489600123,
    });
    expect(
      parseAckSubject('$JS.ACK.hub.ACCHASH.WORK.reconciler-p3.1.88.7.1764489600000000000.0.tok'),
    ).toEqual({ deliveryCount: 1, seq: 88, storedAtMs: 1764489600000 });
  });

  it('refuses a reply subject that is not a JetStream delivery', () => {
    expect(() => parseAckSubject('_INBOX.abc.1')).toThrow(/not a JetStream delivery/);
    expect(() => parseAckSubject('$JS.ACK.WORK.c.x.y.1.2.3')).toThrow(/not a JetStream delivery/);
  });
});
