import type { KubeObject } from '@streamspace/kube';

/**
 * Which Sessions use which Template, per namespace, kept in step with the Session cache so a
 * Template change can be fanned out to its Sessions without listing anything.
 */
/** The Sessions of one namespace that use one Template. */
interface TemplateUsers {
  readonly template: string;
  readonly sessions: Set<string>;
}

export class SessionIndex {
  /** namespace → template name → the Sessions using it */
  private readonly byTemplate = new Map<string, Map<string, TemplateUsers>>();
  /**
   * namespace → session → the users of the template it is indexed under. Keyed by the Session's
   * own name string, and pointing at one template name per Template: a `namespace/session` key and
   * a template name of each Session's own cost ~100 bytes a Session (BENCHMARKS.md, W5–W7).
   */
  private readonly usersOf = new Map<string, Map<string, TemplateUsers>>();
  private count = 0;

  /** Records that `session` now uses `template` (or none, when undefined). */
  set(namespace: string, session: string, template: string | undefined): void {
    const sessions = this.usersOf.get(namespace);
    const current = sessions?.get(session);
    if (current?.template === template) return;
    if (current) this.unlink(namespace, current, session);
    if (template === undefined) {
      if (current && sessions) {
        sessions.delete(session);
        this.count--;
        if (sessions.size === 0) this.usersOf.delete(namespace);
      }
      return;
    }
    let templates = this.byTemplate.get(namespace);
    if (!templates) {
      templates = new Map();
      this.byTemplate.set(namespace, templates);
    }
    let users = templates.get(template);
    if (!users) {
      users = { template, sessions: new Set() };
      templates.set(template, users);
    }
    users.sessions.add(session);
    if (sessions) sessions.set(session, users);
    else this.usersOf.set(namespace, new Map([[session, users]]));
    if (!current) this.count++;
  }

  delete(namespace: string, session: string): void {
    this.set(namespace, session, undefined);
  }

  /** The Sessions of `namespace` whose spec.template is `template`, sorted by name. */
  sessionsUsing(namespace: string, template: string): string[] {
    const users = this.byTemplate.get(namespace)?.get(template);
    return users ? [...users.sessions].sort() : [];
  }

  get size(): number {
    return this.count;
  }

  private unlink(namespace: string, users: TemplateUsers, session: string): void {
    users.sessions.delete(session);
    // Drop empty entries so a namespace full of short-lived sessions does not leak memory.
    if (users.sessions.size > 0) return;
    const templates = this.byTemplate.get(namespace);
    templates?.delete(users.template);
    if (templates?.size === 0) this.byTemplate.delete(namespace);
  }
}

/** `spec.template` of a Session, if it names one. */
export function sessionTemplateName(object: KubeObject): string | undefined {
  const spec = object.raw.spec;
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) return undefined;
  const template = (spec as Record<string, unknown>).template;
  return typeof template === 'string' && template.length > 0 ? template : undefined;
}
