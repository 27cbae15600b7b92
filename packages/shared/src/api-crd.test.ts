import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { API_GROUP, API_VERSION, QUANTITY_PATTERN } from './api-common.js';
import { validTemplates } from './api-corpus.test-support.js';
import { DURATION_MAX_LENGTH, DURATION_PATTERN } from './duration.js';
import {
  DNS1123_SUBDOMAIN_PATTERN,
  SHORTENED_NAME_SUFFIX_PATTERN,
  TEMPLATE_NAME_MAX_LENGTH,
} from './object-names.js';
import {
  SESSION_DEFAULTS,
  SESSION_KIND,
  SESSION_PHASES,
  SESSION_PLURAL,
  SESSION_SHORT_NAMES,
  SESSION_STATES,
  STREAMSPACE_CATEGORY,
  sessionSchema,
  sessionSpecSchema,
  validateSession,
} from './session-schema.js';
import {
  PORT_PROTOCOLS,
  RESERVED_VOLUME_NAMES,
  TEMPLATE_DEFAULTS,
  TEMPLATE_KIND,
  TEMPLATE_PLURAL,
  TEMPLATE_SHORT_NAMES,
  templateSchema,
  templateSpecSchema,
  VNC_PROTOCOLS,
  validateTemplate,
} from './template-schema.js';

// The CRDs (crds/*.yaml) and the zod schemas are two spellings of one contract. These tests read
// the CRD YAML and check that both say the same thing; api-corpus.test.ts checks behaviour.

// biome-ignore lint/suspicious/noExplicitAny: walking untyped YAML/JSON Schema trees
type Node = Record<string, any>;

function loadYaml(repoPath: string): Node {
  const path = fileURLToPath(new URL(`../../../${repoPath}`, import.meta.url));
  return parse(readFileSync(path, 'utf8')) as Node;
}
const loadCrd = (file: string) => loadYaml(`crds/${file}`);

const sessionCrd = loadCrd('sessions.stream.streamspace.io.yaml');
const templateCrd = loadCrd('templates.stream.streamspace.io.yaml');

const version = (crd: Node): Node => crd.spec.versions[0];
const openApi = (crd: Node): Node => version(crd).schema.openAPIV3Schema;
const at = (crd: Node, ...path: string[]): Node =>
  path.reduce<Node>((node, key) => (key === '[]' ? node.items : node.properties[key]), openApi(crd));

describe.each([
  [sessionCrd, SESSION_KIND, SESSION_PLURAL, [...SESSION_SHORT_NAMES]],
  [templateCrd, TEMPLATE_KIND, TEMPLATE_PLURAL, [...TEMPLATE_SHORT_NAMES]],
])('%# CRD identity', (crd, kind, plural, shortNames) => {
  it('has the group, version, names, scope and status subresource of the contract', () => {
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
    expect(crd.metadata.name).toBe(`${plural}.${API_GROUP}`);
    expect(crd.spec.group).toBe(API_GROUP);
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names).toMatchObject({ kind, plural, singular: kind.toLowerCase(), shortNames });
    expect(crd.spec.names.categories).toEqual([STREAMSPACE_CATEGORY]);
    expect(crd.spec.versions).toHaveLength(1);
    expect(version(crd)).toMatchObject({
      name: API_VERSION,
      served: true,
      storage: true,
      subresources: { status: {} },
    });
  });
});

describe('printer columns', () => {
  const columns = (crd: Node) =>
    version(crd).additionalPrinterColumns.map((c: Node) => [c.name, c.jsonPath]) as [string, string][];

  it('Session: User, Template, State, Phase, URL, Age', () => {
    expect(columns(sessionCrd)).toEqual([
      ['User', '.spec.user'],
      ['Template', '.spec.template'],
      ['State', '.spec.state'],
      ['Phase', '.status.phase'],
      ['URL', '.status.url'],
      ['Age', '.metadata.creationTimestamp'],
    ]);
  });

  it('Template: Display Name, Category, Image, Valid, Age', () => {
    expect(columns(templateCrd)).toEqual([
      ['Display Name', '.spec.displayName'],
      ['Category', '.spec.category'],
      ['Image', '.spec.baseImage'],
      ['Valid', '.status.valid'],
      ['Age', '.metadata.creationTimestamp'],
    ]);
  });
});

