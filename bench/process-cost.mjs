// What a process costs, read from /proc: the one reader of the benchmarks, the TypeScript ones
// (types in process-cost.d.mts) and the scripts Node runs as they are (service-sampler.mjs,
// activity-agent.mjs) alike.
import { readdirSync, readFileSync } from 'node:fs';

/**
 * A field of /proc/<pid>/status in bytes: VmHWM is the peak resident set, VmRSS the current one,
 * RssAnon and RssFile its anonymous and file-backed parts.
 */
export function procStatus(pid, field) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
}

/**
 * The fields of a /proc/<pid>/stat text after the command, which may hold spaces and ')': the
 * state is [0], utime and stime [11] and [12], starttime [19] (the man page's numbers less 3).
 */
export function procStatFields(text) {
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** user + system clock ticks (1/100 s) of a process, from its /proc/<pid>/stat text. */
export function parsePidStatTicks(text) {
  const fields = procStatFields(text);
  return Number(fields[11]) + Number(fields[12]);
}

/** CPU seconds (user + system) the process has used, from /proc/<pid>/stat (clock ticks of 1/100 s). */
export function procCpuSeconds(pid) {
  return parsePidStatTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')) / 100;
}

/**
 * The one process whose command line has every one of `parts` (arguments joined by spaces): how
 * the benchmarks find a process they did not start as a child, such as the cluster's
 * kube-apiserver (its arguments name the cluster's state directory). Throws unless exactly one.
 */
export function pidOf(...parts) {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let commandLine;
    try {
      commandLine = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      continue; // ended meanwhile
    }
    if (parts.every((part) => commandLine.includes(part))) found.push(Number(entry));
  }
  if (found.length !== 1)
    throw new Error(`expected one process with ${JSON.stringify(parts)}, found ${found.length}`);
  return found[0];
}
