import type {
  V1Deployment,
  V1Ingress,
  V1NetworkPolicy,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Service,
} from '@kubernetes/client-node';
import type { SharedStateReader, StateRef } from '@streamspace/shared';
import type { OwnWrites, Versioned } from './own-writes.js';
import type { ObservedSession } from './session-plan.js';
import type { StoredSession as Session, StoredTemplate as Template } from './stored-objects.js';

/**
 * What a reconcile reads, from the shared state the watcher keeps (shared-state.ts), never from
 * the API server: the watcher stored each change before it published the work item that woke us,
 * so this is at least as new as the trigger. It may be newer, or briefly behind our own last
 * writes: planning from it and applying server-side is safe either way (docs/lifecycle.md).
 */
export class StateReads {
  /** By `namespace/name`: the names the Session gave when this worker last read it. */
  private readonly lastNames = new Map<string, NamesFromSession>();

  constructor(
    private readonly state: SharedStateReader,
    /** Our own last writes, newer than the state for a moment after each (own-writes.ts). */
    private readonly own?: OwnWrites,
  ) {}

  private async get<T extends object>(
    kind: Parameters<SharedStateReader['get']>[0],
    namespace: string,
    name: string,
  ): Promise<T | undefined> {
    const stored = await this.state.get<Versioned>(kind, namespace, name);
    return this.newest({ kind, namespace, name }, stored) as T | undefined;
  }

  readSession(namespace: string, name: string): Promise<Session | undefined> {
    return this.get<Session>('session', namespace, name);
  }

  readTemplate(namespace: string, name: string): Promise<Template | undefined> {
    return this.get<Template>('template', namespace, name);
  }

  /**
   * A Session and what its reconcile observes (its Template, children, home claims and pods), in
   * one read of the shared state where it can be: the Template's and the home claims' names come
   * from the Session, so they are taken from this Session's last read in this worker (a key's
   * work items all come to the worker that holds its partition) and read with it; only when they
   * are unknown or changed does `observe` read them again. One NATS request per reconcile instead
   * of two: the KV get of the Session before the batch was a round trip (a socket write, its reply
   * parsed) in every reconcile. All of it is read at once, so at least as new as the trigger.
   */
  async readSessionWithState(
    namespace: string,
    name: string,
    childName: string,
  ): Promise<{ session: Session | undefined; observe: Observe }> {
    const key = `${namespace}/${name}`;
    const guess = this.lastNames.get(key);
    const sessionRef: StateRef = { kind: 'session', namespace, name };
    const childRefs: StateRef[] = [
      { kind: 'deployment', namespace, name: childName },
      { kind: 'service', namespace, name: childName },
      { kind: 'ingress', namespace, name: childName },
      { kind: 'networkpolicy', namespace, name: childName },
    ];
    const guessed = guess ? namedRefs(namespace, guess) : [];
    const refs = [sessionRef, ...childRefs, ...guessed];
    const { objects, pods } = await this.state.read<Versioned>(refs, { namespace, session: name });
    const newest = refs.map((ref, i) => this.newest(ref, objects[i]));
    const session = newest[0] as Session | undefined;
    // A Session no longer in the shared state was deleted (the watcher stores every Session before
    // its work item): its names go, rather than wait for 4,096 others to push them out. One that
    // comes back under the same name costs a second read once, as any Session read first.
    if (!session) this.lastNames.delete(key);
    const [deployment, service, ingress, networkPolicy] = newest.slice(1, 1 + childRefs.length);
    const observe: Observe = async (read, homeClaims) => {
      const names: NamesFromSession = {
        template: read.spec.template,
        ...(read.spec.persistentHome && homeClaims ? { homeClaims } : {}),
      };
      this.rememberNames(key, names);
      const wanted = namedRefs(namespace, names);
      const fromFirstRead = sameRefs(wanted, guessed)
        ? newest.slice(1 + childRefs.length)
        : await this.readObjects(wanted);
      const [template, homeClaim, legacyHomeClaim] = fromFirstRead;
      return {
        session: read,
        template: template as Template | undefined,
        ...(deployment ? { deployment: deployment as V1Deployment } : {}),
        ...(service ? { service: service as V1Service } : {}),
        ...(ingress ? { ingress: ingress as V1Ingress } : {}),
        ...(networkPolicy ? { networkPolicy: networkPolicy as V1NetworkPolicy } : {}),
        ...(homeClaim ? { homeClaim: homeClaim as V1PersistentVolumeClaim } : {}),
        ...(legacyHomeClaim ? { legacyHomeClaim: legacyHomeClaim as V1PersistentVolumeClaim } : {}),
        pods: pods as V1Pod[],
      };
    };
    return { session, observe };
  }

  private newest(ref: StateRef, fromState: Versioned | undefined): Versioned | undefined {
    return this.own ? this.own.newest(ref.kind, ref.namespace, ref.name, fromState) : fromState;
  }

  private async readObjects(refs: StateRef[]): Promise<(Versioned | undefined)[]> {
    const { objects } = await this.state.read<Versioned>(refs);
    return refs.map((ref, i) => this.newest(ref, objects[i]));
  }

  private rememberNames(key: string, names: NamesFromSession): void {
    this.lastNames.delete(key);
    this.lastNames.set(key, names);
    if (this.lastNames.size > MAX_REMEMBERED_NAMES) {
      const oldest = this.lastNames.keys().next().value;
      if (oldest !== undefined) this.lastNames.delete(oldest);
    }
  }
}

/** The names a Session's reconcile reads that its spec gives: its Template's, its home claims'. */
interface NamesFromSession {
  template: string;
  /** The current and the legacy name of the user's home claim, for a Session with persistentHome. */
  homeClaims?: { current: string; legacy: string };
}

/**
 * What a reconcile observes of `session` (as read with it, validated): `homeClaims`, the current
 * and the legacy name of the user's home claim, both read, given for a Session with persistentHome.
 */
export type Observe = (
  session: Session,
  homeClaims?: { current: string; legacy: string },
) => Promise<ObservedSession>;

/**
 * Sessions whose names are remembered, least recently read first out: a few hundred bytes each,
 * and a Session not remembered costs only a second read.
 */
const MAX_REMEMBERED_NAMES = 4096;

function namedRefs(namespace: string, names: NamesFromSession): StateRef[] {
  return [
    { kind: 'template', namespace, name: names.template },
    ...(names.homeClaims
      ? [
          { kind: 'pvc' as const, namespace, name: names.homeClaims.current },
          { kind: 'pvc' as const, namespace, name: names.homeClaims.legacy },
        ]
      : []),
  ];
}

function sameRefs(a: StateRef[], b: StateRef[]): boolean {
  return a.length === b.length && a.every((ref, i) => ref.kind === b[i]?.kind && ref.name === b[i]?.name);
}
