import type {
  V1Deployment,
  V1Ingress,
  V1NetworkPolicy,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Service,
} from '@kubernetes/client-node';
import {
  ANNOTATIONS,
  homeClaimName,
  isDns1123Label,
  LABELS,
  legacyHomeClaimName,
  sessionChildName,
  sessionHostLabel,
  sessionLabelValue,
  validateTemplate,
} from '@streamspace/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ReconcilerSettings } from './reconciler-settings.js';
import { type ObservedSession, POD_TEMPLATE_SNAPSHOT, planSession } from './session-plan.js';
import type { StoredSession, StoredTemplate } from './stored-objects.js';

const settings: ReconcilerSettings = {
  ingressDomain: 'desktops.example.com',
  ingressHostPattern: '{session}.{domain}',
  homeStorageSize: '10Gi',
  homeAccessMode: 'ReadWriteMany',
  startupDeadlineMs: 60_000,
};
const now = new Date('2026-01-01T12:00:00Z');

function session(spec: Partial<StoredSession['spec']> = {}, status?: StoredSession['status']): StoredSession {
  return {
    apiVersion: 'stream.streamspace.io/v1alpha1',
    kind: 'Session',
    metadata: { name: 'desk', namespace: 'team', uid: 'uid-1', generation: 3 },
    spec: {
      user: 'alice@example.com',
      template: 'firefox',
      state: 'running',
      persistentHome: false,
      idleTimeout: '30m',
      maxSessionDuration: '8h',
      ...spec,
    },
    ...(status ? { status } : {}),
  } as StoredSession;
}

function template(spec: Partial<StoredTemplate['spec']> = {}): StoredTemplate {
  return {
    apiVersion: 'stream.streamspace.io/v1alpha1',
    kind: 'Template',
    metadata: { name: 'firefox', namespace: 'team', generation: 1 },
    spec: {
      displayName: 'Firefox',
      baseImage: 'lscr.io/linuxserver/firefox:latest',
      ports: [{ name: 'http', containerPort: 3000, protocol: 'TCP' }],
      vnc: { enabled: true, port: 3000, protocol: 'websocket', encryption: false },
      defaultResources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '2Gi' } },
      shmSize: '1Gi',
      homePath: '/config',
      ...spec,
    },
  } as StoredTemplate;
}

function pod(ready: boolean, waitingReason?: string): V1Pod {
  return {
    metadata: { name: 'ss-desk-abc', namespace: 'team' },
    status: {
      phase: ready ? 'Running' : 'Pending',
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
      containerStatuses: waitingReason
        ? [
            {
              name: 'desktop',
              image: 'x',
              imageID: '',
              ready: false,
              restartCount: 0,
              state: { waiting: { reason: waitingReason, message: 'pull failed' } },
            },
          ]
        : [],
    },
  };
}

/** An object controlled by the Session of session() (uid-1), as the reconciler creates them. */
function owned<T extends object>(object: T & { metadata?: object }): T {
  return {
    ...object,
    metadata: {
      ...(object.metadata ?? {}),
      ownerReferences: [
        {
          apiVersion: 'stream.streamspace.io/v1alpha1',
          kind: 'Session',
          name: 'desk',
          uid: 'uid-1',
          controller: true,
        },
      ],
    },
  };
}

/** A home claim whose owner annotation names `user`. */
function claimOf(user: string, name = homeClaimName(user)): V1PersistentVolumeClaim {
  return { metadata: { name, annotations: { 'stream.streamspace.io/user': user } } };
}

function observed(partial: Partial<ObservedSession> = {}): ObservedSession {
  return { session: session(), template: template(), pods: [], ...partial };
}

const kinds = (objects: { kind?: string }[]) => objects.map((o) => o.kind);

