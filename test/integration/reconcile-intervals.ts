import { existsSync, readFileSync } from 'node:fs';

/**
 * Reads what reconcilers write to RECONCILE_INTERVALS_FILE (test instrumentation, one JSON line
 * when a reconcile starts and one when it ends) and finds keys reconciled by two at once.
 */
export interface ReconcileInterval {
  key: string;
  worker: string;
  partition: number;
  start: number;
  /** When it ended; for a worker killed mid-reconcile, when the test killed it. */
  end: number;
  result: string;
  /** When its latest write started (the last fence check that passed), if it got that far. */
  lastWrite?: number;
}

/**
 * Until when a reconcile could write. One that was aborted (its worker found its lease over
 * before a write) wrote nothing after its last passed fence check, however late it noticed: a
 * worker starved of CPU may take seconds to end a reconcile it may no longer write for.
 */
function writingUntil(interval: ReconcileInterval): number {
  return interval.result === 'aborted' ? (interval.lastWrite ?? interval.start) : interval.end;
}

/**
 * `openEndsAt(file)`: where a reconcile with no end line ends — when the test SIGKILLed its
 * worker, or now while the workers run; undefined (an error) once every survivor has finished.
 */
export function readIntervals(
  files: string[],
  openEndsAt: (file: string) => number | undefined = () => undefined,
): ReconcileInterval[] {
  const intervals: ReconcileInterval[] = [];
  for (const file of files) {
    if (!existsSync(file)) continue;
    const open = new Map<string, Omit<ReconcileInterval, 'end' | 'result'>>();
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line) continue;
      const entry = JSON.parse(line) as Partial<ReconcileInterval> & {
        key: string;
        worker: string;
        start: number;
      };
      const id = `${entry.key} ${entry.start}`;
      if (entry.end === undefined) open.set(id, entry as Omit<ReconcileInterval, 'end' | 'result'>);
      else {
        open.delete(id);
        intervals.push(entry as ReconcileInterval);
      }
    }
    for (const started of open.values()) {
      const killed = openEndsAt(file);
      if (killed === undefined)
        throw new Error(`${file}: a reconcile of ${started.key} never ended, and its worker was not killed`);
      intervals.push({ ...started, end: killed, result: 'killed' });
    }
  }
  return intervals;
}

/** Every pair of reconciles of one key that could write at the same time, described. */
export function overlaps(intervals: ReconcileInterval[]): string[] {
  const byKey = new Map<string, ReconcileInterval[]>();
  for (const interval of intervals) byKey.set(interval.key, [...(byKey.get(interval.key) ?? []), interval]);
  const found: string[] = [];
  for (const [key, list] of byKey) {
    list.sort((a, b) => a.start - b.start);
    let latest = list[0] as ReconcileInterval;
    for (const next of list.slice(1)) {
      if (next.start < writingUntil(latest))
        found.push(
          `${key}: ${latest.worker} [${latest.start.toFixed(1)}, ${writingUntil(latest).toFixed(1)}] (${latest.result}) and ${next.worker} from ${next.start.toFixed(1)}`,
        );
      if (writingUntil(next) > writingUntil(latest)) latest = next;
    }
  }
  return found;
}
