import { createRoute, z } from '@hono/zod-openapi';
import { eraseMailbox } from '../queries/erase.js';
import { eraseSchema } from '../queries/schemas.js';
import { assertMailboxAccess } from '../http/api-auth.js';
import { API_ERRORS, API_SECURITY, json, openApiApp } from '../http/openapi.js';
import * as p from '../http/params.js';
import type { ApiDeps } from './deps.js';

const erase = createRoute({
  method: 'post',
  path: '/delete/llm/mailbox',
  summary: 'Erase everything stored about a mailbox (GDPR): queue, analyses, audit trail, preferences, API keys',
  description: 'Mail that arrives afterwards is analysed again as usual; set auto_analysis=false afterwards to stop that.',
  security: API_SECURITY,
  request: { body: { required: true, content: { 'application/json': { schema: z.object({ mailbox: p.mailbox }).strict() } } } },
  responses: { 200: json(eraseSchema, 'Rows deleted, by table'), ...API_ERRORS },
});

export function mailboxRoutes(deps: ApiDeps) {
  return openApiApp().openapi(erase, async (c) => {
    const { mailbox } = c.req.valid('json');
    assertMailboxAccess(c, mailbox);
    const result = await eraseMailbox(deps.db, mailbox);
    deps.logger.info({ mailbox, deleted: result.deleted }, 'mailbox erased');
    return c.json(result, 200);
  });
}
