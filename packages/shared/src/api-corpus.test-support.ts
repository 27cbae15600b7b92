import { API_GROUP_VERSION } from './api-common.js';

/**
 * The zod/CRD agreement corpus: Sessions and Templates that both the zod schemas and the CRD
 * schemas (OpenAPI + CEL, as enforced by kube-apiserver) must accept, and ones both must reject
 * with an error naming `field` — the Kubernetes field path the API server reports, e.g.
 * `spec.idleTimeout`, `spec.ports[1]`, `metadata.name`.
 *
 * Rules the corpus keeps so the same objects work against a real API server:
 * - every object has a distinct metadata.name within its kind, so all can be created in one
 *   namespace (none sets a namespace);
 * - each invalid object has exactly one problem, and only in metadata.name or spec (status is
 *   dropped on create by the status subresource, so it cannot make a create fail);
 * - no unknown fields (the API server prunes or warns about those instead of failing, depending on
 *   the field validation mode).
 * Valid Sessions reference Templates that need not exist: a missing Template is a condition set by
 * the reconciler, not a validation error.
 */

export interface CorpusObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; [key: string]: unknown };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface ValidCase {
  /** What the case shows. */
  description: string;
  object: CorpusObject;
}

export interface InvalidCase extends ValidCase {
  /** Kubernetes field path of the one wrong field, as the API server names it. */
  field: string;
}

const session = (
  name: string,
  spec: Record<string, unknown>,
  extra: Partial<CorpusObject> = {},
): CorpusObject => ({
  apiVersion: API_GROUP_VERSION,
  kind: 'Session',
  metadata: { name },
  spec,
  ...extra,
});

const template = (
  name: string,
  spec: Record<string, unknown>,
  extra: Partial<CorpusObject> = {},
): CorpusObject => ({
  apiVersion: API_GROUP_VERSION,
  kind: 'Template',
  metadata: { name },
  spec,
  ...extra,
});

const alice = { user: 'alice@example.com', template: 'firefox' };

/** A small valid Template spec to vary one field at a time. */
const basicTemplate = {
  displayName: 'Firefox',
  baseImage: 'lscr.io/linuxserver/firefox:latest',
  vnc: { port: 3000, protocol: 'websocket' },
};

const long = (char: string, length: number) => char.repeat(length);

export const validSessions: ValidCase[] = [
  {
    description: 'minimal: only user and template (defaults fill the rest)',
    object: session('minimal', alice),
  },
  {
    description: 'every spec field set',
    object: session('all-fields', {
      user: 'alice@example.com',
      template: 'firefox',
      state: 'running',
      resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '2', memory: '4Gi' } },
      persistentHome: true,
      idleTimeout: '1h30m',
      maxSessionDuration: '12h',
    }),
  },
  { description: 'state hibernated', object: session('hibernated', { ...alice, state: 'hibernated' }) },
  { description: 'state terminated', object: session('terminated', { ...alice, state: 'terminated' }) },
  {
    description: 'idleTimeout 0 disables idle hibernation',
    object: session('no-idle', { ...alice, idleTimeout: '0' }),
  },
  {
    description: 'maxSessionDuration 0 means no limit',
    object: session('no-max', { ...alice, maxSessionDuration: '0s' }),
  },
  {
    description: 'durations with seconds and milliseconds',
    object: session('fine-durations', { ...alice, idleTimeout: '45s', maxSessionDuration: '1h30m15s500ms' }),
  },
  {
    description: 'user with capitals and underscore',
    object: session('bob', { user: 'Bob_Smith', template: 'firefox' }),
  },
  {
    description: 'user with non-ASCII characters and spaces',
    object: session('jose', { user: 'José Núñez (用户)', template: 'gimp' }),
  },
  {
    description: 'user of 253 characters',
    object: session('long-user', { user: long('u', 253), template: 'firefox' }),
  },
  {
    description: 'template name that is a subdomain with dots',
    object: session('dotted-template', { ...alice, template: 'vs-code.v2' }),
  },
  {
    description: 'template name of 63 characters',
    object: session('long-template', { ...alice, template: long('t', 63) }),
  },
  { description: 'session name of exactly 50 characters', object: session(long('s', 50), alice) },
  { description: 'session name of 63 characters', object: session(long('s', 63), alice) },
  { description: 'session name of 253 characters', object: session(long('s', 253), alice) },
  { description: 'session name with a dot (a subdomain)', object: session('alice.firefox', alice) },
  { description: 'session name ending in 15 hex digits', object: session('desk-0123456789abcde', alice) },
  { description: 'session name starting with a digit', object: session('1-desktop', alice) },
  {
    description: 'integer quantities; request equal to limit',
    object: session('int-quantities', {
      ...alice,
      resources: { requests: { cpu: 2, memory: '2Gi' }, limits: { cpu: 2, memory: '2048Mi' } },
    }),
  },
  {
    description: 'requests only, exotic but valid quantity spellings',
    object: session('requests-only', {
      ...alice,
      resources: { requests: { cpu: '0.5', memory: '1e9', 'ephemeral-storage': '10G', 'nvidia.com/gpu': 1 } },
    }),
  },
  {
    description: 'limits only',
    object: session('limits-only', { ...alice, resources: { limits: { cpu: '1500m', memory: '3Gi' } } }),
  },
  {
    description: 'labels and annotations, persistentHome false explicitly',
    object: session(
      'labelled',
      { ...alice, persistentHome: false },
      { metadata: { name: 'labelled', labels: { team: 'qa' }, annotations: { note: 'anything @ all' } } },
    ),
  },
  {
    description: 'a status as the reconciler writes it (ignored by the API server on create)',
    object: session(
      'with-status',
      { ...alice, state: 'running' },
      {
        status: {
          phase: 'Running',
          podName: 'ss-with-status-7d9f8b6c5d-x2x9z',
          url: 'https://streamspace.example.com/sessions/with-status/',
          lastActivity: '2025-01-31T10:00:00Z',
          resourceUsage: { cpu: '250m', memory: '900Mi' },
          observedGeneration: 1,
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              observedGeneration: 1,
              lastTransitionTime: '2025-01-31T09:58:12Z',
              reason: 'PodReady',
              message: 'the session pod is ready',
            },
          ],
        },
      },
    ),
  },
];

