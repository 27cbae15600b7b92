import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * scripts/images on a machine with neither container engine (and no apt-get to install podman
 * with): it must say so, and what to install, rather than fail obscurely or build nothing quietly.
 * The machine is simulated with a PATH that holds only the few tools the script needs to get there.
 */

const repo = fileURLToPath(new URL('../..', import.meta.url));
const bare = mkdtempSync(join(tmpdir(), 'streamspace-bare-path-'));
// bash (the script's interpreter), dirname and sed (which it uses before choosing an engine), from this machine's PATH.
for (const tool of ['bash', 'dirname', 'sed']) {
  const dir = (process.env.PATH ?? '').split(':').find((d) => d && existsSync(join(d, tool)));
  if (!dir) throw new Error(`${tool} is not on PATH`);
  symlinkSync(join(dir, tool), join(bare, tool));
}
afterAll(() => rmSync(bare, { recursive: true, force: true }));

function images(env: Record<string, string>) {
  const { status, stderr } = spawnSync(`${repo}/scripts/images`, ['engine'], {
    env: { HOME: tmpdir(), PATH: bare, ...env },
    encoding: 'utf8',
  });
  return { status, stderr };
}

describe('scripts/images without a container engine', () => {
  it('says that neither Docker nor podman is there, and what to install', () => {
    const { status, stderr } = images({});
    expect(status).toBe(1);
    expect(stderr).toMatch(/no container engine: no Docker engine answers/);
    expect(stderr).toMatch(/apt-get install podman runc debootstrap/);
    expect(stderr).toMatch(/docs\.docker\.com\/engine\/install/);
  });

  it('says when the engine asked for is not there, or is not one it knows', () => {
    expect(images({ IMAGES_ENGINE: 'docker' }).stderr).toMatch(
      /IMAGES_ENGINE=docker, but no Docker engine answers/,
    );
    expect(images({ IMAGES_ENGINE: 'rkt' }).stderr).toMatch(
      /IMAGES_ENGINE must be docker or podman \(got 'rkt'\)/,
    );
  });
});
