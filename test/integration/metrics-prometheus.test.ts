import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { sessionObject, templateObject } from './fixtures.js';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  freePort,
  installCrds,
  kubectl,
  repo,
  ServiceProcess,
} from './harness.js';
import { metricNames, promqlMetricNames } from './metrics-scrape.js';

/**
 * A real Prometheus (Debian's package, or built by scripts/prometheus) scrapes the running
 * services and loads the alert rules; promtool checks and unit-tests the rules; the Grafana
 * dashboard's queries run on that Prometheus and name only metrics the services export.
 */

const run = promisify(execFile);
const monitoring = join(repo, 'deploy/monitoring');
const rulesFile = join(monitoring, 'prometheus-rules.yaml');
const dashboardFile = join(monitoring, 'grafana/streamspace-dashboard.json');

let namespace: string;
let services: Record<'watcher' | 'reconciler' | 'metrics', ServiceProcess>;
let binDir: string;
let workDir: string;
let prometheus: ChildProcess;
let prometheusUrl: string;
const prometheusLog: string[] = [];

async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await response.json()) as {
    status: string;
    error?: string;
    data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
  };
  if (body.status !== 'success') throw new Error(`query ${expr} failed: ${body.error}`);
  return body.data?.result ?? [];
}

/** Grafana's variables, as a dashboard user with every template selected would have them. */
function grafanaToPromql(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '1m')
    .replaceAll('$template', '.*');
}

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
}

async function dashboard(): Promise<{
  panels: Panel[];
  templating: { list: { type: string; query?: unknown; definition?: string }[] };
}> {
  return JSON.parse(await readFile(dashboardFile, 'utf8'));
}

/** Every metric name the running services export (histogram series included). */
async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const service of Object.values(services)) {
    const { body } = await service.get('/metrics');
    for (const name of metricNames(body)) names.add(name);
  }
  return names;
}

beforeAll(async () => {
  // Ensures the binaries first (installs Debian's package on a fresh CI machine).
  binDir = execFileSync(join(repo, 'scripts/prometheus'), ['path'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  await installCrds();
  namespace = await createNamespace('metrics-prom');
  const watcher = new ServiceProcess('watcher', { WATCH_NAMESPACE: namespace });
  const reconciler = new ServiceProcess('reconciler', {
    WATCH_NAMESPACE: namespace,
    INGRESS_DOMAIN: 'desktops.test',
  });
  await Promise.all([watcher.waitReady(), reconciler.waitReady()]);
  const metrics = new ServiceProcess('metrics', {
    WATCH_NAMESPACE: namespace,
    WATCHER_READY_URL: `http://127.0.0.1:${watcher.port}/readyz`,
  });
  await metrics.waitReady();
  services = { watcher, reconciler, metrics };

  // Something to measure: a template and a running session (so every histogram has observed once).
  const template = templateObject(namespace, 'desk', {
    displayName: 'Desk',
    baseImage: 'lscr.io/linuxserver/webtop:latest',
  });
  const session = sessionObject(namespace, 'one', 'alice', 'desk', { state: undefined });
  for (const object of [template, session]) {
    const result = await kubectl(['apply', '-f', '-'], JSON.stringify(object));
    if (result.code !== 0) throw new Error(result.stderr);
  }

  workDir = await mkdtemp(join(tmpdir(), 'streamspace-prometheus-'));
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: [rulesFile],
    scrape_configs: Object.entries(services).map(([job, service]) => ({
      job_name: job,
      static_configs: [{ targets: [`127.0.0.1:${service.port}`] }],
    })),
  };
  await writeFile(join(workDir, 'prometheus.yml'), JSON.stringify(config));
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  prometheus = spawn(
    join(binDir, 'prometheus'),
    [
      `--config.file=${join(workDir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(workDir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prometheus.stdout?.on('data', (d) => prometheusLog.push(String(d)));
  prometheus.stderr?.on('data', (d) => prometheusLog.push(String(d)));
  await eventually(async () => {
    if (prometheus.exitCode !== null)
      throw new Error(`prometheus exited ${prometheus.exitCode}:\n${prometheusLog.join('')}`);
    const response = await fetch(`${prometheusUrl}/-/ready`);
    expect(response.status).toBe(200);
  }, 30_000);
});

afterAll(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((resolve) => prometheus.once('exit', resolve));
    prometheus.kill('SIGTERM');
    await exited;
  }
  if (workDir) await rm(workDir, { recursive: true, force: true });
  await Promise.all(Object.values(services ?? {}).map((s) => s.stop()));
  if (namespace) await deleteNamespace(namespace);
});

describe('a real Prometheus', () => {
  it('scrapes every service: up is 1 and StreamSpace series arrive', async () => {
    await eventually(async () => {
      const up = await query('up');
      expect(Object.fromEntries(up.map((r) => [r.metric.job, r.value[1]]))).toEqual({
        watcher: '1',
        reconciler: '1',
        metrics: '1',
      });
      const info = await query('streamspace_build_info');
      expect(Object.fromEntries(info.map((r) => [r.metric.job, r.metric.service]))).toEqual({
        watcher: 'watcher',
        reconciler: 'reconciler',
        metrics: 'metrics',
      });
      const running = await query('streamspace_sessions{job="metrics",template="desk",phase="Running"}');
      expect(running.map((r) => r.value[1])).toEqual(['1']);
      expect((await query('streamspace_watcher_ready{job="watcher"}')).map((r) => r.value[1])).toEqual(['1']);
      expect(
        await query(
          'streamspace_reconciler_reconciles_total{job="reconciler",kind="session",result="success"} > 0',
        ),
      ).toHaveLength(1);
      expect(await query('streamspace_work_consumer_pending_messages{job="metrics"}')).toHaveLength(1);
    }, 30_000);
  });

  it('loads the alert rules and evaluates every one of them without error', async () => {
    await eventually(async () => {
      const response = await fetch(`${prometheusUrl}/api/v1/rules?type=alert`);
      const body = (await response.json()) as {
        data: { groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] };
      };
      const rules = body.data.groups.flatMap((g) => g.rules);
      expect(rules.length).toBeGreaterThanOrEqual(7);
      for (const rule of rules)
        expect({ name: rule.name, health: rule.health, error: rule.lastError ?? '' }).toEqual({
          name: rule.name,
          health: 'ok',
          error: '',
        });
    }, 20_000);
    // A healthy pipeline raises none of them.
    const firing = await query('ALERTS{alertstate="firing"}');
    expect(firing.map((a) => a.metric.alertname)).toEqual([]);
  });
});

describe('the alert rules', () => {
  it('pass promtool check rules and promtool test rules', async () => {
    const check = await run(join(binDir, 'promtool'), ['check', 'rules', rulesFile]);
    expect(check.stdout).toContain('SUCCESS');
    const tests = await run(join(binDir, 'promtool'), [
      'test',
      'rules',
      join(monitoring, 'tests/alerts.test.yaml'),
    ]).catch((error: { stdout?: string; stderr?: string }) => {
      throw new Error(`promtool test rules failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
    });
    expect(tests.stdout).toContain('SUCCESS');
  });

  it('have a promtool test that fires each alert', async () => {
    const rules = parse(await readFile(rulesFile, 'utf8')) as { groups: { rules: { alert: string }[] }[] };
    const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert)).sort();
    const tests = parse(await readFile(join(monitoring, 'tests/alerts.test.yaml'), 'utf8')) as {
      tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const fired = new Set(
      tests.tests.flatMap((t) =>
        t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname),
      ),
    );
    expect(alerts.filter((a) => !fired.has(a))).toEqual([]);
    expect(alerts).toContain('StreamSpaceSessionsStuckPending');
  });

  it('are the same in the PrometheusRule for the Prometheus Operator', async () => {
    const plain = parse(await readFile(rulesFile, 'utf8')) as { groups: unknown };
    const resource = parse(await readFile(join(monitoring, 'prometheusrule.yaml'), 'utf8')) as {
      kind: string;
      spec: { groups: unknown };
    };
    expect(resource.kind).toBe('PrometheusRule');
    expect(
      resource.spec.groups,
      'prometheusrule.yaml must carry the groups of prometheus-rules.yaml unchanged',
    ).toEqual(plain.groups);
  });

  it('read only metrics the services export', async () => {
    const exported = await exportedNames();
    const rules = parse(await readFile(rulesFile, 'utf8')) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const unknown: string[] = [];
    for (const rule of rules.groups.flatMap((g) => g.rules)) {
      for (const name of promqlMetricNames(rule.expr))
        if (!exported.has(name)) unknown.push(`${rule.alert}: ${name}`);
    }
    expect(unknown).toEqual([]);
  });
});

