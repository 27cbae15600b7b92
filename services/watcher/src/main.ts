import { runService } from '@streamspace/shared';
import { watcherConfigSchema } from './watcher-config.js';
import { startWatcher } from './watcher-service.js';

await runService({
  name: 'watcher',
  defaultPort: 8081,
  configSchema: watcherConfigSchema,
  start: startWatcher,
});