describe('planSession: running', () => {
  it('creates no Deployment the API server would refuse for a Session hibernated before it ran', () => {
    const plan = planSession(
      observed({
        session: session({ state: 'hibernated', resources: { requests: { cpu: '2' } } }),
        template: template({ defaultResources: { requests: { cpu: '500m' }, limits: { cpu: '1' } } }),
      }),
      settings,
      now,
    );
    expect(plan.apply.filter((o) => o.kind === 'Deployment')).toEqual([]);
    expect(plan.status.phase).toBe('Hibernated');
  });

  it('refuses, saying why, a Session whose requests exceed the limits its Template gives it', () => {
    const plan = planSession(
      observed({
        session: session({ resources: { requests: { cpu: '2' } } }),
        template: template({ defaultResources: { requests: { cpu: '500m' }, limits: { cpu: '1' } } }),
      }),
      settings,
      now,
    );
    expect(plan.apply.filter((o) => o.kind === 'Deployment')).toEqual([]);
    expect(plan.status.phase).toBe('Failed');
    const ready = plan.status.conditions.find((c) => c.type === 'Ready');
    expect(ready?.reason).toBe('InvalidResources');
    expect(ready?.message).toContain('requests.cpu 2 is above limits.cpu 1');
    expect(plan.events.map((e) => e.reason)).toContain('InvalidResources');
  });

  it('gives a long-named Session shortened child names, labels and host, and its full name in an annotation', () => {
    const name = `${'a'.repeat(60)}.desktop-of-alice`;
    const long = session();
    long.metadata.name = name;
    const plan = planSession(observed({ session: long }), settings, now);
    const [deployment, service, ingress] = plan.apply as [V1Deployment, V1Service, V1Ingress];
    for (const child of [deployment, service, ingress]) {
      expect(child.metadata?.name).toBe(sessionChildName(name));
      expect(child.metadata?.name).toMatch(/^ss-a{33}-[0-9a-f]{16}$/);
      expect(child.metadata?.labels?.[LABELS.session]).toBe(sessionLabelValue(name));
      expect(child.metadata?.annotations?.[ANNOTATIONS.session]).toBe(name);
    }
    const podMeta = deployment.spec?.template.metadata;
    expect(podMeta?.annotations?.[ANNOTATIONS.session]).toBe(name);
    expect(deployment.spec?.selector.matchLabels).toMatchObject({ [LABELS.session]: sessionLabelValue(name) });
    expect(podMeta?.labels).toMatchObject(deployment.spec?.selector.matchLabels ?? { missing: true });
    expect(service.spec?.selector).toEqual(deployment.spec?.selector.matchLabels);
    const host = ingress.spec?.rules?.[0]?.host ?? '';
    expect(host.split('.')[0]).toBe(sessionHostLabel(name));
    expect(isDns1123Label(host.split('.')[0] ?? '')).toBe(true);
    expect(plan.status.url).toBe(`http://${host}/`);
    // The desktop's NetworkPolicy selects the same pods (a label value holds at most 63 characters).
    const fenced = planSession(
      observed({ session: long }),
      { ...settings, desktopIngressFrom: [{ namespaceSelector: {} }] },
      now,
    );
    const policy = fenced.apply.find((o) => o.kind === 'NetworkPolicy') as V1NetworkPolicy | undefined;
    expect(policy?.spec?.podSelector?.matchLabels).toEqual(deployment.spec?.selector.matchLabels);
  });

  it('puts no name annotation on the children of a Session whose name fits', () => {
    const [deployment] = planSession(observed(), settings, now).apply as [V1Deployment];
    expect(deployment.metadata?.annotations?.[ANNOTATIONS.session]).toBeUndefined();
    expect(deployment.spec?.template.metadata?.annotations).toBeUndefined();
  });

  it('creates the desktop, its service and ingress, and waits for the pod', () => {
    const plan = planSession(observed(), settings, now);
    expect(kinds(plan.apply)).toEqual(['Deployment', 'Service', 'Ingress']);
    expect(plan.status.phase).toBe('Pending');
    expect(plan.status.url).toBe('http://desk.desktops.example.com/');
    expect(plan.requeueAfterMs).toBeGreaterThanOrEqual(60_000);
    expect(plan.events.map((e) => e.reason)).toContain('Created');
    const deployment = plan.apply[0] as V1Deployment;
    expect(deployment.metadata?.name).toBe(sessionChildName('desk'));
    expect(deployment.spec?.replicas).toBe(1);
    expect(deployment.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: 'Session',
      name: 'desk',
      uid: 'uid-1',
      controller: true,
    });
  });

  it('lets the Session’s resources win over the Template’s defaults, key by key', () => {
    const plan = planSession(
      observed({ session: session({ resources: { requests: { cpu: '2' } } }) }),
      settings,
      now,
    );
    const container = (plan.apply[0] as V1Deployment).spec?.template.spec?.containers[0];
    expect(container?.resources).toEqual({
      requests: { cpu: '2', memory: '1Gi' },
      limits: { memory: '2Gi' },
    });
    expect(
      (plan.apply[0] as V1Deployment).spec?.template.spec?.volumes?.find((v) => v.name === 'dshm')?.emptyDir,
    ).toEqual({ medium: 'Memory', sizeLimit: '1Gi' });
  });

  it('keeps the Template’s sizeLimit on its scratch volumes (and none where it sets none)', () => {
    const plan = planSession(
      observed({
        template: template({
          volumeMounts: [
            { name: 'cache', mountPath: '/config/.cache', sizeLimit: '2Gi' },
            { name: 'downloads', mountPath: '/downloads', sizeLimit: 1073741824 },
            { name: 'tmp', mountPath: '/scratch' },
          ],
        }),
      }),
      settings,
      now,
    );
    const volumes = (plan.apply[0] as V1Deployment).spec?.template.spec?.volumes ?? [];
    const emptyDir = (name: string) => volumes.find((v) => v.name === name)?.emptyDir;
    expect(emptyDir('cache')).toEqual({ sizeLimit: '2Gi' });
    expect(emptyDir('downloads')).toEqual({ sizeLimit: '1073741824' });
    expect(emptyDir('tmp')).toEqual({});
  });

  describe('with a resource ceiling', () => {
    const capped: ReconcilerSettings = {
      ...settings,
      resourceCeiling: { requests: { cpu: '2', memory: '4Gi' }, limits: { cpu: '4', memory: '8Gi' } },
    };

    it('starts a Session within it, with the limits it leaves out set to the ceiling', () => {
      const plan = planSession(observed(), capped, now);
      const container = (plan.apply[0] as V1Deployment).spec?.template.spec?.containers[0];
      expect(container?.resources).toEqual({
        requests: { cpu: '500m', memory: '1Gi' },
        limits: { memory: '2Gi', cpu: '4' },
      });
      expect(plan.status.phase).toBe('Pending');
    });

    it('refuses a Session asking for more: nothing runs, and the condition and Event name the ceiling', () => {
      const big = session({ resources: { requests: { memory: '32Gi' } } });
      const plan = planSession(observed({ session: big }), capped, now);
      expect(plan.apply).toEqual([]);
      expect(plan.status.phase).toBe('Failed');
      const ready = plan.status.conditions.find((c) => c.type === 'Ready');
      expect(ready).toMatchObject({ status: 'False', reason: 'ResourcesExceedCeiling' });
      expect(ready?.message).toContain(
        'requests.memory 32Gi (from the Session) is above the ceiling 4Gi set by SESSION_MAX_REQUESTS (chart value sessions.limits.maxRequests)',
      );
      expect(plan.events).toEqual([
        { type: 'Warning', reason: 'ResourcesExceedCeiling', message: ready?.message },
      ]);
      // Said once: the next reconcile of the same refusal adds no Event.
      const again = planSession(
        observed({ session: { ...big, status: plan.status } as StoredSession }),
        capped,
        now,
      );
      expect(again.events).toEqual([]);
      expect(again.status.conditions).toEqual(plan.status.conditions);
    });

    it('names the Template when its defaults are what is too big, and scales an existing Deployment to zero', () => {
      const deployment = planSession(observed(), settings, now).apply[0] as V1Deployment;
      const plan = planSession(
        observed({
          template: template({ defaultResources: { requests: { cpu: '3' } } }),
          deployment,
        }),
        capped,
        now,
      );
      expect(kinds(plan.apply)).toEqual(['Deployment']);
      expect((plan.apply[0] as V1Deployment).spec?.replicas).toBe(0);
      expect(plan.status.conditions.find((c) => c.type === 'Ready')?.message).toContain(
        'requests.cpu 3 (from Template "firefox"\'s defaultResources) is above the ceiling 2',
      );
    });

    it('leaves a desktop that is up alone until it next starts', () => {
      const first = planSession(observed({ pods: [pod(true)] }), capped, now);
      const live = {
        session: session({ resources: { requests: { memory: '32Gi' } } }, first.status),
        deployment: first.apply[0] as V1Deployment,
        pods: [pod(true)],
      };
      const plan = planSession(observed(live), capped, now);
      expect(plan.status.phase).toBe('Running');
      expect((plan.apply[0] as V1Deployment).spec?.replicas).toBe(1);
    });
  });

  it('claims the user’s home only when asked, and never owns it', () => {
    const plan = planSession(observed({ session: session({ persistentHome: true }) }), settings, now);
    const claim = plan.apply.find((o) => o.kind === 'PersistentVolumeClaim');
    expect(claim?.metadata?.name).toBe(homeClaimName('alice@example.com'));
    expect(claim?.metadata?.ownerReferences).toBeUndefined();
    const mount = (plan.apply[0] as V1Deployment).spec?.template.spec?.containers[0]?.volumeMounts?.find(
      (m) => m.name === 'home',
    );
    expect(mount).toEqual({ name: 'home', mountPath: '/config', subPath: 'firefox' });
    const existing = planSession(
      observed({ session: session({ persistentHome: true }), homeClaim: claimOf('alice@example.com') }),
      settings,
      now,
    );
    expect(kinds(existing.apply)).not.toContain('PersistentVolumeClaim');
  });

  it('is Running with the pod’s name once a pod is ready', () => {
    const plan = planSession(observed({ pods: [pod(true)] }), settings, now);
    expect(plan.status).toMatchObject({
      phase: 'Running',
      podName: 'ss-desk-abc',
      url: 'http://desk.desktops.example.com/',
      observedGeneration: 3,
    });
    expect(plan.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(plan.requeueAfterMs).toBeUndefined();
  });

  it('fails with the pod’s own reason after the startup deadline', () => {
    const started = planSession(observed({ pods: [pod(false, 'ErrImagePull')] }), settings, now);
    expect(started.status.phase).toBe('Pending');
    const later = new Date(now.getTime() + 61_000);
    const plan = planSession(
      observed({
        session: session({}, started.status as StoredSession['status']),
        pods: [pod(false, 'ErrImagePull')],
      }),
      settings,
      later,
    );
    expect(plan.status.phase).toBe('Failed');
    const ready = plan.status.conditions.find((c) => c.type === 'Ready');
    expect(ready?.reason).toBe('StartupDeadlineExceeded');
    expect(ready?.message).toContain('ErrImagePull: pull failed');
    expect(plan.events.map((e) => e.reason)).toContain('Failed');
  });

  it('keeps a live desktop on the pod template it started with', () => {
    const first = planSession(observed({ pods: [pod(true)] }), settings, now);
    const deployment = first.apply[0] as V1Deployment;
    const changed = template({ baseImage: 'lscr.io/linuxserver/firefox:2.0' });
    const running = session({}, first.status as StoredSession['status']);
    const plan = planSession(
      observed({ session: running, template: changed, deployment, pods: [pod(true)] }),
      settings,
      now,
    );
    expect((plan.apply[0] as V1Deployment).spec?.template.spec?.containers[0]?.image).toBe(
      'lscr.io/linuxserver/firefox:latest',
    );
    // Asleep, it wakes on the new template.
    const asleep = { ...deployment, spec: { ...deployment.spec, replicas: 0 } } as V1Deployment;
    const woken = planSession(
      observed({
        session: session({}, { ...first.status, phase: 'Hibernated' } as StoredSession['status']),
        template: changed,
        deployment: asleep,
      }),
      settings,
      now,
    );
    expect((woken.apply[0] as V1Deployment).spec?.template.spec?.containers[0]?.image).toBe(
      'lscr.io/linuxserver/firefox:2.0',
    );
    expect(
      JSON.parse((woken.apply[0] as V1Deployment).metadata?.annotations?.[POD_TEMPLATE_SNAPSHOT] as string)
        .spec.containers[0].image,
    ).toBe('lscr.io/linuxserver/firefox:2.0');
  });
});

