import { readFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { parsePidStatTicks, procStatFields } from './process-cost.mjs';

/**
 * What the machine and every process of a bench were doing around a slow single change (issue
 * 13: a few of 50 single changes took 250–741 ms where the p50 was ~100 ms, several seconds
 * apart, while the trace saw the whole cluster slow in those seconds). Read from /proc and from
 * the driver's own event loop and GC only: no API-server request, nothing asked of the services.
 *
 * All times are epoch milliseconds (performance.timeOrigin + performance.now()), so they line up
 * with the GC lines of the services (--trace-gc) and of the Go components (GODEBUG=gctrace=1),
 * placed on the same clock from each process's start time.
 */

const TICKS_PER_SECOND = 100;
const nowEpochMs = () => performance.timeOrigin + performance.now();

/** One sampling interval: shares of a core (1 = one core busy for the whole interval). */
export interface MachineSample {
  /** The interval's end. */
  at: number;
  ms: number;
  /** The machine's time by kind over both cores (/proc/stat's first line); steal is the host taking our vCPUs. */
  cores: { user: number; nice: number; system: number; idle: number; iowait: number; steal: number };
  /** Runnable and blocked threads at the interval's end (/proc/stat procs_running, procs_blocked). */
  running: number;
  blocked: number;
  /** Per named process, the cores it used over the interval. */
  processes: Record<string, number>;
  /** The cores the machine used beyond the named processes (anyone else's work, the kernel's). */
  unnamed: number;
  /** The longest the driver's event loop was late in the interval (a 10 ms timer's lag). */
  driverLoopLagMs: number;
}

/** A stretch where something held a thread: an event-loop stall, a GC pause or a Go GC cycle. */
export interface Stall {
  source: string;
  kind: string;
  /** Start, epoch ms. */
  at: number;
  ms: number;
}

/** The machine's counters in /proc/stat: the aggregate cpu line (ticks) and the run queue. */
export function parseProcStat(text: string): { ticks: number[]; running: number; blocked: number } {
  const cpu = /^cpu\s+([\d ]+)$/m.exec(text)?.[1] ?? '';
  return {
    ticks: cpu.trim().split(/\s+/).map(Number),
    running: Number(/^procs_running (\d+)$/m.exec(text)?.[1] ?? 0),
    blocked: Number(/^procs_blocked (\d+)$/m.exec(text)?.[1] ?? 0),
  };
}

/** When a process started, epoch ms (10 ms resolution): /proc/<pid>/stat's starttime after boot. */
export function processStartEpochMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const startTicks = Number(procStatFields(stat)[19]);
  const bootSeconds = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
  return bootSeconds * 1000 + (startTicks / TICKS_PER_SECOND) * 1000;
}

/**
 * V8's --trace-gc lines: `[pid:0x…]  1234 ms: Scavenge 4.2 (5.0) -> 3.9 (6.0) MB, 0.92 / 0.00 ms …`,
 * the time counted from the isolate's start (a few ms after the process's: `startEpochMs` is the
 * process's, so a pause may be placed up to ~30 ms early). The pause is the main thread's.
 */
export function parseV8TraceGc(lines: readonly string[], source: string, startEpochMs: number): Stall[] {
  const stalls: Stall[] = [];
  for (const line of lines) {
    const m =
      /^\[\d+:0x[0-9a-f]+\]\s+(\d+) ms: (Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Compact)[^,]*, ([\d.]+) \//.exec(
        line,
      );
    if (m) stalls.push({ source, kind: m[2] as string, at: startEpochMs + Number(m[1]), ms: Number(m[3]) });
  }
  return stalls;
}

/**
 * Go's GODEBUG=gctrace=1 lines: `gc 14 @44.466s 0%: 0.13+84+0.005 ms clock, …`, the start counted
 * from the program's start; a cycle lasts its stop-the-world sweep termination, concurrent mark
 * and mark termination (the mark runs beside the program, taking a quarter of its CPU and
 * assists from goroutines that allocate).
 */
export function parseGoGcTrace(text: string, source: string, startEpochMs: number): Stall[] {
  const stalls: Stall[] = [];
  for (const m of text.matchAll(/^gc \d+ @([\d.]+)s \d+%: ([\d.]+)\+([\d.]+)\+([\d.]+) ms clock/gm))
    stalls.push({
      source,
      kind: 'gc cycle',
      at: startEpochMs + Number(m[1]) * 1000,
      ms: Number(m[2]) + Number(m[3]) + Number(m[4]),
    });
  return stalls;
}

/**
 * Samples /proc/stat and each named process's CPU every `intervalMs`, and keeps the driver's own
 * event-loop stalls and GC pauses, from start() to stop(). Cheap enough to run beside the single
 * changes: a dozen small /proc reads per sample.
 */
