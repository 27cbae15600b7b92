import { parseMetrics } from '../test/integration/metrics-scrape.js';

/**
 * What the API server itself counts, read from its /metrics: the reads made of the resources the
 * platform works with, and the watches open on them. Counts are keyed `VERB resource` (reads) or
 * `resource` (watches), summed over everything else the API server labels them with (scope,
 * code, subresource, …).
 */
export type Counts = Record<string, number>;

/** The resources a reconcile used to read live (issue 13): what "API-server reads" counts. */
export const READ_RESOURCES = [
  'sessions',
  'templates',
  'deployments',
  'services',
  'ingresses',
  'networkpolicies',
  'persistentvolumeclaims',
  'pods',
] as const;

const READ_VERBS = new Set(['GET', 'LIST']);
const READ_RESOURCE_SET = new Set<string>(READ_RESOURCES);

/** GET and LIST requests served on READ_RESOURCES so far, from apiserver_request_total. */
export function readCounts(metricsText: string): Counts {
  const counts: Counts = {};
  for (const { name, labels, value } of parseMetrics(metricsText)) {
    if (name !== 'apiserver_request_total') continue;
    if (!READ_VERBS.has(labels.verb ?? '') || !READ_RESOURCE_SET.has(labels.resource ?? '')) continue;
    const key = `${labels.verb} ${labels.resource}`;
    counts[key] = (counts[key] ?? 0) + value;
  }
  return counts;
}

/** Every request but watches the API server has served so far, whoever made it. */
export function nonWatchRequests(metricsText: string): number {
  let total = 0;
  for (const { name, labels, value } of parseMetrics(metricsText))
    if (name === 'apiserver_request_total' && labels.verb !== 'WATCH') total += value;
  return total;
}

/**
 * Every request but watches the API server has served so far, keyed `VERB resource[/subresource]`:
 * who wrote what in a phase (ours are in the reconcilers' own counts; the rest is the cluster's
 * controllers, KWOK and the driver).
 */
export function nonWatchRequestsByVerbAndResource(metricsText: string): Counts {
  const counts: Counts = {};
  for (const { name, labels, value } of parseMetrics(metricsText)) {
    if (name !== 'apiserver_request_total' || labels.verb === 'WATCH') continue;
    const key = `${labels.verb} ${labels.resource}${labels.subresource ? `/${labels.subresource}` : ''}`;
    counts[key] = (counts[key] ?? 0) + value;
  }
  return counts;
}

/** Watches open now on READ_RESOURCES, by resource, from apiserver_longrunning_requests. */
export function watchCounts(metricsText: string): Counts {
  const counts: Counts = {};
  for (const { name, labels, value } of parseMetrics(metricsText)) {
    if (name !== 'apiserver_longrunning_requests' || labels.verb !== 'WATCH') continue;
    if (!READ_RESOURCE_SET.has(labels.resource ?? '')) continue;
    const key = labels.resource as string;
    counts[key] = (counts[key] ?? 0) + value;
  }
  return counts;
}

/** `from` minus each of `minus`, key by key; keys that come to zero are left out. */
export function subtract(from: Counts, ...minus: Counts[]): Counts {
  const result: Counts = {};
  for (const key of new Set([...Object.keys(from), ...minus.flatMap((m) => Object.keys(m))])) {
    const value = (from[key] ?? 0) - minus.reduce((a, m) => a + (m[key] ?? 0), 0);
    if (value !== 0) result[key] = value;
  }
  return result;
}

export function sum(counts: Counts): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}
