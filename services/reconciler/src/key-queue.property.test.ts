import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyedWorkQueue } from './key-queue.js';

/** A step of a worker pool driving the queue: a trigger for a key, a slot taking work, a slot finishing. */
type Step = { op: 'add'; key: string; first: boolean } | { op: 'take' } | { op: 'finish'; slot: number };

const steps = fc.array(
  fc.oneof(
    fc.record({
      op: fc.constant('add' as const),
      key: fc.constantFrom('a', 'b', 'c', 'd'),
      first: fc.boolean(),
    }),
    fc.record({ op: fc.constant('take' as const) }),
    fc.record({ op: fc.constant('finish' as const), slot: fc.nat(7) }),
  ),
  { maxLength: 200 },
);

describe('KeyedWorkQueue', () => {
  it('never hands one key out twice at once, loses no trigger, and folds repeats', () => {
    fc.assert(
      fc.property(steps, (script: Step[]) => {
        const queue = new KeyedWorkQueue<number>();
        const running: { key: string; item: number }[] = [];
        /** Per key, the newest trigger not yet covered by a reconcile that started after it. */
        const uncovered = new Map<string, number>();
        /** Keys with a trigger added as `first` not yet covered. */
        const firstKeys = new Set<string>();
        let serial = 0;
        let handedOut = 0;
        const take = () => {
          const next = queue.next();
          if (!next) return;
          handedOut++;
          // Never two at once for a key.
          expect(running.some((r) => r.key === next.key)).toBe(false);
          // The item handed out is the newest trigger of that key.
          expect(next.item).toBe(uncovered.get(next.key));
          // A key added as `first` and ready goes before any other.
          const readyFirst = [...firstKeys].some((k) => !running.some((r) => r.key === k));
          if (readyFirst) expect(firstKeys.has(next.key)).toBe(true);
          uncovered.delete(next.key);
          firstKeys.delete(next.key);
          running.push(next);
        };
        for (const step of script) {
          if (step.op === 'add') {
            serial++;
            queue.add(step.key, serial, step.first);
            uncovered.set(step.key, serial);
            if (step.first) firstKeys.add(step.key);
          } else if (step.op === 'take') take();
          else if (running.length > 0) {
            const [done] = running.splice(step.slot % running.length, 1);
            queue.done((done as { key: string }).key);
          }
        }
        // Drain: finish whatever runs and take whatever is ready, until nothing is left.
        for (;;) {
          for (const done of running.splice(0)) queue.done(done.key);
          take();
          if (running.length === 0) break;
        }
        // Every trigger was covered by a reconcile that started after it.
        expect(uncovered.size).toBe(0);
        expect(queue.waiting).toBe(0);
        expect(queue.inProgress).toBe(0);
        // Coalescing: never more reconciles than triggers.
        expect(handedOut).toBeLessThanOrEqual(serial);
      }),
      { numRuns: 500 },
    );
  });

  it('queues a key added while it is processed once, and hands it out only after done', () => {
    const queue = new KeyedWorkQueue<string>();
    queue.add('k', 'first');
    expect(queue.next()).toEqual({ key: 'k', item: 'first' });
    expect(queue.add('k', 'second')).toBeUndefined();
    expect(queue.add('k', 'third')).toBe('second');
    expect(queue.next()).toBeUndefined();
    queue.done('k');
    expect(queue.next()).toEqual({ key: 'k', item: 'third' });
    queue.done('k');
    expect(queue.next()).toBeUndefined();
  });

  it('hands out keys added as first before the others, each level oldest first', () => {
    const queue = new KeyedWorkQueue<string>();
    queue.add('a', 'create a');
    queue.add('b', 'create b');
    queue.add('c', 'pod of c', true);
    queue.add('a', 'pod of a', true); // waiting behind b: moved ahead of it
    queue.add('c', 'create c'); // a later trigger keeps c ahead
    expect(queue.next()).toEqual({ key: 'c', item: 'create c' });
    expect(queue.next()).toEqual({ key: 'a', item: 'pod of a' });
    queue.add('a', 'pod of a again', true); // while a is worked on
    queue.done('a');
    expect(queue.next()).toEqual({ key: 'a', item: 'pod of a again' });
    expect(queue.next()).toEqual({ key: 'b', item: 'create b' });
    expect(queue.next()).toBeUndefined();
  });

  it('gives back the waiting items that match, keeping the order of the rest', () => {
    const queue = new KeyedWorkQueue<{ partition: number }>();
    queue.add('a', { partition: 1 });
    queue.add('b', { partition: 2 });
    queue.add('c', { partition: 1 });
    queue.add('d', { partition: 3 });
    expect(queue.remove((item) => item.partition === 1)).toHaveLength(2);
    expect(queue.next()?.key).toBe('b');
    expect(queue.next()?.key).toBe('d');
    expect(queue.next()).toBeUndefined();
  });

  it('counts each held key once, waiting or being worked on, by its newest item', () => {
    const queue = new KeyedWorkQueue<{ partition: number }>();
    queue.add('a', { partition: 0 });
    queue.add('b', { partition: 0 });
    queue.add('c', { partition: 1 });
    queue.next(); // a is worked on
    queue.add('a', { partition: 0 }); // and waits again: still one key
    const ofPartition = (p: number) => queue.count((item) => item.partition === p);
    expect(ofPartition(0)).toBe(2);
    expect(ofPartition(1)).toBe(1);
    queue.done('a'); // handed out again later: still held
    expect(ofPartition(0)).toBe(2);
    queue.remove((item) => item.partition === 0);
    expect(ofPartition(0)).toBe(0);
    expect(ofPartition(1)).toBe(1);
  });
});
