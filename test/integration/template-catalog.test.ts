import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { API_GROUP, API_VERSION, validateTemplate } from '@streamspace/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  installCrds,
  kube,
  kubectl,
  repo,
  ServiceProcess,
} from './harness.js';
import { type PrivateNats, startPrivateNats } from './private-nats.js';

/**
 * The application catalog (deploy/templates/<category>/<name>.yaml): exactly the 22 templates of
 * the plan, each well-formed by our own rules, accepted by the real API server (CRD schema and
 * CEL rules) and judged valid by the real reconciler.
 */

const CATALOG: Record<string, string[]> = {
  browsers: ['firefox', 'chromium', 'brave', 'librewolf'],
  design: ['gimp', 'inkscape', 'krita', 'blender', 'freecad', 'kicad'],
  development: ['code-server', 'github-desktop', 'gitqlient'],
  media: ['audacity', 'kdenlive'],
  productivity: ['libreoffice', 'calligra'],
  gaming: ['dolphin', 'duckstation'],
  desktops: ['webtop-alpine-i3', 'webtop-ubuntu-kde', 'webtop-ubuntu-xfce'],
};
const CATEGORY_NAMES: Record<string, string> = {
  browsers: 'Web Browsers',
  design: 'Design',
  development: 'Development',
  media: 'Media',
  productivity: 'Productivity',
  gaming: 'Gaming',
  desktops: 'Desktops',
};
/** Apps that crash with the default 64 MiB /dev/shm: browsers, Electron apps, desktops that ship a browser. */
const NEEDS_SHM = new Set([
  'firefox',
  'chromium',
  'brave',
  'librewolf',
  'github-desktop',
  'webtop-alpine-i3',
  'webtop-ubuntu-kde',
  'webtop-ubuntu-xfce',
]);
/** Heavy applications get more than the 1 CPU / 4Gi of a typical desktop app. */
const HEAVY = ['blender', 'freecad', 'kdenlive'];

interface CatalogTemplate {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec: {
    displayName: string;
    description?: string;
    category?: string;
    icon?: string;
    baseImage: string;
    defaultResources?: { requests?: Record<string, string>; limits?: Record<string, string> };
    ports?: { name: string; containerPort: number; protocol?: string }[];
    env?: { name: string; value?: string }[];
    vnc: { enabled?: boolean; port: number; protocol?: string };
    tags?: string[];
    homePath?: string;
    shmSize?: string;
  };
}

const catalogDir = join(repo, 'deploy/templates');
const files = readdirSync(catalogDir, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) =>
    readdirSync(join(catalogDir, d.name))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => ({ category: d.name, file: f, path: join(catalogDir, d.name, f) })),
  );
const templates = files.map((f) => ({
  ...f,
  template: parse(readFileSync(f.path, 'utf8')) as CatalogTemplate,
}));