describe('planSession: hibernated and terminated', () => {
  const created = planSession(observed({ pods: [pod(true)] }), settings, now);
  const deployment = created.apply[0] as V1Deployment;
  const runningStatus = created.status as StoredSession['status'];

  it('scales to zero and keeps everything else', () => {
    const plan = planSession(
      observed({ session: session({ state: 'hibernated' }, runningStatus), deployment, pods: [] }),
      settings,
      now,
    );
    expect(kinds(plan.apply)).toEqual(['Deployment', 'Service', 'Ingress']);
    expect((plan.apply[0] as V1Deployment).spec?.replicas).toBe(0);
    expect(plan.remove).toEqual([]);
    expect(plan.status.phase).toBe('Hibernated');
    expect(plan.events.map((e) => e.reason)).toEqual(['Hibernated']);
  });

  it('says Woken when a hibernated desktop is ready again, even after it was Pending', () => {
    const waking = planSession(
      observed({
        session: session({}, { ...runningStatus, phase: 'Hibernated' } as StoredSession['status']),
        deployment,
        pods: [],
      }),
      settings,
      now,
    );
    expect(waking.status.phase).toBe('Pending');
    expect(waking.status.conditions.find((c) => c.type === 'Ready')?.reason).toBe('Waking');
    const woken = planSession(
      observed({
        session: session({}, waking.status as StoredSession['status']),
        deployment,
        pods: [pod(true)],
      }),
      settings,
      now,
    );
    expect(woken.events.map((e) => e.reason)).toEqual(['Woken']);
  });

  it('says Woken when a hibernated desktop is ready at once', () => {
    const plan = planSession(
      observed({
        session: session({}, { ...runningStatus, phase: 'Hibernated' } as StoredSession['status']),
        deployment,
        pods: [pod(true)],
      }),
      settings,
      now,
    );
    expect(plan.events.map((e) => e.reason)).toContain('Woken');
  });

  it('removes the workload but not the home, and is Terminated when it is gone', () => {
    const terminating = planSession(
      observed({
        session: session({ state: 'terminated', persistentHome: true }, runningStatus),
        deployment,
        service: owned({ metadata: { name: 'ss-desk' } }),
        homeClaim: claimOf('alice@example.com'),
        pods: [pod(true)],
      }),
      settings,
      now,
    );
    expect(terminating.remove.map((r) => r.kind)).toEqual(['Service', 'Deployment']);
    expect(terminating.apply).toEqual([]);
    expect(terminating.status.phase).toBe('Running');
    const gone = planSession(
      observed({
        session: session({ state: 'terminated' }, runningStatus),
        homeClaim: claimOf('alice@example.com'),
      }),
      settings,
      now,
    );
    expect(gone.status.phase).toBe('Terminated');
    expect(gone.status.url).toBeUndefined();
  });
});

