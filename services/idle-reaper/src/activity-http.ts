import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  activityReportSchema,
  type ExtraRoute,
  isoTime,
  isSessionActivityToken,
  type Logger,
  SESSION_TOKEN_PREFIX,
} from '@streamspace/shared';
import type { ActivityIntake } from './activity-intake.js';
import { bearerToken, type TokenSource } from './bearer-token.js';
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

function unauthorized(res: ServerResponse, error: string): true {
  return send(res, 401, { error }, { 'www-authenticate': 'Bearer realm="streamspace-activity"' });
}

/**
 * `POST /activity` for clients that cannot speak NATS: a JSON activity report, authenticated by
 * `Authorization: Bearer <token>`, either
 * - the platform's shared token (`tokens`, for trusted components such as an API in front of
 *   browsers): any session; or
 * - a session's own token (session-activity-token.ts, what the activity agent in a desktop pod
 *   holds): only for the Session of that namespace, name and uid, as the reaper knows it now.
 * Without a valid token: 401, counted, nothing recorded (and with no token of either form,
 * nothing read).
 */
export function activityRoute(options: {
  intake: ActivityIntake;
  tokens: TokenSource;
  /** The key of per-session tokens (a mounted Secret), when configured. */
  sessionKey?: TokenSource;
  /** The uid of the Session the reaper knows by that namespace and name. */
  sessionUid?: (namespace: string, name: string) => string | undefined;
  enabled: boolean;
  metrics: ReaperMetrics;
  log: Logger;
}): ExtraRoute {
  const { intake, tokens, sessionKey, sessionUid, enabled, metrics, log } = options;
  const refuse = (req: IncomingMessage, detail: Record<string, unknown>) => {
    metrics.unauthorizedRequests.inc();
    metrics.activityReports.labels('http', 'unauthorized').inc();
    log.warn(
      { remote: req.socket.remoteAddress, ...detail },
      'activity report without a valid bearer token rejected',
    );
  };
  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/activity') return false;
    if (!enabled) {
      return send(res, 404, {
        error:
          'activity over HTTP is disabled: configure ACTIVITY_TOKEN, ACTIVITY_TOKEN_FILE or ACTIVITY_SESSION_KEY_FILE to enable POST /activity',
      });
    }
    if (req.method !== 'POST')
      return send(res, 405, { error: 'use POST with a JSON activity report' }, { allow: 'POST' });
    const presented = bearerToken(req.headers.authorization);
    const platformToken = tokens.configured && (await tokens.verify(req.headers.authorization));
    const sessionToken =
      !platformToken &&
      sessionKey?.configured === true &&
      presented?.startsWith(SESSION_TOKEN_PREFIX) === true;
    if (!platformToken && !sessionToken) {
      refuse(req, {});
      req.resume();
      return unauthorized(res, 'a valid bearer token is required: Authorization: Bearer <token>');
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
    if (sessionToken) {
      // Whose token it is can only be checked against the session the report names.
      const { namespace, session } = parsed.data;
      const key = await sessionKey?.current();
      const uid = sessionUid?.(namespace, session);
      if (!key || !uid || !isSessionActivityToken(presented as string, key, namespace, session, uid)) {
        refuse(req, { namespace, session, reason: uid ? "not this session's token" : 'session not known' });
        return unauthorized(
          res,
          `the token is not the activity token of Session ${namespace}/${session}: an agent reports only for the session whose pod it runs in (tokens of a deleted session are not valid for a new one of the same name)`,
        );
      }
    }
    const outcome = await intake.accept(parsed.data, 'http');
    return send(res, STATUS_OF_RESULT[outcome.result] ?? 500, {
      result: outcome.result,
      ...(outcome.at !== undefined ? { at: isoTime(outcome.at) } : {}),
      ...(outcome.error ? { error: outcome.error } : {}),
    });
  };
}
