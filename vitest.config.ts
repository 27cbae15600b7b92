import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const shared = fileURLToPath(new URL('./packages/shared/src/index.ts', import.meta.url));
const kube = fileURLToPath(new URL('./packages/kube/src/index.ts', import.meta.url));

export default defineConfig({
  resolve: { alias: { '@streamspace/shared': shared, '@streamspace/kube': kube } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'test/unit/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          setupFiles: ['test/integration/service-cleanup.ts'],
          // One real control plane and one NATS serve every file; files share them, so they run
          // one at a time and each uses its own namespace.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 600_000,
        },
      },
      {
        // Long scale runs, started on purpose (pnpm bench); never part of the default test run.
        extends: true,
        test: {
          name: 'bench',
          include: ['bench/**/*.bench-run.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 3_600_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