export const invalidSessions: InvalidCase[] = [
  {
    description: 'idleTimeout in words',
    field: 'spec.idleTimeout',
    object: session('bad-idle-words', { ...alice, idleTimeout: '30 minutes' }),
  },
  {
    description: 'negative maxSessionDuration',
    field: 'spec.maxSessionDuration',
    object: session('bad-max-negative', { ...alice, maxSessionDuration: '-5m' }),
  },
  {
    description: 'fractional duration',
    field: 'spec.idleTimeout',
    object: session('bad-idle-fraction', { ...alice, idleTimeout: '1.5h' }),
  },
  {
    description: 'duration with a unit Go has but StreamSpace does not (days)',
    field: 'spec.maxSessionDuration',
    object: session('bad-max-days', { ...alice, maxSessionDuration: '1d' }),
  },
  {
    description: 'empty idleTimeout',
    field: 'spec.idleTimeout',
    object: session('bad-idle-empty', { ...alice, idleTimeout: '' }),
  },
  {
    description: 'idleTimeout as a number',
    field: 'spec.idleTimeout',
    object: session('bad-idle-number', { ...alice, idleTimeout: 30 }),
  },
  {
    description: 'state outside the enum',
    field: 'spec.state',
    object: session('bad-state', { ...alice, state: 'paused' }),
  },
  {
    description: 'state in the wrong case (that is the phase spelling)',
    field: 'spec.state',
    object: session('bad-state-case', { ...alice, state: 'Running' }),
  },
  {
    description: 'user missing',
    field: 'spec.user',
    object: session('bad-no-user', { template: 'firefox' }),
  },
  {
    description: 'user empty',
    field: 'spec.user',
    object: session('bad-empty-user', { ...alice, user: '' }),
  },
  {
    description: 'user longer than 253 characters',
    field: 'spec.user',
    object: session('bad-long-user', { ...alice, user: long('u', 254) }),
  },
  {
    description: 'template missing',
    field: 'spec.template',
    object: session('bad-no-template', { user: 'alice@example.com' }),
  },
  {
    description: 'template name with capitals',
    field: 'spec.template',
    object: session('bad-template-caps', { ...alice, template: 'Firefox' }),
  },
  {
    description: 'template name with an underscore',
    field: 'spec.template',
    object: session('bad-template-underscore', { ...alice, template: 'fire_fox' }),
  },
  {
    description: 'template name longer than 63 characters',
    field: 'spec.template',
    object: session('bad-template-long', { ...alice, template: long('t', 64) }),
  },
  {
    description: 'persistentHome as a string',
    field: 'spec.persistentHome',
    object: session('bad-home-string', { ...alice, persistentHome: 'yes' }),
  },
  {
    description: 'a quantity that is not one',
    field: 'spec.resources.requests.cpu',
    object: session('bad-quantity', { ...alice, resources: { requests: { cpu: 'two' } } }),
  },
  {
    description: 'a negative limit',
    field: 'spec.resources.limits',
    object: session('bad-negative-limit', { ...alice, resources: { limits: { memory: '-1Gi' } } }),
  },
  {
    description: 'request above its limit (across units)',
    field: 'spec.resources.requests',
    object: session('bad-request-over-limit', {
      ...alice,
      resources: { requests: { memory: '2Gi' }, limits: { memory: '1500Mi' } },
    }),
  },
  {
    description: 'session name ending in the reserved suffix of shortened names',
    field: 'metadata.name',
    object: session('desk-0123456789abcdef', alice),
  },
  {
    description: 'session name with capitals',
    field: 'metadata.name',
    object: session('Alice-Firefox', alice),
  },
  {
    description: 'spec missing',
    field: 'spec',
    object: { apiVersion: API_GROUP_VERSION, kind: 'Session', metadata: { name: 'bad-no-spec' } },
  },
];

