import { readFile } from 'node:fs/promises';
import type { IncomingMessage, RequestOptions } from 'node:http';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { type AgentConfig, agentConfigFromEnv } from './agent-config.js';
import { agentLog } from './agent-log.js';
import { ReportSchedule } from './report-schedule.js';
import { countConnections, isSocketTable } from './tcp-connections.js';

/**
 * The activity agent: a container beside the desktop in its pod. It reports to the idle reaper
 * while a client is connected to the desktop's port (docs/idle-reaper.md, "The activity agent").
 * Node's built-ins only, one timer, one request at a time: it runs in every desktop pod.
 *
 * It never exits on a fault (a crash-looping container would keep the desktop's pod from being
 * Ready): a configuration it cannot use is logged and the agent then stays idle.
 */

const log = agentLog('activity-agent', (process.env.LOG_LEVEL as 'info') ?? 'info', (line) =>
  process.stdout.write(line),
);
const REQUEST_TIMEOUT_MS = 10_000;
const SOCKET_TABLES = ['tcp', 'tcp6'];

let stopped = false;
let timer: NodeJS.Timeout | undefined;
const stop = () => {
  stopped = true;
  if (timer) clearTimeout(timer);
  log('info', 'activity agent stopping');
  // Nothing to hand over: the reaper keeps the last report, and a new agent starts from scratch.
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

/** Problems already logged, so a lasting fault is said once (and again once it clears and recurs). */
const said = new Set<string>();
function sayOnce(key: string, level: 'warn' | 'error', msg: string, fields: Record<string, unknown>): void {
  if (said.has(key)) return;
  said.add(key);
  log(level, msg, fields);
}
function cleared(key: string, msg?: string): void {
  if (said.delete(key) && msg) log('info', msg);
}

/** Clients connected to the port now, from both socket tables; undefined when neither could be read. */
async function connectedClients(config: AgentConfig): Promise<number | undefined> {
  let total = 0;
  let readable = 0;
  for (const name of SOCKET_TABLES) {
    const file = join(config.procNetDir, name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      // No tcp6 table where IPv6 is off: nothing to count there.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && name === 'tcp6') continue;
      sayOnce(`read:${file}`, 'warn', 'cannot read a socket table; connections in it are not seen', {
        file,
        err: (error as Error).message,
      });
      continue;
    }
    cleared(`read:${file}`, `${file} is readable again`);
    if (!isSocketTable(text)) {
      // Not what the kernel writes there: count nothing from it rather than guess (no false activity).
      sayOnce(`format:${file}`, 'warn', 'a socket table is not in the format of /proc/net/tcp; ignored', {
        file,
        start: text.slice(0, 80),
      });
      continue;
    }
    cleared(`format:${file}`);
    const { connected, unparsed } = countConnections(text, config.port);
    if (unparsed > 0)
      sayOnce(`lines:${file}`, 'warn', 'lines of a socket table could not be read; they are not counted', {
        file,
        unparsed,
      });
    else cleared(`lines:${file}`);
    total += connected;
    readable++;
  }
  return readable > 0 ? total : undefined;
}

async function readToken(file: string): Promise<string | undefined> {
  try {
    const token = (await readFile(file, 'utf8')).trim();
    if (token) {
      cleared('token', 'the activity token is readable');
      return token;
    }
    sayOnce('token', 'warn', 'the activity token file is empty; not reporting until it is filled', { file });
  } catch (error) {
    sayOnce(
      'token',
      'warn',
      'cannot read the activity token (its Secret is not mounted yet?); not reporting until it can',
      {
        file,
        err: (error as Error).message,
      },
    );
  }
  return undefined;
}

/** POST /activity; resolves with the status (0 when no answer came). */
function post(config: AgentConfig, token: string, at: number): Promise<{ status: number; error?: string }> {
  const body = JSON.stringify({
    namespace: config.namespace,
    session: config.session,
    at: new Date(at).toISOString(),
    source: 'activity-agent',
  });
  const options: RequestOptions = {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    },
    timeout: REQUEST_TIMEOUT_MS,
  };
  return new Promise((resolve) => {
    const done = (result: { status: number; error?: string }) => resolve(result);
    const onResponse = (res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (text.length < 1024) text += chunk;
      });
      res.on('end', () =>
        done({ status: res.statusCode ?? 0, ...(res.statusCode === 202 ? {} : { error: text.trim() }) }),
      );
      res.on('error', (error) => done({ status: 0, error: error.message }));
    };
    const start = async () => {
      // TLS is loaded only for an https URL.
      const request =
        config.activityUrl.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
      const req = request(config.activityUrl, options, onResponse);
      req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', (error) => done({ status: 0, error: error.message }));
      req.end(body);
    };
    void start();
  });
}

async function run(config: AgentConfig): Promise<void> {
  const schedule = new ReportSchedule({
    intervalMs: config.reportIntervalMs,
    minBackoffMs: Math.min(1_000, config.reportIntervalMs),
  });
  let wasConnected: boolean | undefined;
  log('info', 'activity agent reporting while a client is connected to the desktop port', {
    namespace: config.namespace,
    session: config.session,
    port: config.port,
    reaper: `${config.activityUrl.origin}${config.activityUrl.pathname}`,
    reportIntervalMs: config.reportIntervalMs,
  });
  const tick = async () => {
    const clients = await connectedClients(config);
    const connected = (clients ?? 0) > 0;
    if (connected !== wasConnected)
      log('info', connected ? 'a client is connected' : 'no client is connected', { clients: clients ?? 0 });
    wasConnected = connected;
    const at = schedule.sample(Date.now(), connected);
    if (at === undefined) return;
    const token = await readToken(config.tokenFile);
    const result = token ? await post(config, token, at) : { status: 0, error: 'no token' };
    if (result.status === 202) {
      schedule.succeeded(at);
      cleared('report', 'reports reach the idle reaper again');
      log('debug', 'activity reported', { at: new Date(at).toISOString() });
      return;
    }
    const retryInMs = Math.round(schedule.failed(Date.now()));
    const hint =
      result.status === 401
        ? 'the reaper refused the token: is this the Secret of this very Session, and does the reaper hold the same key as the reconciler?'
        : result.status === 404
          ? 'the reaper does not serve POST /activity (no key or token configured) or does not know this Session yet'
          : result.status === 0
            ? 'the reaper is unreachable'
            : 'the reaper could not take the report';
    sayOnce('report', 'warn', `activity report not accepted: ${hint}; retrying with backoff`, {
      status: result.status,
      err: result.error,
      retryInMs,
    });
  };
  const loop = async () => {
    try {
      await tick();
    } catch (error) {
      sayOnce('tick', 'error', 'unexpected fault in the activity agent; carrying on', {
        err: (error as Error).message,
      });
    }
    if (!stopped) timer = setTimeout(loop, config.checkIntervalMs);
  };
  await loop();
}

let config: AgentConfig | undefined;
try {
  config = agentConfigFromEnv(process.env);
} catch (error) {
  log('error', `the activity agent is misconfigured and reports nothing: ${(error as Error).message}`);
  // Stay up, idle: exiting would crash-loop the container and keep the desktop's pod from being Ready.
  timer = setInterval(() => undefined, 2 ** 31 - 1) as unknown as NodeJS.Timeout;
}
if (config) await run(config);
