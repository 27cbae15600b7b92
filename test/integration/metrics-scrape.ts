import type { ServiceProcess } from './harness.js';

/** One sample of the Prometheus text format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the Prometheus text exposition format (what every service serves on /metrics). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (!match) throw new Error(`not a metrics line: ${line}`);
    const [, name, labelText, value] = match as unknown as [string, string, string | undefined, string];
    const labels: Record<string, string> = {};
    for (const [, key, raw] of (labelText ?? '').matchAll(LABEL)) {
      labels[key as string] = (raw as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name, labels, value: Number(value) });
  }
  return samples;
}

/** The metric families a text names (histogram series folded into their family name too). */
export function metricNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const sample of parseMetrics(text)) names.add(sample.name);
  // A family with no sample yet (a histogram nothing has observed) is still exported: its TYPE says so.
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (!type) continue;
    const [, name, kind] = type as unknown as [string, string, string];
    names.add(name);
    if (kind === 'histogram')
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    if (kind === 'summary') for (const suffix of ['_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

const PROMQL_KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'inf',
  'nan',
  'atan2',
]);

/**
 * The metric names a PromQL expression reads: what is left once strings, label matchers, ranges,
 * grouping clauses and function calls are set aside. Enough for the expressions we write.
 */
export function promqlMetricNames(expr: string): Set<string> {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = match as unknown as [string, string, string | undefined];
    if (call || PROMQL_KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return names;
}

export class Scrape {
  constructor(readonly samples: Sample[]) {}

  static async of(service: ServiceProcess): Promise<Scrape> {
    const { status, body } = await service.get('/metrics');
    if (status !== 200) throw new Error(`${service.service} /metrics answered ${status}`);
    return new Scrape(parseMetrics(body));
  }

  /** Samples of `name` whose labels include `labels`. */
  find(name: string, labels: Record<string, string> = {}): Sample[] {
    return this.samples.filter(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
  }

  /** The value of the one sample of `name` with exactly these labels; undefined when there is none. */
  value(name: string, labels: Record<string, string> = {}): number | undefined {
    const wanted = Object.keys(labels).length;
    const found = this.find(name, labels).filter((s) => Object.keys(s.labels).length === wanted);
    if (found.length > 1)
      throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
    return found[0]?.value;
  }

  /** The sum of the samples of `name` whose labels include `labels` (0 when there are none). */
  sum(name: string, labels: Record<string, string> = {}): number {
    return this.find(name, labels).reduce((total, s) => total + s.value, 0);
  }

  /** `name{labels}=value` for each sample of `name` matching `labels`, sorted: readable in a failed assertion. */
  table(name: string, labels: Record<string, string> = {}): Record<string, number> {
    const rows: Record<string, number> = {};
    for (const s of this.find(name, labels)) {
      const rest = Object.entries(s.labels)
        .filter(([k]) => !(k in labels))
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
      rows[rest] = s.value;
    }
    return Object.fromEntries(Object.entries(rows).sort(([a], [b]) => a.localeCompare(b)));
  }
}
