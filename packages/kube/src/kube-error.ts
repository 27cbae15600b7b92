/**
 * The one error type for an API server's refusal. Every caller asks it the same questions
 * (not found? conflict? gone? throttled?) instead of comparing status codes of its own.
 */
export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    message: string,
    /** HTTP status: 404 not found, 409 conflict, 410 gone (relist), 422 invalid, 429 throttled, … */
    readonly code: number,
    /** The Status object's reason (NotFound, AlreadyExists, Expired, …), when the server sent one. */
    readonly reason?: string,
    readonly body?: unknown,
    /** Seconds the server asked us to wait (Retry-After), when it did. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/**
 * A Kubernetes Status object (`{kind: 'Status', code, reason, message}`, what a watch's ERROR
 * event carries) as the one error type, so that it is asked the same questions (isGone) as a
 * refused request instead of having its `code` compared by hand. `context` opens the message.
 */
export function statusError(status: unknown, context: string): KubeApiError {
  const fields = (status && typeof status === 'object' ? status : {}) as {
    code?: unknown;
    reason?: unknown;
    message?: unknown;
  };
  // A Status without a usable code is still a failure, and one worth retrying: say 500.
  const code = typeof fields.code === 'number' && Number.isInteger(fields.code) ? fields.code : 500;
  const reason = typeof fields.reason === 'string' && fields.reason ? fields.reason : undefined;
  const message = typeof fields.message === 'string' && fields.message ? `: ${fields.message}` : '';
  return new KubeApiError(`${context}: ${code}${reason ? ` ${reason}` : ''}${message}`, code, reason, status);
}

/** The HTTP status of an API server error; undefined for anything else (a socket error, a bug). */
export function statusCode(error: unknown): number | undefined {
  return error instanceof KubeApiError ? error.code : undefined;
}

export const isNotFound = (error: unknown): boolean => statusCode(error) === 404;
export const isConflict = (error: unknown): boolean => statusCode(error) === 409;
/** 410: the resourceVersion asked for is older than etcd keeps; only a new list can catch up. */
export const isGone = (error: unknown): boolean => statusCode(error) === 410;
export const isTooManyRequests = (error: unknown): boolean => statusCode(error) === 429;

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
