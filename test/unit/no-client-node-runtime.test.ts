import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * @kubernetes/client-node is for types only: importing it at run time costs ~70 MB of resident
 * memory (its whole generated API surface loads), which alone breaks the 100 MB per-service
 * budget (packages/kube/src/kube-client.ts says more). Type imports vanish when TypeScript
 * compiles; anything left in the built JavaScript is a real import.
 */
const repo = join(import.meta.dirname, '..', '..');

function runtimeImports(source: string): string[] {
  const pattern =
    /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"](@kubernetes\/client-node(?:\/[^'"]*)?)['"]/gm;
  return [...source.matchAll(pattern)].map((m) => m[0].trim());
}

function builtFiles(): string[] {
  const files: string[] = [];
  for (const group of ['packages', 'services']) {
    for (const pkg of readdirSync(join(repo, group))) {
      const dist = join(repo, group, pkg, 'dist');
      if (!existsSync(dist)) continue;
      for (const file of readdirSync(dist, { recursive: true, encoding: 'utf8' }))
        if (/\.(m|c)?js$/.test(file)) files.push(join(dist, file));
    }
  }
  return files;
}

describe('@kubernetes/client-node stays out of the running services', () => {
  it('recognises a run-time import in every form, and not a comment about one', () => {
    expect(runtimeImports("import * as k8s from '@kubernetes/client-node';")).toHaveLength(1);
    expect(runtimeImports('import { KubeConfig } from "@kubernetes/client-node";')).toHaveLength(1);
    expect(runtimeImports("const k = await import('@kubernetes/client-node');")).toHaveLength(1);
    expect(runtimeImports("const k = require('@kubernetes/client-node/dist/gen');")).toHaveLength(1);
    expect(runtimeImports("import '@kubernetes/client-node';")).toHaveLength(1);
    expect(runtimeImports('// we use @kubernetes/client-node for types only')).toEqual([]);
  });

  it('is imported by no built file of any package or service', () => {
    const files = builtFiles();
    // Without a build there is nothing to check: `pnpm test` builds first (typecheck runs tsc -b).
    expect(
      files.length,
      'no built files under packages/*/dist or services/*/dist: run pnpm build',
    ).toBeGreaterThan(0);
    const offenders = files.flatMap((file) =>
      runtimeImports(readFileSync(file, 'utf8')).map((line) => `${file.slice(repo.length + 1)}: ${line}`),
    );
    expect(offenders).toEqual([]);
  });
});
