import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { ApiEnv } from './api-auth.js';
import { AppError } from './errors.js';
import { describeIssues } from './params.js';

/** An OpenAPIHono whose request validation fails with our error envelope (400 naming each field). */
export function openApiApp() {
  return new OpenAPIHono<ApiEnv>({
    defaultHook: (result) => {
      if (!result.success) throw new AppError('VALIDATION_FAILED', describeIssues(result.error));
    },
  });
}

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'VALIDATION_FAILED' }),
      message: z.string(),
      request_id: z.string().optional().openapi({ description: 'The X-Request-Id of the answer: quote it in a report, it finds the log line' }),
    }),
  })
  .openapi('Error');

const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: errorSchema } } });

/** The error responses every authenticated /api/v1 route can give. */
export const API_ERRORS = {
  400: errorResponse('A parameter is missing or invalid; the message names it'),
  401: errorResponse('No API key, or an unknown or revoked one'),
  403: errorResponse('A mailbox key used for another mailbox, or for an admin-only operation'),
  429: errorResponse('Too many failed key attempts from this address (AUTH_MAX_FAILURES per minute); see Retry-After'),
} as const;

export const NOT_FOUND = { 404: errorResponse('mailsight has no record of it') } as const;
export const UNAVAILABLE = { 503: errorResponse('A dependency (database, IMAP) is unavailable; try again') } as const;

export const API_SECURITY = [{ ApiKey: [] }];

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});
