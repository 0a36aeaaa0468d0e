import { createRoute, z } from '@hono/zod-openapi';
import { getPreferences, updatePreferences } from '../queries/preferences.js';
import { preferencesSchema } from '../queries/schemas.js';
import { assertMailboxAccess } from '../http/api-auth.js';
import { AppError } from '../http/errors.js';
import { API_ERRORS, API_SECURITY, json, openApiApp } from '../http/openapi.js';
import * as p from '../http/params.js';
import type { ApiDeps } from './deps.js';

const getRoute = createRoute({
  method: 'get',
  path: '/get/llm/preferences',
  summary: "A mailbox's analysis preferences (the defaults when never changed)",
  security: API_SECURITY,
  request: { query: z.object({ username: p.mailbox }).strict() },
  responses: { 200: json(preferencesSchema, 'The preferences'), ...API_ERRORS },
});

const editBody = z
  .object({
    username: p.mailbox,
    auto_analysis: p.bodyBool.optional().openapi({ description: 'Analyse new mail automatically (off: recorded as skipped)' }),
    auto_categorize: p.bodyBool.optional().openapi({ description: 'Store a category and tags' }),
    phishing_alerts: p.bodyBool.optional().openapi({ description: 'Flag phishing in the mailbox (when actions are on)' }),
    summary_enabled: p.bodyBool.optional().openapi({ description: 'Store a summary' }),
    reply_suggestions: p.bodyBool.optional().openapi({ description: 'Ask the model for a reply suggestion' }),
    summary_language: p.summaryLanguage
      .nullable()
      .optional()
      .openapi({ description: "Language of summaries (null: the message's own)", example: 'de' }),
    opt_out: p.bodyBool.optional().openapi({ description: 'true: erase everything stored about this mailbox\'s mail and store nothing from now on' }),
  })
  .strict();

const editRoute = createRoute({
  method: 'post',
  path: '/edit/llm/preferences',
  summary: "Change a mailbox's preferences; only the fields sent change",
  security: API_SECURITY,
  request: { body: { required: true, content: { 'application/json': { schema: editBody } } } },
  responses: { 200: json(preferencesSchema, 'The preferences after the change'), ...API_ERRORS },
});

export function preferencesRoutes(deps: ApiDeps) {
  const app = openApiApp();
  app.openapi(getRoute, async (c) => {
    const { username } = c.req.valid('query');
    assertMailboxAccess(c, username);
    return c.json(await getPreferences(deps.db, username), 200);
  });
  app.openapi(editRoute, async (c) => {
    const { username, ...changes } = c.req.valid('json');
    assertMailboxAccess(c, username);
    if (Object.values(changes).every((v) => v === undefined)) {
      throw new AppError('VALIDATION_FAILED', 'body: name at least one preference to change');
    }
    return c.json(await updatePreferences(deps.db, username, changes), 200);
  });
  return app;
}
