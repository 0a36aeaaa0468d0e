import { createRoute, z } from '@hono/zod-openapi';
import { forgetSenders, listLearned } from '../analysis/senders.js';
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
    forget_senders: z.array(p.senderAddress).max(100).optional().openapi({ description: 'Learned senders to forget, by address' }),
    forget_sender_ids: z.array(z.string().min(1).max(200)).max(100).optional().openapi({ description: 'Learned senders to forget, by id (learned_senders[].id)' }),
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
  const withLearned = async (username: string) => ({ ...(await getPreferences(deps.db, username)), learned_senders: await listLearned(deps.db, deps.protection, username) });
  app.openapi(getRoute, async (c) => {
    const { username } = c.req.valid('query');
    assertMailboxAccess(c, username);
    return c.json(await withLearned(username), 200);
  });
  app.openapi(editRoute, async (c) => {
    const { username, forget_senders, forget_sender_ids, ...changes } = c.req.valid('json');
    assertMailboxAccess(c, username);
    const forgetting = (forget_senders?.length ?? 0) + (forget_sender_ids?.length ?? 0) > 0;
    if (!forgetting && Object.values(changes).every((v) => v === undefined)) {
      throw new AppError('VALIDATION_FAILED', 'body: name at least one preference to change');
    }
    if (forgetting) await forgetSenders(deps.db, deps.protection, username, { addresses: forget_senders, ids: forget_sender_ids });
    if (Object.values(changes).some((v) => v !== undefined)) await updatePreferences(deps.db, username, changes);
    return c.json(await withLearned(username), 200);
  });
  return app;
}
