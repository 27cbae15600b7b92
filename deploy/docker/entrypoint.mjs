// The image's entrypoint: starts the service named by the first argument, e.g. `reconciler`
// (see the Dockerfile for why all services share one image).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// activity-agent runs beside each desktop, in its pod (docs/idle-reaper.md), not in the control plane.
const SERVICES = ['watcher', 'reconciler', 'idle-reaper', 'metrics', 'activity-agent'];
const name = process.argv[2];

if (!name || name === '--help' || name === '-h') {
  process.stdout.write(`usage: <image> <service>\nservices: ${SERVICES.join(', ')}\n`);
  process.exit(name ? 0 : 2);
}
if (!SERVICES.includes(name)) {
  process.stderr.write(`unknown service '${name}'; expected one of: ${SERVICES.join(', ')}\n`);
  process.exit(2);
}
const main = fileURLToPath(new URL(`./services/${name}/dist/main.js`, import.meta.url));
if (!existsSync(main)) {
  process.stderr.write(`${main} is missing: the image was built without it\n`);
  process.exit(1);
}
// The service reads its settings from the environment only; argv is left as the service expects.
process.argv.splice(2, 1);
await import(main);
