import type { Context, ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { isDatabaseUnavailable } from '../db/unavailable.js';
import { errorText, type Logger } from '../logger.js';

/** The one error vocabulary: every code maps to one HTTP status. */
export const ERROR_STATUS = {
  INVALID_JSON: 400,
  VALIDATION_FAILED: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  TOO_MANY_REQUESTS: 429,
  INTERNAL: 500,
  DATABASE_UNAVAILABLE: 503,
  NOT_READY: 503,
  IMAP_UNAVAILABLE: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class AppError extends Error {
  readonly status: ContentfulStatusCode;
  /** For 429 and 503: when the client may try again (Retry-After). */
  readonly retryAfterSec?: number;
  /** Headers the answer carries (405's Allow). */
  readonly headers?: Record<string, string>;
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterSec?: number; headers?: Record<string, string> },
  ) {
    super(message, options);
    this.name = 'AppError';
    this.status = ERROR_STATUS[code];
    this.retryAfterSec = options?.retryAfterSec;
    this.headers = options?.headers;
  }
}

/**
 * The error envelope. `request_id` (the X-Request-Id the answer carries, absent on the push path) is
 * what a user quotes in a report: it finds the log line.
 */
export function errorBody(code: string, message: string, requestId?: string) {
  return { error: { code, message, ...(requestId ? { request_id: requestId } : {}) } };
}

const requestIdOf = (c: Context): string | undefined => c.get('requestId');

export function errorResponse(c: Context, err: AppError, headers?: Record<string, string>) {
  return c.json(errorBody(err.code, err.message, requestIdOf(c)), err.status, headers);
}

export function onError(logger: Logger): ErrorHandler {
  return (err, c) => {
    if (err instanceof AppError) {
      return errorResponse(c, err, { ...err.headers, ...(err.retryAfterSec ? { 'Retry-After': String(err.retryAfterSec) } : {}) });
    }
    if (err instanceof HTTPException) {
      // Hono's own refusals: an oversized body, or a JSON body its validator could not parse.
      const status = err.status as ContentfulStatusCode;
      const code = status === 413 ? 'PAYLOAD_TOO_LARGE' : status === 400 && /json/i.test(err.message) ? 'INVALID_JSON' : 'HTTP_ERROR';
      return c.json(errorBody(code, err.message, requestIdOf(c)), status);
    }
    if (isDatabaseUnavailable(err)) {
      logger.warn({ err: errorText(err), path: c.req.path, requestId: c.get('requestId') }, 'database unavailable');
      return c.json(errorBody('DATABASE_UNAVAILABLE', 'the database is not available; try again shortly', requestIdOf(c)), 503, { 'Retry-After': '5' });
    }
    // errorText, not the error object: a failed query's message carries its SQL parameters
    // (mailbox names, key ids), which must not reach the log. The stack names only our code.
    const e = err as Error;
    logger.error({ err: { type: e?.name, message: errorText(err), stack: e?.stack?.split('\n').slice(1, 6).join('\n') }, path: c.req.path, requestId: c.get('requestId') }, 'unhandled error');
    return c.json(errorBody('INTERNAL', 'internal error', requestIdOf(c)), 500);
  };
}

export const notFound: NotFoundHandler = (c) =>
  c.json(errorBody('NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`, requestIdOf(c)), 404);

/** Races `work` against a deadline, so a hung dependency becomes an AppError instead of a hang. */
export async function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => AppError): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
