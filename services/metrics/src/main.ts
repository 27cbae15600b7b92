import { runService } from '@streamspace/shared';
import { metricsConfigSchema } from './metrics-config.js';
import { startMetrics } from './metrics-service.js';

try {
  await runService({
    name: 'metrics',
    defaultPort: 8084,
    configSchema: metricsConfigSchema,
    start: startMetrics,
  });
} catch (error) {
  // Only a fault that retrying cannot fix gets here (a setting that cannot work, for one).
  process.stderr.write(`metrics: cannot start: ${(error as Error).message}\n`);
  process.exit(1);
}
