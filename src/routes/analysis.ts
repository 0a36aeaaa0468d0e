import { createRoute, z } from '@hono/zod-openapi';
import { getMessage, listAnalyses } from '../queries/analyses.js';
import { requestAnalysis } from '../queries/request-analysis.js';
import { analyzeResultSchema, messageSchema, pageSchema } from '../queries/schemas.js';
import { CATEGORIES, VERDICTS } from '../analysis/result.js';
import { actor, assertMailboxAccess } from '../http/api-auth.js';
import { AppError } from '../http/errors.js';
import { API_ERRORS, API_SECURITY, NOT_FOUND, UNAVAILABLE, json, openApiApp } from '../http/openapi.js';
import * as p from '../http/params.js';
import type { ApiDeps } from './deps.js';

export const MAX_PAGE_SIZE = 200;
const validation = (message: string) => new AppError('VALIDATION_FAILED', message);
const DEFAULT_PAGE_SIZE = 50;

const analysisQuery = z
  .object({
    mailbox: p.mailbox,
    email_id: p.uid.optional(),
    folder: p.folder.optional(),
    uidvalidity: p.uid.optional().openapi({ description: 'With email_id: this UIDVALIDITY instead of the newest seen' }),
    category: z.enum(CATEGORIES).optional(),
    verdict: z.enum(VERDICTS).optional(),
    is_phishing: p.queryBool.optional(),
    min_priority: z
      .string()
      .regex(/^([1-9]|10)$/, 'must be a whole number from 1 to 10')
      .transform(Number)
      .optional()
      .openapi({ type: 'integer', minimum: 1, maximum: 10 }),
    sensitive: p.queryBool.optional().openapi({ description: 'true: only messages with sensitive data; false: only without' }),
    since: p.instant.optional().openapi({ description: 'Analysed at or after' }),
    until: p.instant.optional().openapi({ description: 'Analysed at or before' }),
    limit: z
      .string()
      .regex(/^\d{1,4}$/, 'must be a whole number')
      .transform(Number)
      .pipe(z.number().min(1, 'must be at least 1').max(MAX_PAGE_SIZE, `must be at most ${MAX_PAGE_SIZE}`))
      .optional()
      .openapi({ type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE }),
    cursor: z.string().max(100, 'is not a cursor this API returned').optional(),
  })
  .strict();

/** Parameters that only make sense for one of the two forms of the GET. */
const LIST_ONLY = ['category', 'verdict', 'is_phishing', 'min_priority', 'sensitive', 'since', 'until', 'limit', 'cursor'] as const;

const getAnalysis = createRoute({
  method: 'get',
  path: '/get/llm/analysis',
  summary: "One message's analysis (with email_id), or a page of a mailbox's analyses, newest first",
  description:
    'With `email_id`: the message\'s state (queued, processing, analyzed, skipped, failed, dead, gone, stale), its analysis if any, its queue entry and audit trail; ' +
    '`folder` defaults to INBOX and the newest UIDVALIDITY seen for it is used. Without: a page of analyses, filtered, with a keyset cursor.',
  security: API_SECURITY,
  request: { query: analysisQuery },
  responses: {
    200: json(z.union([messageSchema, pageSchema]), 'The message (with email_id) or a page of analyses'),
    ...API_ERRORS,
    ...NOT_FOUND,
  },
});

const analyzeBody = z
  .object({
    mailbox: p.mailbox,
    email_id: p.uid,
    folder: p.folder.optional(),
    force: p.bodyBool.optional().openapi({ description: 'Analyse again even if analysed; the old result goes to the audit trail' }),
  })
  .strict();

const analyze = createRoute({
  method: 'post',
  path: '/add/llm/analyze',
  summary: 'Queue a message for analysis, ahead of push and sweep work',
  security: API_SECURITY,
  request: { body: { required: true, content: { 'application/json': { schema: analyzeBody } } } },
  responses: {
    202: json(analyzeResultSchema, 'Queued, or why not (being analysed now, or analysed and not forced)'),
    ...API_ERRORS,
    ...NOT_FOUND,
    ...UNAVAILABLE,
  },
});

export function analysisRoutes(deps: ApiDeps) {
  const app = openApiApp();

  app.openapi(getAnalysis, async (c) => {
    const q = c.req.valid('query');
    assertMailboxAccess(c, q.mailbox);
    const folder = q.folder ?? 'INBOX';
    if (q.email_id !== undefined) {
      const extra = LIST_ONLY.filter((k) => q[k] !== undefined);
      if (extra.length) throw validation(`${extra.join(', ')}: only for listing (without email_id)`);
      const ref = { mailbox: q.mailbox, folder, uid: q.email_id, uidvalidity: q.uidvalidity };
      return c.json(await getMessage(deps.db, ref, deps.protection, { showOtherMailboxes: c.get('principal').kind === 'admin' }), 200);
    }
    if (q.uidvalidity !== undefined) throw validation('uidvalidity: only with email_id');
    const page = await listAnalyses(deps.db, {
      mailbox: q.mailbox,
      folder: q.folder,
      category: q.category,
      verdict: q.verdict,
      isPhishing: q.is_phishing,
      minPriority: q.min_priority,
      sensitive: q.sensitive,
      since: q.since,
      until: q.until,
      limit: q.limit ?? DEFAULT_PAGE_SIZE,
      cursor: q.cursor,
    }, deps.protection);
    return c.json(page, 200);
  });

  app.openapi(analyze, async (c) => {
    const b = c.req.valid('json');
    assertMailboxAccess(c, b.mailbox);
    const result = await requestAnalysis(
      deps.db,
      deps.imap,
      { mailbox: b.mailbox, folder: b.folder ?? 'INBOX', uid: b.email_id, force: b.force ?? false, actor: actor(c) },
      deps.logger,
    );
    if (result.queued) deps.onQueued?.();
    return c.json(result, 202);
  });

  return app;
}
