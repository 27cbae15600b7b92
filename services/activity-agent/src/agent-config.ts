/**
 * The activity agent's settings, from the environment the reconciler writes into its container
 * (session-children.ts). Plain parsing, no schema library: the agent runs in every desktop pod and
 * is kept to Node's built-ins.
 */
export interface AgentConfig {
  namespace: string;
  session: string;
  /** The reaper's `POST /activity` endpoint. */
  activityUrl: URL;
  tokenFile: string;
  /** The desktop's port clients connect to (the VNC endpoint, or the template's first port). */
  port: number;
  reportIntervalMs: number;
  checkIntervalMs: number;
  /** Where the socket tables are read (`tcp`, `tcp6`). */
  procNetDir: string;
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new Error(`${name}: must be a whole number from ${min} to ${max} (got '${text}')`);
  return value;
}

function required(env: NodeJS.ProcessEnv, name: string, what: string): string {
  const value = env[name]?.trim();
  if (!value) throw new Error(`${name}: must be set to ${what}`);
  return value;
}

/** Throws with every variable that is wrong, each with what it should be. */
export function agentConfigFromEnv(env: NodeJS.ProcessEnv): AgentConfig {
  const problems: string[] = [];
  const read = <T>(get: () => T): T | undefined => {
    try {
      return get();
    } catch (error) {
      problems.push((error as Error).message);
      return undefined;
    }
  };
  const namespace = read(() => required(env, 'STREAMSPACE_NAMESPACE', "the Session's namespace"));
  const session = read(() => required(env, 'STREAMSPACE_SESSION', "the Session's name"));
  const activityUrl = read(() => {
    const text = required(env, 'ACTIVITY_URL', "the idle reaper's POST /activity URL");
    const url = URL.canParse(text) ? new URL(text) : undefined;
    if (!url || !/^https?:$/.test(url.protocol) || url.username || url.password)
      throw new Error(
        `ACTIVITY_URL: must be an http(s) URL without credentials, such as http://streamspace-idle-reaper.streamspace:8083/activity`,
      );
    return url;
  });
  const tokenFile = read(() =>
    required(env, 'ACTIVITY_TOKEN_FILE', 'the file holding the session activity token'),
  );
  const port = read(() => integer(env, 'DESKTOP_PORT', Number.NaN, 1, 65535));
  if (port !== undefined && Number.isNaN(port))
    problems.push('DESKTOP_PORT: must be set to the desktop port (1-65535)');
  const reportIntervalMs = read(() => integer(env, 'REPORT_INTERVAL_MS', 30_000, 100, 3_600_000));
  const checkIntervalMs = read(() => integer(env, 'CHECK_INTERVAL_MS', 5_000, 50, 600_000));
  if (problems.length > 0) throw new Error(problems.join('; '));
  return {
    namespace: namespace as string,
    session: session as string,
    activityUrl: activityUrl as URL,
    tokenFile: tokenFile as string,
    port: port as number,
    reportIntervalMs: reportIntervalMs as number,
    checkIntervalMs: checkIntervalMs as number,
    procNetDir: env.PROC_NET_DIR?.trim() || '/proc/net',
  };
}
