import { createRoute, z } from '@hono/zod-openapi';
import { getPreferences, updatePreferences } from '../queries/preferences.js';
import { preferencesSchema } from '../queries/schemas.js';
import { SWITCHES, type SwitchName } from '../domain/preferences.js';
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
    ...(Object.fromEntries(
      SWITCHES.map((s) => [s.name, p.bodyBool.optional().openapi({ description: s.hint ? `${s.label}. ${s.hint}` : s.label })]),
    ) as Record<SwitchName, z.ZodOptional<typeof p.bodyBool>>),
    summary_language: p.summaryLanguage
      .nullable()
      .optional()
      .openapi({ description: "Language of summaries (null: the message's own)", example: 'de' }),
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
