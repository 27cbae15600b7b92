import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkDockerfile, servicesOfEntrypoint } from '../../scripts/lib/check-dockerfile.mjs';

/**
 * The Dockerfile cannot be built here (no Docker engine), so scripts/check-dockerfile checks
 * what would break `docker build` or make the image unsafe; these tests run it on the real
 * Dockerfile and show that it catches each kind of breakage.
 */

const repo = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = readFileSync(`${repo}/Dockerfile`, 'utf8');
const check = (text: string) => checkDockerfile({ repo, text });

describe('the Dockerfile', () => {
  it('passes the check: sources exist, base images pinned, non-root numeric USER, entrypoint built by tsc -b', () => {
    expect(check(dockerfile)).toEqual([]);
  });

  it('starts every service of the workspace, and the chart runs exactly those of the control plane', () => {
    const services = readdirSync(`${repo}/services`).filter((d) =>
      existsSync(`${repo}/services/${d}/package.json`),
    );
    expect(servicesOfEntrypoint(`${repo}/deploy/docker/entrypoint.mjs`).sort()).toEqual(services.sort());
    const helpers = readFileSync(`${repo}/deploy/helm/streamspace/templates/_helpers.tpl`, 'utf8');
    // The activity agent runs in desktop pods, started by the reconciler, not as a Deployment of the chart.
    for (const service of services.filter((s) => s !== 'activity-agent'))
      expect(helpers).toContain(`\n${service}:\n  key:`);
    expect(helpers).not.toContain('\nactivity-agent:\n  key:');
    expect(helpers).toContain('ACTIVITY_AGENT_IMAGE');
  });

  it('finds the entrypoints where tsc -b put them, once built', () => {
    const built = readdirSync(`${repo}/services`).every((d) =>
      existsSync(`${repo}/services/${d}/dist/main.js`),
    );
    // Unit tests may run before `pnpm build`; when the build has run, its output must be complete.
    expect(checkDockerfile({ repo, requireBuilt: built })).toEqual([]);
  });
});

describe('the Dockerfile check catches', () => {
  it('a COPY of a file that does not exist', () => {
    const broken = dockerfile.replace(
      'COPY services/metrics/src services/metrics/src',
      'COPY services/metrix/src services/metrics/src',
    );
    expect(check(broken).join('\n')).toMatch(/COPY source services\/metrix\/src does not exist/);
    expect(check(broken).join('\n')).toMatch(/services\/metrics\/src is never copied/);
  });

  it('a COPY of something .dockerignore leaves out of the build context', () => {
    const broken = dockerfile.replace(
      'COPY packages/shared/src packages/shared/src',
      'COPY packages/shared/dist packages/shared/dist',
    );
    expect(check(broken).join('\n')).toMatch(/packages\/shared\/dist is excluded by \.dockerignore/);
  });

  it('a base image that is not pinned', () => {
    for (const image of ['node:20-bookworm-slim', 'node:latest', 'node']) {
      const broken = dockerfile.replace(/^ARG NODE_IMAGE=.*$/m, `ARG NODE_IMAGE=${image}`);
      expect(check(broken).join('\n')).toMatch(new RegExp(`base image ${image} is not pinned`));
    }
    const digest = dockerfile.replace(/^ARG NODE_IMAGE=.*$/m, `ARG NODE_IMAGE=node@sha256:${'a'.repeat(64)}`);
    expect(check(digest)).toEqual([]);
  });

  it('an image that runs as root, or as a user Kubernetes cannot verify', () => {
    expect(check(dockerfile.replace(/^USER .*$/m, '')).join('\n')).toMatch(/sets no USER/);
    expect(check(dockerfile.replace(/^USER .*$/m, 'USER 0')).join('\n')).toMatch(/USER 0 is root/);
    expect(check(dockerfile.replace(/^USER .*$/m, 'USER node')).join('\n')).toMatch(/must be numeric/);
  });

  it('an entrypoint in shell form, or one that starts a service tsc -b does not build', () => {
    const shell = dockerfile.replace(/^ENTRYPOINT .*$/m, 'ENTRYPOINT node /app/entrypoint.mjs');
    expect(check(shell).join('\n')).toMatch(/exec \(JSON\) form/);
    const missing = dockerfile.replace(
      'COPY deploy/docker/entrypoint.mjs /out/entrypoint.mjs',
      'COPY deploy/docker/start.mjs /out/entrypoint.mjs',
    );
    expect(check(missing).join('\n')).toMatch(/deploy\/docker\/start\.mjs does not exist/);
  });
});