describe('enums, defaults and patterns named in the contract', () => {
  it('Session enums equal the zod enums', () => {
    expect(at(sessionCrd, 'spec', 'state').enum).toEqual([...SESSION_STATES]);
    expect(at(sessionCrd, 'status', 'phase').enum).toEqual([...SESSION_PHASES]);
  });

  it('Template enums equal the zod enums', () => {
    expect(at(templateCrd, 'spec', 'vnc', 'protocol').enum).toEqual([...VNC_PROTOCOLS]);
    expect(at(templateCrd, 'spec', 'ports', '[]', 'protocol').enum).toEqual([...PORT_PROTOCOLS]);
  });

  it('Session defaults equal the zod defaults', () => {
    const spec = at(sessionCrd, 'spec').properties;
    const crdDefaults = {
      state: spec.state.default,
      persistentHome: spec.persistentHome.default,
      idleTimeout: spec.idleTimeout.default,
      maxSessionDuration: spec.maxSessionDuration.default,
    };
    expect(crdDefaults).toEqual(SESSION_DEFAULTS);
    expect(sessionSpecSchema.parse({ user: 'alice@example.com', template: 'firefox' })).toEqual({
      user: 'alice@example.com',
      template: 'firefox',
      ...crdDefaults,
    });
  });

  it('Template defaults equal the zod defaults', () => {
    const spec = at(templateCrd, 'spec').properties;
    expect(spec.homePath.default).toBe(TEMPLATE_DEFAULTS.homePath);
    expect(spec.ports.items.properties.protocol.default).toBe(TEMPLATE_DEFAULTS.portProtocol);
    const vnc = spec.vnc.properties;
    expect({
      enabled: vnc.enabled.default,
      protocol: vnc.protocol.default,
      encryption: vnc.encryption.default,
    }).toEqual(TEMPLATE_DEFAULTS.vnc);
    const parsed = templateSpecSchema.parse({
      displayName: 'X',
      baseImage: 'x',
      vnc: { port: 5900 },
      ports: [{ name: 'vnc', containerPort: 5900 }],
    });
    expect(parsed.homePath).toBe(spec.homePath.default);
    expect(parsed.ports?.[0]?.protocol).toBe(spec.ports.items.properties.protocol.default);
    expect(parsed.vnc).toEqual({ port: 5900, ...TEMPLATE_DEFAULTS.vnc });
  });

  it('duration fields use DURATION_PATTERN verbatim', () => {
    for (const field of ['idleTimeout', 'maxSessionDuration']) {
      const node = at(sessionCrd, 'spec', field);
      expect(node.pattern).toBe(DURATION_PATTERN);
      expect(node.maxLength).toBe(DURATION_MAX_LENGTH);
      expect(node.type).toBe('string');
    }
  });

  it('spec.template uses the DNS-1123 subdomain pattern', () => {
    expect(at(sessionCrd, 'spec', 'template').pattern).toBe(DNS1123_SUBDOMAIN_PATTERN);
    expect(at(sessionCrd, 'spec', 'template').maxLength).toBe(TEMPLATE_NAME_MAX_LENGTH);
  });

  it('every quantity is int-or-string with the Kubernetes quantity pattern', () => {
    const quantities: string[] = [];
    const visit = (node: Node, path: string) => {
      if (node['x-kubernetes-int-or-string']) {
        quantities.push(path);
        expect(node.anyOf, path).toEqual([{ type: 'integer' }, { type: 'string' }]);
        expect(node.pattern, path).toBe(QUANTITY_PATTERN);
      }
      for (const [key, child] of Object.entries<Node>(node.properties ?? {})) visit(child, `${path}.${key}`);
      if (node.items) visit(node.items, `${path}[]`);
      if (typeof node.additionalProperties === 'object') visit(node.additionalProperties, `${path}.*`);
    };
    visit(openApi(sessionCrd), 'Session');
    visit(openApi(templateCrd), 'Template');
    expect(quantities).toEqual([
      'Session.spec.resources.requests.*',
      'Session.spec.resources.limits.*',
      'Session.status.resourceUsage.*',
      'Template.spec.defaultResources.requests.*',
      'Template.spec.defaultResources.limits.*',
      'Template.spec.volumeMounts[].sizeLimit',
      'Template.spec.shmSize',
    ]);
  });

  it('the name-length CEL rules use the shared limits', () => {
    const rules = (crd: Node) => openApi(crd)['x-kubernetes-validations'].map((r: Node) => r.rule);
    expect(rules(sessionCrd)).toContain(`!self.metadata.name.matches('${SHORTENED_NAME_SUFFIX_PATTERN}')`);
    expect(rules(templateCrd)).toContain(`self.metadata.name.size() <= ${TEMPLATE_NAME_MAX_LENGTH}`);
    const volumeName = at(templateCrd, 'spec', 'volumeMounts', '[]', 'name');
    expect(volumeName['x-kubernetes-validations'][0].rule).toBe(
      `!(self in [${RESERVED_VOLUME_NAMES.map((n) => `'${n}'`).join(', ')}])`,
    );
  });
});