export const validTemplates: ValidCase[] = [
  {
    description: 'LinuxServer.io Firefox, as in deploy/templates/browsers/firefox.yaml',
    object: template('firefox', {
      displayName: 'Firefox',
      description: 'Mozilla Firefox web browser.',
      category: 'Web Browsers',
      icon: 'https://raw.githubusercontent.com/linuxserver/docker-templates/master/linuxserver.io/img/firefox-logo.png',
      baseImage: 'lscr.io/linuxserver/firefox:latest',
      defaultResources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '2', memory: '4Gi' } },
      ports: [{ name: 'http', containerPort: 3000 }],
      env: [
        { name: 'PUID', value: '1000' },
        { name: 'PGID', value: '1000' },
        { name: 'TZ', value: 'Etc/UTC' },
      ],
      vnc: { enabled: true, port: 3000, protocol: 'websocket', encryption: false },
      capabilities: ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'KILL', 'SETGID', 'SETUID'],
      tags: ['browser', 'web'],
      homePath: '/config',
      shmSize: '1Gi',
    }),
  },
  {
    description: 'minimal: displayName, baseImage and the VNC port',
    object: template('minimal', {
      displayName: 'Desktop',
      baseImage: 'example/desktop',
      vnc: { port: 5900 },
    }),
  },
  {
    description: 'raw RFB on 5900 listed in ports next to an audio port',
    object: template('xfce', {
      displayName: 'XFCE Desktop',
      baseImage: 'registry.example.com:5000/desktops/xfce:4.18',
      ports: [
        { name: 'vnc', containerPort: 5900, protocol: 'TCP' },
        { name: 'audio', containerPort: 4713 },
      ],
      vnc: { port: 5900, protocol: 'rfb' },
      homePath: '/home/user',
    }),
  },
  {
    description: 'no VNC endpoint: a web app served on its first port',
    object: template('code-server', {
      displayName: 'VS Code',
      category: 'Development',
      baseImage: 'lscr.io/linuxserver/code-server:4.96.4',
      ports: [{ name: 'https', containerPort: 8443 }],
      vnc: { enabled: false, port: 5900 },
    }),
  },
  {
    description: 'same port number over TCP and UDP',
    object: template('tcp-udp', {
      displayName: 'Game',
      baseImage: 'example/game',
      ports: [
        { name: 'vnc', containerPort: 5900, protocol: 'TCP' },
        { name: 'vnc-udp', containerPort: 5900, protocol: 'UDP' },
      ],
      vnc: { port: 5900 },
    }),
  },
  {
    description: 'environment variables, one without a value',
    object: template('with-env', {
      ...basicTemplate,
      env: [
        { name: 'TITLE', value: 'My Browser' },
        { name: 'FIREFOX_CLI', value: 'https://example.com' },
        { name: 'app.mode' },
      ],
    }),
  },
  {
    description: 'scratch volume mounts with size limits',
    object: template('with-mounts', {
      ...basicTemplate,
      volumeMounts: [
        { name: 'cache', mountPath: '/config/.cache', sizeLimit: '2Gi' },
        { name: 'downloads', mountPath: '/downloads', readOnly: false, sizeLimit: 1073741824 },
      ],
    }),
  },
  {
    description: 'capabilities the app needs',
    object: template('chromium', {
      displayName: 'Chromium',
      baseImage: 'lscr.io/linuxserver/chromium:latest',
      vnc: { port: 3000, protocol: 'websocket' },
      capabilities: ['SYS_ADMIN'],
      shmSize: '2Gi',
    }),
  },
  {
    description: 'tags and an inline data: icon',
    object: template('tagged', {
      ...basicTemplate,
      icon: 'data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=',
      tags: ['browser', 'privacy', 'web-2'],
    }),
  },
  {
    description: 'default requests equal to limits across units',
    object: template('guaranteed', {
      ...basicTemplate,
      defaultResources: { requests: { cpu: '1', memory: '1024Mi' }, limits: { cpu: '1000m', memory: '1Gi' } },
    }),
  },
  {
    description: 'encrypted VNC endpoint',
    object: template('tls-vnc', {
      displayName: 'Secure Desktop',
      baseImage: 'example/secure-desktop:1.0',
      vnc: { enabled: true, port: 5901, protocol: 'rfb', encryption: true },
    }),
  },
  {
    description: 'name that is a subdomain with dots',
    object: template('vs-code.v2', { ...basicTemplate, displayName: 'VS Code 2' }),
  },
  { description: 'name of 63 characters', object: template(long('t', 63), basicTemplate) },
  {
    description: 'image pinned by digest',
    object: template('pinned', {
      ...basicTemplate,
      baseImage: `ghcr.io/example/app@sha256:${long('a', 64)}`,
    }),
  },
  {
    description: 'integer shmSize and homePath elsewhere',
    object: template('gimp', {
      displayName: 'GIMP',
      category: 'Graphics',
      baseImage: 'lscr.io/linuxserver/gimp:latest',
      vnc: { port: 3000, protocol: 'websocket' },
      homePath: '/home/abc',
      shmSize: 536870912,
    }),
  },
  {
    description: 'a status as the reconciler writes it (ignored by the API server on create)',
    object: template('with-status', basicTemplate, {
      status: {
        valid: false,
        observedGeneration: 3,
        conditions: [
          {
            type: 'Valid',
            status: 'False',
            lastTransitionTime: '2025-01-31T10:00:00.123+01:00',
            reason: 'ImagePullFailed',
            message: 'image lscr.io/linuxserver/firefox:nope was not found',
          },
        ],
      },
    }),
  },
];

