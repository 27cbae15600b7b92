import { readdirSync, readFileSync } from 'node:fs';

/** A field of /proc/<pid>/status in bytes: VmHWM is the peak resident set, VmRSS the current one. */
export function procStatus(pid: number | undefined, field: 'VmHWM' | 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
}

/** CPU seconds (user + system) the process has used, from /proc/<pid>/stat (clock ticks of 1/100 s). */
export function procCpuSeconds(pid: number | undefined): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * The one process whose command line has every one of `parts` (arguments joined by spaces): how
 * the benchmarks find a process they did not start as a child, such as the cluster's
 * kube-apiserver (its arguments name the cluster's state directory). Throws unless exactly one.
 */
export function pidOf(...parts: string[]): number {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let commandLine: string;
    try {
      commandLine = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      continue; // ended meanwhile
    }
    if (parts.every((part) => commandLine.includes(part))) found.push(Number(entry));
  }
  if (found.length !== 1)
    throw new Error(`expected one process with ${JSON.stringify(parts)}, found ${found.length}`);
  return found[0] as number;
}