describe('docs/metrics.md', () => {
  it('documents every StreamSpace metric the running services export', async () => {
    const docs = await readFile(join(repo, 'docs/metrics.md'), 'utf8');
    const missing: string[] = [];
    for (const [name, service] of Object.entries(services)) {
      const { body } = await service.get('/metrics');
      for (const match of body.matchAll(/^# TYPE (streamspace_\w+) /gm)) {
        if (!docs.includes(`\`${match[1]}\``)) missing.push(`${name}: ${match[1]}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe('the Grafana dashboard', () => {
  it('is valid JSON with a query on every panel, each naming only exported metrics', async () => {
    const board = await dashboard();
    const exported = await exportedNames();
    const panels = board.panels.filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThan(10);
    const unknown: string[] = [];
    for (const panel of panels) {
      expect(panel.targets?.length, `panel "${panel.title}" has no query`).toBeGreaterThan(0);
      for (const { expr } of panel.targets ?? []) {
        const names = promqlMetricNames(expr);
        expect(names.size, `panel "${panel.title}" query names no metric: ${expr}`).toBeGreaterThan(0);
        for (const name of names) if (!exported.has(name)) unknown.push(`${panel.title}: ${name}`);
      }
    }
    for (const variable of board.templating.list.filter((v) => v.type === 'query')) {
      const match = /label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,/.exec(variable.definition ?? '');
      expect(match, `variable query ${variable.definition}`).not.toBeNull();
      if (match && !exported.has(match[1] as string)) unknown.push(`variable: ${match[1]}`);
    }
    expect(unknown).toEqual([]);
    // The titles the issue asks for.
    const titles = panels.map((p) => p.title).join(' | ');
    for (const wanted of [
      'Active sessions',
      'Sessions by phase',
      'Start',
      'Wake',
      'Hibernate',
      'Work queue',
      'Dead letters',
      'Watchers ready',
    ]) {
      expect(titles).toContain(wanted);
    }
  });

  it('runs every query on Prometheus without an error, and the core panels have data', async () => {
    const board = await dashboard();
    for (const panel of board.panels.filter((p) => p.type !== 'row')) {
      for (const { expr } of panel.targets ?? []) await query(grafanaToPromql(expr));
    }
    await eventually(async () => {
      expect(
        (
          await query(
            grafanaToPromql(
              'sum(max by (template, user) (streamspace_active_sessions{template=~"$template"}))',
            ),
          )
        ).map((r) => r.value[1]),
      ).toEqual(['1']);
      expect((await query('max(streamspace_dead_letter_messages)')).length).toBe(1);
    }, 15_000);
  });
});
