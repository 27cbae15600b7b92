import fc from 'fast-check';
import { parseKubeObject } from '@streamspace/kube';
import { describe, expect, it } from 'vitest';
import { SessionIndex, sessionTemplateName } from './session-index.js';

const session = (spec: unknown) => ({
  metadata: { namespace: 'team-a', name: 's1', uid: 'u1', resourceVersion: '7' },
  spec,
});

describe('SessionIndex', () => {
  it('finds the sessions of a namespace that use a template', () => {
    const index = new SessionIndex();
    index.set('a', 's2', 'firefox');
    index.set('a', 's1', 'firefox');
    index.set('a', 's3', 'gimp');
    index.set('b', 's4', 'firefox');
    expect(index.sessionsUsing('a', 'firefox')).toEqual(['s1', 's2']);
    expect(index.sessionsUsing('b', 'firefox')).toEqual(['s4']);
    expect(index.sessionsUsing('a', 'vscode')).toEqual([]);
    expect(index.sessionsUsing('c', 'firefox')).toEqual([]);
  });

  it('moves a session when its template changes, and forgets it when deleted or template-less', () => {
    const index = new SessionIndex();
    index.set('a', 's1', 'firefox');
    index.set('a', 's1', 'gimp');
    expect(index.sessionsUsing('a', 'firefox')).toEqual([]);
    expect(index.sessionsUsing('a', 'gimp')).toEqual(['s1']);
    index.set('a', 's1', undefined);
    expect(index.sessionsUsing('a', 'gimp')).toEqual([]);
    index.set('a', 's2', 'gimp');
    index.delete('a', 's2');
    index.delete('a', 'never-seen');
    expect(index.size).toBe(0);
  });

  it('agrees with a naive scan after any sequence of updates', () => {
    const op = fc.record({
      namespace: fc.constantFrom('a', 'b'),
      session: fc.constantFrom('s1', 's2', 's3'),
      template: fc.option(fc.constantFrom('t1', 't2'), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const index = new SessionIndex();
        const truth = new Map<string, string | undefined>();
        for (const { namespace, session, template } of ops) {
          index.set(namespace, session, template);
          truth.set(`${namespace}/${session}`, template);
        }
        for (const namespace of ['a', 'b']) {
          for (const template of ['t1', 't2']) {
            const expected = [...truth]
              .filter(([key, t]) => key.startsWith(`${namespace}/`) && t === template)
              .map(([key]) => key.slice(namespace.length + 1))
              .sort();
            expect(index.sessionsUsing(namespace, template)).toEqual(expected);
          }
        }
        expect(index.size).toBe([...truth.values()].filter((t) => t !== undefined).length);
      }),
    );
  });
});

describe('sessionTemplateName', () => {
  it('reads spec.template, or nothing', () => {
    const parse = (raw: unknown) => {
      const parsed = parseKubeObject(raw);
      if (!parsed.ok) throw new Error(parsed.reason);
      return parsed.object;
    };
    expect(sessionTemplateName(parse(session({ template: 'firefox' })))).toBe('firefox');
    expect(sessionTemplateName(parse(session({})))).toBeUndefined();
    expect(sessionTemplateName(parse(session({ template: 5 })))).toBeUndefined();
    expect(sessionTemplateName(parse(session(undefined)))).toBeUndefined();
  });
});