export class MachineTrace {
  readonly samples: MachineSample[] = [];
  readonly driverStalls: Stall[] = [];
  private timers: NodeJS.Timeout[] = [];
  private observer: PerformanceObserver | undefined;
  private last:
    | { at: number; stat: ReturnType<typeof parseProcStat>; ticks: Record<string, number> }
    | undefined;
  private loopLagMax = 0;

  constructor(
    private readonly pids: Record<string, number | undefined>,
    private readonly intervalMs = 250,
    /** Event-loop lags over this are kept as stalls of the driver. */
    private readonly stallMs = 30,
  ) {}

  start(): void {
    this.last = this.read();
    this.timers.push(setInterval(() => this.sample(), this.intervalMs));
    const LAG_TIMER_MS = 10;
    let expected = performance.now() + LAG_TIMER_MS;
    this.timers.push(
      setInterval(() => {
        const now = performance.now();
        const lag = now - expected;
        expected = now + LAG_TIMER_MS;
        this.loopLagMax = Math.max(this.loopLagMax, lag);
        if (lag >= this.stallMs)
          this.driverStalls.push({ source: 'driver', kind: 'event loop', at: nowEpochMs() - lag, ms: lag });
      }, LAG_TIMER_MS),
    );
    this.observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries())
        if (entry.duration >= 5)
          this.driverStalls.push({
            source: 'driver',
            kind: 'gc',
            at: performance.timeOrigin + entry.startTime,
            ms: entry.duration,
          });
    });
    this.observer.observe({ entryTypes: ['gc'] });
  }

  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.observer?.disconnect();
  }

  private read() {
    const ticks: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.pids))
      if (pid !== undefined)
        try {
          ticks[name] = parsePidStatTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
        } catch {
          // ended
        }
    return { at: nowEpochMs(), stat: parseProcStat(readFileSync('/proc/stat', 'utf8')), ticks };
  }

  private sample(): void {
    const now = this.read();
    const before = this.last;
    this.last = now;
    if (!before) return;
    const seconds = (now.at - before.at) / 1000;
    const cores = (ticks: number) => Math.round((ticks / TICKS_PER_SECOND / seconds) * 100) / 100;
    const delta = (i: number) => (now.stat.ticks[i] ?? 0) - (before.stat.ticks[i] ?? 0);
    const processes: Record<string, number> = {};
    for (const [name, t] of Object.entries(now.ticks))
      if (before.ticks[name] !== undefined) processes[name] = cores(t - (before.ticks[name] as number));
    const busy = cores(delta(0) + delta(1) + delta(2) + delta(5) + delta(6));
    const named = Object.values(processes).reduce((a, b) => a + b, 0);
    this.samples.push({
      at: now.at,
      ms: Math.round(now.at - before.at),
      // /proc/stat's cpu line: user nice system idle iowait irq softirq steal
      cores: {
        user: cores(delta(0)),
        nice: cores(delta(1)),
        system: cores(delta(2) + delta(5) + delta(6)),
        idle: cores(delta(3)),
        iowait: cores(delta(4)),
        steal: cores(delta(7)),
      },
      running: now.stat.running,
      blocked: now.stat.blocked,
      processes,
      unnamed: Math.max(0, Math.round((busy - named) * 100) / 100),
      driverLoopLagMs: Math.round(this.loopLagMax),
    });
    this.loopLagMax = 0;
  }
}

/** The samples and stalls that overlap [from, to] (epoch ms). */
export function during(
  from: number,
  to: number,
  samples: readonly MachineSample[],
  stalls: readonly Stall[],
): { samples: MachineSample[]; stalls: Stall[] } {
  return {
    samples: samples.filter((s) => s.at >= from && s.at - s.ms <= to),
    stalls: stalls.filter((s) => s.at <= to && s.at + s.ms >= from),
  };
}

/** One line per sample: the time, the machine (steal, iowait, idle, run queue) and the busiest processes. */
export function describeSample(s: MachineSample): string {
  const busiest = Object.entries(s.processes)
    .filter(([, c]) => c >= 0.04)
    .sort((a, b) => b[1] - a[1])
    .map(([name, c]) => `${name} ${c}`)
    .join(', ');
  return (
    `${new Date(s.at).toISOString().slice(11, 23)} (${s.ms} ms) user ${s.cores.user} nice ${s.cores.nice} ` +
    `sys ${s.cores.system} idle ${s.cores.idle} iowait ${s.cores.iowait} steal ${s.cores.steal} ` +
    `run ${s.running} blocked ${s.blocked} driver-lag ${s.driverLoopLagMs} ms | ${busiest}, unnamed ${s.unnamed}`
  );
}

export function describeStall(s: Stall): string {
  return `${new Date(s.at).toISOString().slice(11, 23)} ${s.source} ${s.kind} ${Math.round(s.ms)} ms`;
}
