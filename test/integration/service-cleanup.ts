import { afterAll } from 'vitest';
import { ServiceProcess } from './harness.js';

/**
 * Run before every integration file (vitest setupFiles): once the file is done, no service it
 * started keeps running into the next file, whatever its tests forgot to stop. Said on stderr so
 * the file can be fixed.
 */
afterAll(async () => {
  const left = await ServiceProcess.stopLeftovers();
  if (left.length > 0)
    process.stderr.write(`service-cleanup: stopped services this file left running: ${left.join(', ')}\n`);
});
