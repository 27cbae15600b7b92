import type { KubeObject } from '@streamspace/kube';

/**
 * Which Sessions use which Template, per namespace, kept in step with the Session cache so a
 * Template change can be fanned out to its Sessions without listing anything.
 */
export class SessionIndex {
  /** namespace → template name → session names */
  private readonly byTemplate = new Map<string, Map<string, Set<string>>>();
  /** namespace/session → template name it is indexed under */
  private readonly templateOf = new Map<string, string>();

  /** Records that `session` now uses `template` (or none, when undefined). */
  set(namespace: string, session: string, template: string | undefined): void {
    const key = `${namespace}/${session}`;
    const current = this.templateOf.get(key);
    if (current === template) return;
    if (current !== undefined) this.unlink(namespace, current, session);
    if (template === undefined) {
      this.templateOf.delete(key);
      return;
    }
    this.templateOf.set(key, template);
    let templates = this.byTemplate.get(namespace);
    if (!templates) {
      templates = new Map();
      this.byTemplate.set(namespace, templates);
    }
    let sessions = templates.get(template);
    if (!sessions) {
      sessions = new Set();
      templates.set(template, sessions);
    }
    sessions.add(session);
  }

  delete(namespace: string, session: string): void {
    this.set(namespace, session, undefined);
  }

  /** The Sessions of `namespace` whose spec.template is `template`, sorted by name. */
  sessionsUsing(namespace: string, template: string): string[] {
    const sessions = this.byTemplate.get(namespace)?.get(template);
    return sessions ? [...sessions].sort() : [];
  }

  get size(): number {
    return this.templateOf.size;
  }

  private unlink(namespace: string, template: string, session: string): void {
    const templates = this.byTemplate.get(namespace);
    const sessions = templates?.get(template);
    if (!templates || !sessions) return;
    sessions.delete(session);
    // Drop empty entries so a namespace full of short-lived sessions does not leak memory.
    if (sessions.size === 0) templates.delete(template);
    if (templates.size === 0) this.byTemplate.delete(namespace);
  }
}

/** `spec.template` of a Session, if it names one. */
export function sessionTemplateName(object: KubeObject): string | undefined {
  const spec = object.raw.spec;
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) return undefined;
  const template = (spec as Record<string, unknown>).template;
  return typeof template === 'string' && template.length > 0 ? template : undefined;
}