export const invalidTemplates: InvalidCase[] = [
  {
    description: 'VNC port above 65535',
    field: 'spec.vnc.port',
    object: template('bad-vnc-port-high', { ...basicTemplate, vnc: { port: 70000 } }),
  },
  {
    description: 'VNC port 0',
    field: 'spec.vnc.port',
    object: template('bad-vnc-port-zero', { ...basicTemplate, vnc: { port: 0 } }),
  },
  {
    description: 'VNC protocol outside the enum',
    field: 'spec.vnc.protocol',
    object: template('bad-vnc-protocol', { ...basicTemplate, vnc: { port: 5900, protocol: 'vnc' } }),
  },
  {
    description: 'VNC port not among the listed ports',
    field: 'spec.vnc.port',
    object: template('bad-vnc-not-in-ports', {
      ...basicTemplate,
      ports: [{ name: 'http', containerPort: 8080 }],
      vnc: { port: 3000, protocol: 'websocket' },
    }),
  },
  {
    description: 'VNC port listed only as UDP',
    field: 'spec.vnc.port',
    object: template('bad-vnc-udp', {
      ...basicTemplate,
      ports: [{ name: 'vnc', containerPort: 5900, protocol: 'UDP' }],
      vnc: { port: 5900 },
    }),
  },
  {
    description: 'vnc missing',
    field: 'spec.vnc',
    object: template('bad-no-vnc', { displayName: 'Firefox', baseImage: 'lscr.io/linuxserver/firefox' }),
  },
  {
    description: 'no VNC endpoint and no ports',
    field: 'spec.ports',
    object: template('bad-nothing-exposed', { ...basicTemplate, vnc: { enabled: false, port: 3000 } }),
  },
  {
    description: 'container port 0',
    field: 'spec.ports[0].containerPort',
    object: template('bad-container-port', {
      ...basicTemplate,
      ports: [{ name: 'http', containerPort: 0 }],
      vnc: { enabled: false, port: 3000 },
    }),
  },
  {
    description: 'port protocol outside the enum',
    field: 'spec.ports[0].protocol',
    object: template('bad-port-protocol', {
      ...basicTemplate,
      ports: [{ name: 'http', containerPort: 3000, protocol: 'SCTP' }],
    }),
  },
  {
    description: 'port name with capitals',
    field: 'spec.ports[0].name',
    object: template('bad-port-name', { ...basicTemplate, ports: [{ name: 'VNC', containerPort: 3000 }] }),
  },
  {
    description: 'the same port and protocol twice',
    field: 'spec.ports[1]',
    object: template('bad-duplicate-port', {
      ...basicTemplate,
      ports: [
        { name: 'http', containerPort: 3000 },
        { name: 'web', containerPort: 3000, protocol: 'TCP' },
      ],
    }),
  },
  {
    description: 'two ports with the same name',
    field: 'spec.ports',
    object: template('bad-duplicate-port-name', {
      ...basicTemplate,
      ports: [
        { name: 'http', containerPort: 3000 },
        { name: 'http', containerPort: 3001 },
      ],
    }),
  },
  {
    description: 'baseImage missing',
    field: 'spec.baseImage',
    object: template('bad-no-image', { displayName: 'Firefox', vnc: { port: 3000 } }),
  },
  {
    description: 'baseImage with a space',
    field: 'spec.baseImage',
    object: template('bad-image-space', {
      ...basicTemplate,
      baseImage: 'lscr.io/linuxserver/firefox latest',
    }),
  },
  {
    description: 'empty displayName',
    field: 'spec.displayName',
    object: template('bad-display-name', { ...basicTemplate, displayName: '' }),
  },
  {
    description: 'capability in lower case',
    field: 'spec.capabilities[0]',
    object: template('bad-capability', { ...basicTemplate, capabilities: ['sys_admin'] }),
  },
  {
    description: 'capability listed twice',
    field: 'spec.capabilities[1]',
    object: template('bad-duplicate-capability', {
      ...basicTemplate,
      capabilities: ['SYS_ADMIN', 'SYS_ADMIN'],
    }),
  },
  {
    description: 'relative homePath',
    field: 'spec.homePath',
    object: template('bad-home-path', { ...basicTemplate, homePath: 'config' }),
  },
  {
    description: 'shmSize that is not a quantity',
    field: 'spec.shmSize',
    object: template('bad-shm-size', { ...basicTemplate, shmSize: '1 GB' }),
  },
  {
    description: 'negative shmSize',
    field: 'spec.shmSize',
    object: template('bad-shm-negative', { ...basicTemplate, shmSize: '-1Gi' }),
  },
  {
    description: 'default request above its limit',
    field: 'spec.defaultResources.requests',
    object: template('bad-default-resources', {
      ...basicTemplate,
      defaultResources: { requests: { cpu: '2' }, limits: { cpu: '1500m' } },
    }),
  },
  {
    description: 'environment variable name starting with a digit',
    field: 'spec.env[0].name',
    object: template('bad-env-name', { ...basicTemplate, env: [{ name: '1BAD', value: 'x' }] }),
  },
  {
    description: 'environment variable set twice',
    field: 'spec.env[1]',
    object: template('bad-duplicate-env', {
      ...basicTemplate,
      env: [
        { name: 'TZ', value: 'UTC' },
        { name: 'TZ', value: 'Europe/Paris' },
      ],
    }),
  },
  {
    description: 'volume mounted over homePath',
    field: 'spec.volumeMounts',
    object: template('bad-mount-home', {
      ...basicTemplate,
      volumeMounts: [{ name: 'profile', mountPath: '/config' }],
    }),
  },
  {
    description: 'two volumes at one mountPath',
    field: 'spec.volumeMounts',
    object: template('bad-duplicate-mount-path', {
      ...basicTemplate,
      volumeMounts: [
        { name: 'a', mountPath: '/data' },
        { name: 'b', mountPath: '/data' },
      ],
    }),
  },
  {
    description: 'volume name StreamSpace reserves for its own volumes',
    field: 'spec.volumeMounts[0].name',
    object: template('bad-mount-reserved', {
      ...basicTemplate,
      volumeMounts: [{ name: 'dshm', mountPath: '/dev/shm' }],
    }),
  },
  {
    description: 'icon with an unsupported scheme',
    field: 'spec.icon',
    object: template('bad-icon', { ...basicTemplate, icon: 'ftp://example.com/icon.png' }),
  },
  {
    description: 'tag with a space',
    field: 'spec.tags[0]',
    object: template('bad-tag', { ...basicTemplate, tags: ['web browser'] }),
  },
  {
    description: 'template name longer than 63 characters',
    field: 'metadata.name',
    object: template(long('t', 64), basicTemplate),
  },
];

export const apiCorpus = {
  sessions: { valid: validSessions, invalid: invalidSessions },
  templates: { valid: validTemplates, invalid: invalidTemplates },
} as const;