/** Kubernetes quantity → a number (cores or bytes), enough to compare requests with limits. */
function quantity(value: string): number {
  const match = /^([0-9.]+)(m|Ki|Mi|Gi|Ti)?$/.exec(String(value));
  if (!match) throw new Error(`unexpected quantity ${value}`);
  const scale: Record<string, number> = { m: 1e-3, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(match[1]) * (match[2] ? (scale[match[2]] as number) : 1);
}

describe('the catalog files', () => {
  it('are exactly the 22 templates of the plan, one file each, named after the template', () => {
    const expected = Object.entries(CATALOG)
      .flatMap(([category, names]) => names.map((n) => `${category}/${n}`))
      .sort();
    expect(templates.map((t) => `${t.category}/${t.template.metadata.name}`).sort()).toEqual(expected);
    expect(expected).toHaveLength(22);
    for (const t of templates) expect(t.file).toBe(`${t.template.metadata.name}.yaml`);
  });

  it('pass the shared Template schema (the zod twin of the CRD)', () => {
    for (const t of templates) {
      const result = validateTemplate(t.template);
      expect(result.ok ? [] : result.issues, t.file).toEqual([]);
    }
  });

  it('use the LinuxServer.io images the way those images expect', () => {
    for (const { category, template } of templates) {
      const { name } = template.metadata;
      const spec = template.spec;
      const context = `${category}/${name}`;
      expect(template.kind, context).toBe('Template');
      expect(
        template.metadata.namespace,
        `${context}: namespace comes from kubectl -n or the chart`,
      ).toBeUndefined();
      expect(spec.category, context).toBe(CATEGORY_NAMES[category]);
      expect(spec.description?.length, context).toBeGreaterThan(10);
      expect(spec.icon, context).toMatch(/^https:\/\//);
      expect(spec.tags?.length, context).toBeGreaterThan(0);
      const image = name.startsWith('webtop-')
        ? `lscr.io/linuxserver/webtop:${name.slice('webtop-'.length)}`
        : `lscr.io/linuxserver/${name}:latest`;
      expect(spec.baseImage, context).toBe(image);
      expect(spec.homePath, context).toBe('/config');
      expect(Object.fromEntries((spec.env ?? []).map((e) => [e.name, e.value])), context).toMatchObject({
        PUID: '1000',
        PGID: '1000',
        TZ: 'Etc/UTC',
      });
      // The web desktop (KasmVNC) listens on 3000; code-server serves its own web UI on 8443.
      const port = name === 'code-server' ? 8443 : 3000;
      expect(spec.vnc, context).toMatchObject({ enabled: true, port, protocol: 'websocket' });
      expect(spec.ports, context).toEqual([{ name: 'http', containerPort: port }]);
      expect(spec.shmSize, context).toBe(NEEDS_SHM.has(name) ? '1Gi' : undefined);
      const { requests = {}, limits = {} } = spec.defaultResources ?? {};
      expect(Object.keys(requests).sort(), context).toEqual(['cpu', 'memory']);
      expect(Object.keys(limits).sort(), context).toEqual(['cpu', 'memory']);
      for (const key of ['cpu', 'memory']) {
        expect(quantity(requests[key] as string), `${context} ${key}`).toBeLessThanOrEqual(
          quantity(limits[key] as string),
        );
      }
      // The memory-backed /dev/shm counts against the memory limit: leave room for the app.
      if (spec.shmSize)
        expect(quantity(limits.memory as string), context).toBeGreaterThanOrEqual(2 * quantity(spec.shmSize));
      if (HEAVY.includes(name))
        expect(quantity(limits.memory as string), context).toBeGreaterThan(4 * 2 ** 30);
    }
  });
});

describe('the catalog on the real API server', () => {
  let namespace: string;
  const services: ServiceProcess[] = [];
  let nats: PrivateNats | undefined;

  beforeAll(async () => {
    await installCrds();
    namespace = await createNamespace('catalog');
    // A NATS of their own: our reconciler judges our templates, and touches no other test's work.
    nats = await startPrivateNats();
    services.push(new ServiceProcess('watcher', { WATCH_NAMESPACE: namespace, NATS_URL: nats.url }));
    services.push(new ServiceProcess('reconciler', { NATS_URL: nats.url }));
    await Promise.all(services.map((s) => s.waitReady()));
  });

  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await nats?.stop();
    if (namespace) await deleteNamespace(namespace);
  });

  it('accepts every template (schema and CEL rules), and the reconciler finds each valid', async () => {
    const result = await kubectl(['apply', '--server-side', '-n', namespace, '-R', '-f', catalogDir]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const names = templates.map((t) => t.template.metadata.name);
    for (const name of names)
      expect(result.stdout).toContain(`template.stream.streamspace.io/${name} serverside-applied`);

    const { custom } = kube();
    await eventually(async () => {
      const list = (await custom.listNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace,
        plural: 'templates',
      })) as {
        items: {
          metadata: { name: string };
          status?: { valid?: boolean; conditions?: { message: string }[] };
        }[];
      };
      expect(list.items.map((i) => i.metadata.name).sort()).toEqual([...names].sort());
      const notValid = list.items
        .filter((i) => i.status?.valid !== true)
        .map((i) => `${i.metadata.name}: ${JSON.stringify(i.status ?? {})}`);
      expect(notValid).toEqual([]);
    }, 60_000);

    const table = await kubectl(['get', 'tpl', '-n', namespace]);
    expect(table.stdout).toMatch(/NAME\s+DISPLAY NAME\s+CATEGORY\s+IMAGE\s+VALID\s+AGE/);
    expect(table.stdout).toMatch(
      /webtop-ubuntu-kde\s+Webtop \(Ubuntu, KDE\)\s+Desktops\s+lscr.io\/linuxserver\/webtop:ubuntu-kde\s+true/,
    );
  });
});
