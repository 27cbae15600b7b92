import { describe, expect, it } from 'vitest';
import { PassedOnReports } from './passed-on-reports.js';

describe('PassedOnReports', () => {
  it('keeps the latest time per session, across one rotation and no longer', () => {
    const passed = new PassedOnReports();
    passed.record('ns.a', 10);
    passed.record('ns.a', 5);
    passed.record('ns.b', 7);
    expect(new Map(passed.entries())).toEqual(
      new Map([
        ['ns.a', 10],
        ['ns.b', 7],
      ]),
    );
    passed.rotate();
    passed.record('ns.b', 20);
    passed.record('ns.c', 3);
    expect(new Map(passed.entries())).toEqual(
      new Map([
        ['ns.a', 10],
        ['ns.b', 20],
        ['ns.c', 3],
      ]),
    );
    passed.rotate();
    expect(new Map(passed.entries())).toEqual(
      new Map([
        ['ns.b', 20],
        ['ns.c', 3],
      ]),
    );
    passed.rotate();
    expect([...passed.entries()]).toEqual([]);
    expect(passed.size).toBe(0);
  });

  it('never lets an older generation move a time back', () => {
    const passed = new PassedOnReports();
    passed.record('ns.a', 50);
    passed.rotate();
    passed.record('ns.a', 40);
    expect(new Map(passed.entries()).get('ns.a')).toBe(50);
  });
});