describe('documentation', () => {
  it.each([
    ['Session', sessionCrd],
    ['Template', templateCrd],
  ])('every %s field has a description, and every CEL rule a message', (_kind, crd) => {
    const missing: string[] = [];
    const visit = (node: Node, path: string) => {
      // Kubernetes forbids a description on the root metadata (it documents it as ObjectMeta).
      if (
        path !== '.metadata' &&
        !(typeof node.description === 'string' && node.description.trim().length > 10)
      ) {
        missing.push(path || '(root)');
      }
      for (const rule of node['x-kubernetes-validations'] ?? []) {
        expect(rule.message, `${path}: ${rule.rule}`).toMatch(/\S/);
      }
      for (const [key, child] of Object.entries<Node>(node.properties ?? {})) visit(child, `${path}.${key}`);
      if (node.items) visit(node.items, `${path}[]`);
      if (typeof node.additionalProperties === 'object') visit(node.additionalProperties, `${path}.*`);
    };
    visit(openApi(crd), '');
    expect(missing).toEqual([]);
    for (const column of version(crd).additionalPrinterColumns) expect(column.description).toBeTruthy();
  });

  it('the duration fields explain format and default for kubectl explain', () => {
    expect(at(sessionCrd, 'spec', 'idleTimeout').description).toMatch(/30m.*8h.*1h30m.*Default: 30m/s);
    expect(at(sessionCrd, 'spec', 'maxSessionDuration').description).toMatch(/Default: 8h/);
    expect(at(sessionCrd, 'spec', 'persistentHome').description).toMatch(/Default: false/);
    expect(at(sessionCrd, 'spec', 'state').description).toMatch(/Default: running/);
  });
});

/**
 * Structural comparison: every constraint the CRD states (type, enum, default, pattern, length,
 * range, item and property bounds, required) must be stated identically by the zod schema's JSON
 * Schema, and both must have the same fields. CEL rules and zod refinements are compared by
 * behaviour in api-corpus.test.ts.
 */
