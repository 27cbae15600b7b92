import { describe, expect, it } from 'vitest';
import { ReportSchedule } from './report-schedule.js';

const schedule = () => new ReportSchedule({ intervalMs: 30_000, minBackoffMs: 1_000, random: () => 0.5 });

describe('ReportSchedule', () => {
  it('reports nothing while no client was ever connected', () => {
    const s = schedule();
    for (let t = 0; t < 120_000; t += 5_000) expect(s.sample(t, false)).toBeUndefined();
  });

  it('reports at once when a client connects, then once per interval while it stays', () => {
    const s = schedule();
    const sent: number[] = [];
    for (let t = 0; t <= 90_000; t += 5_000) {
      const at = s.sample(t, true);
      if (at !== undefined) {
        sent.push(at);
        s.succeeded(at);
      }
    }
    expect(sent).toEqual([0, 30_000, 60_000, 90_000]);
  });

  it('reports the moment the last client was seen as soon as it leaves, then nothing more', () => {
    const s = schedule();
    s.succeeded(s.sample(0, true) as number);
    expect(s.sample(5_000, true)).toBeUndefined();
    expect(s.sample(10_000, false)).toBe(5_000);
    s.succeeded(5_000);
    for (let t = 15_000; t < 200_000; t += 5_000) expect(s.sample(t, false)).toBeUndefined();
  });

  it('backs off exponentially up to the interval while the reaper is down, and keeps only the latest time', () => {
    const s = schedule();
    const delays: number[] = [];
    let t = 0;
    let at = s.sample(t, true);
    while (delays.length < 8) {
      expect(at).toBe(t);
      delays.push(s.failed(t));
      // Samples in between send nothing (no tight loop) but keep the latest time.
      expect(s.sample(t + 1, true)).toBeUndefined();
      t += delays.at(-1) as number;
      at = s.sample(t, true);
    }
    expect(delays).toEqual([750, 1_500, 3_000, 6_000, 12_000, 22_500, 22_500, 22_500]);
    expect(s.consecutiveFailures).toBe(8);
    // Back: the report that gets through carries the latest moment seen.
    s.succeeded(at as number);
    expect(s.consecutiveFailures).toBe(0);
    expect(s.sample(t + 5_000, true)).toBeUndefined();
  });

  it('spreads reports with jitter within ±10 % of the interval', () => {
    const low = new ReportSchedule({ intervalMs: 30_000, minBackoffMs: 1_000, random: () => 0 });
    low.succeeded(low.sample(0, true) as number);
    expect(low.sample(26_999, true)).toBeUndefined();
    expect(low.sample(27_000, true)).toBe(27_000);
  });
});
