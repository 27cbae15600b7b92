import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

const repo = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Starts (or reuses) the real local control plane and NATS once for all integration files, and
 * hands their coordinates to the tests through the environment. It is left running afterwards:
 * the next run reuses it in seconds, and `STREAMSPACE_PROFILE=test scripts/cluster down` removes it.
 *
 * The tests run on a cluster of their own (the `test` profile of scripts/cluster), never on the
 * quick start's: its services would reconcile the tests' Sessions too. Benchmarks name theirs
 * with STREAMSPACE_STATE and STREAMSPACE_NATS_PORT.
 */
export default function setup(project: TestProject): void {
  process.env.STREAMSPACE_PROFILE ??= 'test';
  execFileSync(`${repo}/scripts/cluster`, ['up'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exports = execFileSync(`${repo}/scripts/cluster`, ['env'], { encoding: 'utf8' });
  for (const line of exports.split('\n')) {
    const match = /^export (\w+)='([^']*)'(?:"\$PATH")?/.exec(line);
    if (!match) continue;
    const [, key, value] = match as unknown as [string, string, string];
    process.env[key] = key === 'PATH' ? `${value}${process.env.PATH ?? ''}` : value;
  }
  project.provide('kubeconfig', process.env.KUBECONFIG ?? '');
  project.provide('natsUrl', process.env.NATS_URL ?? '');
}

declare module 'vitest' {
  export interface ProvidedContext {
    kubeconfig: string;
    natsUrl: string;
  }
}