describe('planSession: templates', () => {
  it('waits with a condition naming the missing template', () => {
    const plan = planSession(observed({ template: undefined }), settings, now);
    expect(plan.apply).toEqual([]);
    expect(plan.status.phase).toBe('Pending');
    const resolved = plan.status.conditions.find((c) => c.type === 'TemplateResolved');
    expect(resolved).toMatchObject({ status: 'False', reason: 'TemplateNotFound' });
    expect(resolved?.message).toContain('"firefox"');
    expect(plan.events.map((e) => e.reason)).toEqual(['TemplateNotFound']);
    // Said once, not on every reconcile.
    const again = planSession(
      observed({ session: session({}, plan.status as StoredSession['status']), template: undefined }),
      settings,
      now,
    );
    expect(again.events).toEqual([]);
  });

  it('refuses an invalid template and says why', () => {
    const plan = planSession(
      observed({
        template: template({ vnc: { enabled: true, port: 70000, protocol: 'websocket', encryption: false } }),
      }),
      settings,
      now,
    );
    expect(plan.apply).toEqual([]);
    expect(plan.status.conditions.find((c) => c.type === 'TemplateResolved')?.reason).toBe('TemplateInvalid');
  });
});

describe('planSession: properties', () => {
  const names = fc.stringMatching(/^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$/);
  const users = fc.string({ minLength: 1, maxLength: 80 });
  const states = fc.constantFrom('running', 'hibernated', 'terminated');

  it('is deterministic and plans valid object names and labels', () => {
    fc.assert(
      fc.property(names, users, states, fc.boolean(), (name, user, state, home) => {
        const s = session({ user, state, persistentHome: home } as Partial<StoredSession['spec']>);
        s.metadata.name = name;
        const input = observed({ session: s });
        const a = planSession(input, settings, now);
        const b = planSession(structuredClone(input), settings, now);
        expect(JSON.stringify(a)).toBe(JSON.stringify(b));
        for (const object of a.apply) {
          expect(isDns1123Label(object.metadata?.name as string)).toBe(true);
          for (const value of Object.values(object.metadata?.labels ?? {}))
            expect(value.length).toBeLessThanOrEqual(63);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('plans the same objects again once its own plan has been applied (applying twice changes nothing)', () => {
    fc.assert(
      fc.property(names, users, fc.boolean(), (name, user, home) => {
        const s = session({ user, persistentHome: home });
        s.metadata.name = name;
        const first = planSession(observed({ session: s }), settings, now);
        const deployment = first.apply.find((o) => o.kind === 'Deployment') as V1Deployment;
        const again = session({ user, persistentHome: home }, first.status as StoredSession['status']);
        again.metadata.name = name;
        const second = planSession(
          observed({ session: again, deployment, ...(home ? { homeClaim: claimOf(user) } : {}) }),
          settings,
          now,
        );
        for (const c of second.status.conditions) {
          expect(c.lastTransitionTime).toBe(
            first.status.conditions.find((p) => p.type === c.type)?.lastTransitionTime,
          );
        }
        expect(
          second.apply
            .filter((o) => o.kind !== 'PersistentVolumeClaim')
            .map((o) => JSON.stringify({ ...o, metadata: { ...o.metadata, name: '' } })),
        ).toEqual(
          first.apply
            .filter((o) => o.kind !== 'PersistentVolumeClaim')
            .map((o) => JSON.stringify({ ...o, metadata: { ...o.metadata, name: '' } })),
        );
      }),
      { numRuns: 100 },
    );
  });

  it('uses a template that the shared schema accepts', () => {
    expect(validateTemplate(template()).ok).toBe(true);
  });
});

describe('planSession: objects that are not its own', () => {
  const foreignDeployment: V1Deployment = {
    metadata: { name: 'ss-desk', namespace: 'team', labels: { app: 'someone-elses' } },
    spec: { selector: { matchLabels: { app: 'x' } }, template: {} },
  };

  it('neither applies over nor deletes a child it does not control, and says which and what to do', () => {
    for (const state of ['running', 'hibernated'] as const) {
      const plan = planSession(
        observed({ session: session({ state }), deployment: foreignDeployment }),
        settings,
        now,
      );
      expect(plan.apply).toEqual([]);
      expect(plan.remove).toEqual([]);
      expect(plan.status.phase).toBe('Failed');
      const ready = plan.status.conditions.find((c) => c.type === 'Ready');
      expect(ready).toMatchObject({ status: 'False', reason: 'ChildNotOwned' });
      expect(ready?.message).toContain('Deployment "ss-desk" in namespace "team"');
      expect(ready?.message).toMatch(/Delete them if they are not needed/);
      expect(plan.events.map((e) => e.reason)).toEqual(['ChildNotOwned']);
    }
    // A controller reference to another Session (another uid) is not this Session's either.
    const otherSession = {
      ...foreignDeployment,
      metadata: {
        ...foreignDeployment.metadata,
        ownerReferences: [
          {
            apiVersion: 'stream.streamspace.io/v1alpha1',
            kind: 'Session',
            name: 'other',
            uid: 'uid-2',
            controller: true,
          },
        ],
      },
    };
    const service = { metadata: { name: 'ss-desk', namespace: 'team' } };
    const plan = planSession(observed({ deployment: otherSession, service }), settings, now);
    expect(plan.apply).toEqual([]);
    expect(plan.status.conditions.find((c) => c.type === 'Ready')?.message).toContain(
      'Deployment "ss-desk", Service "ss-desk"',
    );
  });

  it('on termination removes only its own children and leaves the others', () => {
    const ingress = owned({ metadata: { name: 'ss-desk' } });
    const plan = planSession(
      observed({ session: session({ state: 'terminated' }), deployment: foreignDeployment, ingress }),
      settings,
      now,
    );
    expect(plan.remove.map((r) => r.kind)).toEqual(['Ingress']);
    const gone = planSession(
      observed({ session: session({ state: 'terminated' }), deployment: foreignDeployment }),
      settings,
      now,
    );
    expect(gone.remove).toEqual([]);
    expect(gone.status.phase).toBe('Terminated');
  });

  it('waits, without an alarm, for the children of an earlier Session of the same name to be collected', () => {
    const leftover = {
      ...foreignDeployment,
      metadata: {
        ...foreignDeployment.metadata,
        ownerReferences: [
          {
            apiVersion: 'stream.streamspace.io/v1alpha1',
            kind: 'Session',
            name: 'desk',
            uid: 'uid-0',
            controller: true,
          },
        ],
      },
    };
    const plan = planSession(observed({ deployment: leftover }), settings, now);
    expect(plan.apply).toEqual([]);
    expect(plan.status.phase).toBe('Pending');
    expect(plan.status.conditions.find((c) => c.type === 'Ready')?.message).toMatch(
      /earlier Session named "desk"/,
    );
    expect(plan.events).toEqual([]);
    expect(plan.requeueAfterMs).toBeGreaterThan(0);
  });

  it('mounts a home claim only when its owner annotation is spec.user', () => {
    const alice = session({ persistentHome: true });
    const refused = planSession(
      observed({
        session: alice,
        homeClaim: claimOf('mallory@example.com', homeClaimName('alice@example.com')),
      }),
      settings,
      now,
    );
    expect(refused.apply).toEqual([]);
    expect(refused.status.phase).toBe('Failed');
    const ready = refused.status.conditions.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'False', reason: 'HomeClaimNotOwned' });
    expect(ready?.message).toContain(`PersistentVolumeClaim "${homeClaimName('alice@example.com')}"`);
    expect(ready?.message).toContain('owner annotation "mallory@example.com"');
    expect(refused.events.map((e) => e.reason)).toEqual(['HomeClaimNotOwned']);
    // Without any annotation: refused too.
    const bare = planSession(
      observed({ session: alice, homeClaim: { metadata: { name: homeClaimName('alice@example.com') } } }),
      settings,
      now,
    );
    expect(bare.status.conditions.find((c) => c.type === 'Ready')?.message).toContain('no owner annotation');
    // A desktop already running on it is scaled to zero, nothing else is applied.
    const running = planSession(
      observed({
        session: alice,
        deployment: owned(planSession(observed({ session: alice }), settings, now).apply[0] as V1Deployment),
        homeClaim: claimOf('mallory@example.com', homeClaimName('alice@example.com')),
      }),
      settings,
      now,
    );
    expect(running.apply.map((o) => [o.kind, (o as V1Deployment).spec?.replicas])).toEqual([
      ['Deployment', 0],
    ]);
  });

  it('keeps a home made by an earlier release (32-bit name) when it names this user, and only then', () => {
    const alice = session({ persistentHome: true });
    const claimName = (plan: ReturnType<typeof planSession>) =>
      (plan.apply[0] as V1Deployment).spec?.template.spec?.volumes?.find((v) => v.name === 'home')
        ?.persistentVolumeClaim?.claimName;
    const withLegacyClaimOf = (owner: string) =>
      planSession(
        observed({
          session: alice,
          legacyHomeClaim: claimOf(owner, legacyHomeClaimName('alice@example.com')),
        }),
        settings,
        now,
      );
    const legacy = withLegacyClaimOf('alice@example.com');
    expect(claimName(legacy)).toBe(legacyHomeClaimName('alice@example.com'));
    expect(kinds(legacy.apply)).not.toContain('PersistentVolumeClaim');
    // Someone else's claim under the old name (a 32-bit collision): ignored, a new claim is made.
    const collided = withLegacyClaimOf('mallory@example.com');
    expect(claimName(collided)).toBe(homeClaimName('alice@example.com'));
    expect(kinds(collided.apply)).toContain('PersistentVolumeClaim');
    // Once the current name exists it wins.
    const both = planSession(
      observed({
        session: alice,
        homeClaim: claimOf('alice@example.com'),
        legacyHomeClaim: claimOf('alice@example.com', legacyHomeClaimName('alice@example.com')),
      }),
      settings,
      now,
    );
    expect(claimName(both)).toBe(homeClaimName('alice@example.com'));
  });

  it('refuses Sessions in the control plane’s own namespace, creating and removing nothing', () => {
    const plan = planSession(
      observed({ deployment: owned({ metadata: { name: 'ss-desk' } }) }),
      { ...settings, controlPlaneNamespace: 'team' },
      now,
    );
    expect(plan.apply).toEqual([]);
    expect(plan.remove).toEqual([]);
    expect(plan.status.phase).toBe('Failed');
    const ready = plan.status.conditions.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ reason: 'ControlPlaneNamespace' });
    expect(ready?.message).toContain('namespace "team", where StreamSpace itself runs');
    expect(plan.events.map((e) => e.reason)).toEqual(['ControlPlaneNamespace']);
    const again = planSession(
      observed({ session: session({}, plan.status as StoredSession['status']) }),
      { ...settings, controlPlaneNamespace: 'team' },
      now,
    );
    expect(again.events).toEqual([]);
    // Any other namespace is served.
    expect(
      planSession(observed(), { ...settings, controlPlaneNamespace: 'streamspace' }, now).apply,
    ).not.toEqual([]);
  });
});
