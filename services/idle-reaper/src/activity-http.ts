import type { IncomingMessage, ServerResponse } from 'node:http';
import { activityReportSchema, type ExtraRoute, type Logger } from '@streamspace/shared';
import type { ActivityIntake } from './activity-intake.js';
import type { TokenSource } from './bearer-token.js';
import type { ReaperMetrics } from './reaper-metrics.js';

const MAX_BODY_BYTES = 16 * 1024;

function send(
  res: ServerResponse,
  status: number,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): true {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(`${JSON.stringify(body)}\n`);
  return true;
}

class BodyTooLarge extends Error {}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new BodyTooLarge(`the body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const STATUS_OF_RESULT: Record<string, number> = {
  accepted: 202,
  clamped_future: 202,
  stale: 202,
  unknown_session: 404,
  failed: 503,
};

/**
 * `POST /activity` for clients that cannot speak NATS: a JSON activity report, authenticated by
 * `Authorization: Bearer <token>`. Without a valid token: 401 and nothing is read or recorded.
 */
export function activityRoute(options: {
  intake: ActivityIntake;
  tokens: TokenSource;
  enabled: boolean;
  metrics: ReaperMetrics;
  log: Logger;
}): ExtraRoute {
  const { intake, tokens, enabled, metrics, log } = options;
  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/activity') return false;
    if (!enabled) {
      return send(res, 404, {
        error:
          'activity over HTTP is disabled: configure ACTIVITY_TOKEN or ACTIVITY_TOKEN_FILE to enable POST /activity',
      });
    }
    if (req.method !== 'POST')
      return send(res, 405, { error: 'use POST with a JSON activity report' }, { allow: 'POST' });
    if (!(await tokens.verify(req.headers.authorization))) {
      metrics.unauthorizedRequests.inc();
      metrics.activityReports.labels('http', 'unauthorized').inc();
      log.warn({ remote: req.socket.remoteAddress }, 'activity report without a valid bearer token rejected');
      req.resume();
      return send(
        res,
        401,
        { error: 'a valid bearer token is required: Authorization: Bearer <token>' },
        { 'www-authenticate': 'Bearer realm="streamspace-activity"' },
      );
    }
    let text: string;
    try {
      text = await readBody(req);
    } catch (error) {
      if (error instanceof BodyTooLarge) {
        intake.malformed('http', error.message);
        return send(res, 413, { error: error.message });
      }
      throw error;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      const message = `the body is not JSON: ${(error as Error).message}`;
      intake.malformed('http', message);
      return send(res, 400, { error: message });
    }
    const parsed = activityReportSchema.safeParse(raw);
    if (!parsed.success) {
      const message = parsed.error.issues
        .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
        .join('; ');
      intake.malformed('http', message);
      return send(res, 400, {
        error: `not an activity report: ${message}`,
        expected: '{"namespace": "...", "session": "...", "at"?: RFC 3339 time, "source"?: "..."}',
      });
    }
    const outcome = await intake.accept(parsed.data, 'http');
    return send(res, STATUS_OF_RESULT[outcome.result] ?? 500, {
      result: outcome.result,
      ...(outcome.at !== undefined ? { at: new Date(outcome.at).toISOString() } : {}),
      ...(outcome.error ? { error: outcome.error } : {}),
    });
  };
}
