import { stringify } from 'yaml';
import { natsUsers, passwordVariable, renderNatsAuthorization } from './nats-permissions.js';

/**
 * scripts/nats-auth: prints the NATS server's side of StreamSpace's per-service users, from the
 * same permissions the services are tested with (nats-permissions.ts).
 *
 *   conf          the `authorization { users = [...] }` block for a nats-server config file;
 *                 passwords are read by nats-server from STREAMSPACE_NATS_<SERVICE>_PASSWORD
 *   helm-values   values for the official NATS Helm chart (config.merge + container.env), the
 *                 passwords taken from the Secret named by --secret (keys: the service names)
 *   --command-issuer NAME   also a user NAME allowed to publish commands under its own token
 *                           (the idle reaper accepts User commands from it with USER_COMMAND_ISSUERS)
 *   --no-activity-reporter  leave out the activity-reporter user
 */
const USAGE =
  'usage: scripts/nats-auth [conf|helm-values] [--secret NAME] [--command-issuer NAME]... [--no-activity-reporter]';

function main(args: string[]): string {
  let format = 'conf';
  let secret = 'streamspace-nats-users';
  const commandIssuers: string[] = [];
  let activityReporter = true;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === 'conf' || arg === 'helm-values') format = arg;
    else if (arg === '--secret' && args[i + 1]) secret = args[++i] as string;
    else if (arg === '--command-issuer' && args[i + 1]) commandIssuers.push(args[++i] as string);
    else if (arg === '--no-activity-reporter') activityReporter = false;
    else throw new Error(`unknown argument '${arg}'\n${USAGE}`);
  }
  const users = natsUsers({ commandIssuers, activityReporter });
  if (format === 'conf') return renderNatsAuthorization(users);
  const env: Record<string, unknown> = {};
  for (const u of users)
    env[passwordVariable(u.identity)] = { valueFrom: { secretKeyRef: { name: secret, key: u.identity } } };
  return stringify({
    config: {
      merge: {
        authorization: {
          users: users.map((u) => ({
            user: u.user,
            password: `<< $${passwordVariable(u.identity)} >>`,
            permissions: {
              publish: { allow: u.permissions.publish },
              subscribe: { allow: u.permissions.subscribe },
              ...(u.permissions.allowResponses ? { allow_responses: true } : {}),
            },
          })),
        },
      },
    },
    container: { env },
  });
}

try {
  process.stdout.write(main(process.argv.slice(2)));
} catch (error) {
  process.stderr.write(`nats-auth: ${(error as Error).message}\n`);
  process.exit(2);
}
