import { RESTART_REASONS } from '@streamspace/kube';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { WATCHED_RESOURCES } from './watched-resources.js';
import { createWatcherMetrics } from './watcher-metrics.js';

async function series(registry: Registry, name: string) {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  return (await metric.get()).values;
}

describe('watcher metrics', () => {
  it('start every kind the watcher watches at zero, from WATCHED_RESOURCES', async () => {
    const registry = new Registry();
    createWatcherMetrics(registry, { isReady: () => true, queueDepth: () => 0 });
    const kinds = WATCHED_RESOURCES.map((resource) => resource.kind);
    // All eight, not only the four that have change events.
    expect(kinds).toEqual(expect.arrayContaining(['service', 'ingress', 'networkpolicy', 'pvc']));

    const restarts = await series(registry, 'streamspace_watcher_watch_restarts_total');
    for (const kind of kinds)
      for (const reason of RESTART_REASONS)
        expect(restarts).toContainEqual({ labels: { kind, reason }, value: 0 });
    const malformed = await series(registry, 'streamspace_watcher_malformed_objects_total');
    expect(malformed.map((v) => v.labels.kind).sort()).toEqual([...kinds].sort());
    const oversize = await series(registry, 'streamspace_watcher_oversize_objects_total');
    expect(oversize).toHaveLength(kinds.length * 2);

    const unchanged = await series(registry, 'streamspace_watcher_unchanged_changes_total');
    expect(unchanged.map((v) => v.labels.kind).sort()).toEqual(
      kinds.filter((kind) => kind !== 'session' && kind !== 'template').sort(),
    );
    const work = await series(registry, 'streamspace_watcher_work_items_published_total');
    expect(new Set(work.map((v) => v.labels.kind))).toEqual(new Set(['session', 'template']));
  });

  it('report the watches requested and answered by kind', async () => {
    const registry = new Registry();
    createWatcherMetrics(registry, {
      isReady: () => false,
      queueDepth: () => 0,
      watches: () => [
        ['session', { requested: 10, answered: 10 }],
        ['pod', { requested: 10, answered: 7 }],
      ],
    });
    const requested = await series(registry, 'streamspace_watcher_watches_requested');
    const answered = await series(registry, 'streamspace_watcher_watches_answered');
    expect(requested).toEqual(
      expect.arrayContaining([
        { labels: { kind: 'session' }, value: 10 },
        { labels: { kind: 'pod' }, value: 10 },
      ]),
    );
    expect(answered).toEqual(
      expect.arrayContaining([
        { labels: { kind: 'session' }, value: 10 },
        { labels: { kind: 'pod' }, value: 7 },
      ]),
    );
  });
});
