import { describe, expect, it } from 'vitest';
import { parsePidStatTicks } from '../../bench/process-cost.mjs';
import { during, parseGoGcTrace, parseProcStat, parseV8TraceGc } from '../../bench/stall-trace.js';

describe('the stall trace of the session-pipeline bench', () => {
  it('reads steal and the run queue from /proc/stat', () => {
    const stat = parseProcStat(
      'cpu  3378496 619202 395536 2386724 8051 0 67600 5283 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\nprocs_running 13\nprocs_blocked 2\n',
    );
    expect(stat.ticks[7]).toBe(5283);
    expect(stat.ticks[4]).toBe(8051);
    expect(stat).toMatchObject({ running: 13, blocked: 2 });
  });

  it("reads a process's CPU ticks even when its name holds spaces and parentheses", () => {
    const stat =
      '4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 25 0 0 20 0 11 0 987654 1000000 20000 18446744073709551615';
    expect(parsePidStatTicks(stat)).toBe(175);
  });

  it("places V8's --trace-gc pauses on the clock from the process's start", () => {
    const lines = [
      '{"level":30,"msg":"ready"}',
      '[17589:0x3e864e40]       42 ms: Scavenge 3.9 (4.0) -> 3.6 (5.0) MB, 1.31 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ',
      '[17606:0x1fc9ee80]     7029 ms: Mark-Compact 182.6 (208.4) -> 147.0 (182.9) MB, 855.19 / 0.00 ms  (average mu = 0.862, current mu = 0.862) testing; GC in old space requested',
    ];
    expect(parseV8TraceGc(lines, 'watcher-0', 1_000_000)).toEqual([
      { source: 'watcher-0', kind: 'Scavenge', at: 1_000_042, ms: 1.31 },
      { source: 'watcher-0', kind: 'Mark-Compact', at: 1_007_029, ms: 855.19 },
    ]);
  });

  it("takes a Go GC cycle's start and its three phases from gctrace", () => {
    const log =
      'I1201 06:53:40 some klog line\ngc 14 @44.466s 0%: 0.13+84+0.005 ms clock, 0.26+0.12/42/120+0.011 ms cpu, 165->165->79 MB, 194 MB goal, 3 MB stacks, 0 MB globals, 2 P\n';
    const [cycle, ...rest] = parseGoGcTrace(log, 'kubeApiserver', 2_000_000);
    expect(rest).toEqual([]);
    expect(cycle?.at).toBe(2_044_466);
    expect(cycle?.ms).toBeCloseTo(84.135, 6);
  });

  it('keeps the samples and pauses that overlap a window, and no others', () => {
    const sample = (at: number) => ({
      at,
      ms: 250,
      cores: { user: 0, nice: 0, system: 0, idle: 2, iowait: 0, steal: 0 },
      running: 1,
      blocked: 0,
      processes: {},
      unnamed: 0,
      driverLoopLagMs: 0,
    });
    const stall = (at: number, ms: number) => ({ source: 'x', kind: 'gc cycle', at, ms });
    const found = during(
      1_000,
      1_400,
      [sample(900), sample(1_150), sample(1_650), sample(1_700)],
      [stall(500, 400), stall(900, 200), stall(1_400, 10), stall(1_401, 10)],
    );
    expect(found.samples.map((s) => s.at)).toEqual([1_150, 1_650]);
    expect(found.stalls.map((s) => s.at)).toEqual([900, 1_400]);
  });
});
