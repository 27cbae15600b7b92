import { describe, expect, it } from 'vitest';
import type { StoredTemplate } from './stored-objects.js';
import { templateProblems } from './template-validation.js';

function template(resourceVersion: string | undefined, baseImage: string): StoredTemplate {
  return {
    apiVersion: 'stream.streamspace.io/v1alpha1',
    kind: 'Template',
    metadata: {
      name: 'firefox',
      namespace: 'team',
      uid: 'template-uid',
      ...(resourceVersion ? { resourceVersion } : {}),
    },
    spec: {
      displayName: 'Firefox',
      baseImage,
      ports: [{ name: 'http', containerPort: 3000, protocol: 'TCP' }],
      vnc: { enabled: true, port: 3000, protocol: 'websocket', encryption: false },
    },
  } as StoredTemplate;
}

describe('templateProblems', () => {
  it('judges each version of a Template by its own content, though verdicts are kept', () => {
    expect(templateProblems(template('1', 'lscr.io/linuxserver/firefox:latest'))).toEqual([]);
    // The same Template edited into an invalid one: a new resourceVersion, a new verdict.
    const edited = templateProblems(template('2', 'not an image'));
    expect(edited).toHaveLength(1);
    expect(edited[0]).toMatch(/^spec\.baseImage: /);
    // Asking again for either version gives the same answers.
    expect(templateProblems(template('1', 'lscr.io/linuxserver/firefox:latest'))).toEqual([]);
    expect(templateProblems(template('2', 'not an image'))).toEqual(edited);
  });

  it('checks a Template without a resourceVersion every time', () => {
    expect(templateProblems(template(undefined, 'lscr.io/linuxserver/firefox:latest'))).toEqual([]);
    expect(templateProblems(template(undefined, 'not an image'))).toHaveLength(1);
  });

  it('adds the capabilities beyond the allow-list to a kept verdict', () => {
    const withCapability = { ...template('3', 'lscr.io/linuxserver/firefox:latest') };
    withCapability.spec = { ...withCapability.spec, capabilities: ['SYS_ADMIN'] } as StoredTemplate['spec'];
    expect(templateProblems(withCapability, ['SYS_ADMIN'])).toEqual([]);
    expect(templateProblems(withCapability, [])).toEqual([expect.stringMatching(/SYS_ADMIN is not allowed/)]);
  });
});