describe('the CRD schema and the zod schema have the same fields and constraints', () => {
  const SAFE = Number.MAX_SAFE_INTEGER;
  const source = (pattern: string) => new RegExp(pattern).source;

  function compare(crd: Node, zod: Node, path: string, problems: string[]): void {
    const say = (what: string, a: unknown, b: unknown) =>
      problems.push(`${path || '(root)'}: ${what}: CRD ${JSON.stringify(a)} vs zod ${JSON.stringify(b)}`);
    if (crd['x-kubernetes-int-or-string']) {
      const branches: Node[] = zod.anyOf ?? [];
      const str = branches.find((b) => b.type === 'string');
      if (!branches.some((b) => b.type === 'integer') || !str)
        return void say('int-or-string', crd.anyOf, zod);
      if (source(crd.pattern) !== str.pattern) say('pattern', crd.pattern, str.pattern);
      if (crd.maxLength !== str.maxLength) say('maxLength', crd.maxLength, str.maxLength);
      return;
    }
    const zodType = zod.const !== undefined ? 'string' : zod.type;
    if (crd.type !== zodType) say('type', crd.type, zodType);
    if (JSON.stringify(crd.enum) !== JSON.stringify(zod.enum)) say('enum', crd.enum, zod.enum);
    if (JSON.stringify(crd.default) !== JSON.stringify(zod.default)) say('default', crd.default, zod.default);
    if (zod.format !== 'date-time' && (crd.pattern ? source(crd.pattern) : undefined) !== zod.pattern) {
      say('pattern', crd.pattern, zod.pattern);
    }
    if (crd.format === 'date-time' && zod.format !== 'date-time') say('format', crd.format, zod.format);
    for (const key of ['minLength', 'maxLength', 'maxItems', 'minItems']) {
      if (crd[key] !== zod[key]) say(key, crd[key], zod[key]);
    }
    if (crd.minimum !== (zod.minimum === -SAFE ? undefined : zod.minimum))
      say('minimum', crd.minimum, zod.minimum);
    if (crd.maximum !== (zod.maximum === SAFE ? undefined : zod.maximum))
      say('maximum', crd.maximum, zod.maximum);
    if (crd.type === 'object' && crd.properties) {
      const crdRequired = [...(crd.required ?? [])].sort();
      const zodRequired = [...(zod.required ?? [])].sort();
      if (JSON.stringify(crdRequired) !== JSON.stringify(zodRequired))
        say('required', crdRequired, zodRequired);
      const crdKeys = Object.keys(crd.properties).sort();
      const zodKeys = Object.keys(zod.properties ?? {}).sort();
      if (JSON.stringify(crdKeys) !== JSON.stringify(zodKeys)) say('fields', crdKeys, zodKeys);
      for (const key of crdKeys) {
        if (zod.properties?.[key])
          compare(crd.properties[key], zod.properties[key], `${path}.${key}`, problems);
      }
    }
    if (crd.items) compare(crd.items, zod.items ?? {}, `${path}[]`, problems);
    if (typeof crd.additionalProperties === 'object') {
      compare(crd.additionalProperties, zod.additionalProperties ?? {}, `${path}.*`, problems);
    }
  }

  it.each([
    ['Session', sessionCrd, sessionSchema],
    ['Template', templateCrd, templateSchema],
  ] as const)('%s', (_kind, crd, schema) => {
    const zod = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Node;
    const root = openApi(crd);
    const problems: string[] = [];
    for (const key of ['spec', 'status'])
      compare(root.properties[key], zod.properties[key], `.${key}`, problems);
    expect(problems).toEqual([]);
    // the root: same top-level fields; zod requires apiVersion/kind/metadata, the API server sets or checks them itself
    expect(Object.keys(root.properties).sort()).toEqual(Object.keys(zod.properties).sort());
    expect(root.required).toEqual(['spec']);
  });
});

describe('quick-start samples', () => {
  it('deploy/templates/browsers/firefox.yaml is a valid Template, the same as the corpus one', () => {
    const sample = loadYaml('deploy/templates/browsers/firefox.yaml');
    const result = validateTemplate(sample);
    expect(result.ok ? [] : result.issues).toEqual([]);
    expect(sample.spec).toEqual(
      validTemplates.find((c) => c.object.metadata.name === 'firefox')?.object.spec,
    );
  });

  it('deploy/samples/session-firefox.yaml is a valid Session for alice using firefox', () => {
    const sample = loadYaml('deploy/samples/session-firefox.yaml');
    const result = validateSession(sample);
    expect(result.ok ? [] : result.issues).toEqual([]);
    expect(sample.spec).toMatchObject({ user: 'alice', template: 'firefox' });
  });
});
