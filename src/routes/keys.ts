import { createRoute, z } from '@hono/zod-openapi';
import { createApiKey, keyJson, listApiKeys, revokeApiKey } from '../queries/keys.js';
import { apiKeySchema, createdApiKeySchema } from '../queries/schemas.js';
import { actor, assertMailboxAccess, scopeMailbox } from '../http/api-auth.js';
import { AppError } from '../http/errors.js';
import { API_ERRORS, API_SECURITY, json, openApiApp } from '../http/openapi.js';
import * as p from '../http/params.js';
import type { ApiDeps } from './deps.js';

/**
 * Mailbox keys over the API: what `mailsight apikey` does, for the CLI beside a running service on
 * the embedded database, and for scripts. The admin manages every mailbox's keys; a mailbox key only
 * its own mailbox's.
 */

const create = createRoute({
  method: 'post',
  path: '/add/llm/apikey',
  summary: 'Create a key for one mailbox; the key is in this answer only',
  security: API_SECURITY,
  request: { body: { required: true, content: { 'application/json': { schema: z.object({ mailbox: p.mailbox, name: p.keyName.optional() }).strict() } } } },
  responses: { 200: json(createdApiKeySchema, 'The new key'), ...API_ERRORS },
});

const list = createRoute({
  method: 'get',
  path: '/get/llm/apikeys',
  summary: 'Keys (never the keys themselves): all for the admin, or those of one mailbox',
  security: API_SECURITY,
  request: { query: z.object({ mailbox: p.mailbox.optional() }).strict() },
  responses: { 200: json(z.object({ items: z.array(apiKeySchema) }), 'Keys, by mailbox, newest first'), ...API_ERRORS },
});

const revoke = createRoute({
  method: 'post',
  path: '/delete/llm/apikey',
  summary: 'Revoke a key at once (by its id)',
  security: API_SECURITY,
  request: { body: { required: true, content: { 'application/json': { schema: z.object({ id: z.string().regex(/^[0-9a-f]{12}$/, 'must be a key id (12 hex digits)') }).strict() } } } },
  responses: { 200: json(z.object({ id: z.string(), revoked: z.literal(true) }), 'Revoked'), ...API_ERRORS },
});

export function keyRoutes(deps: ApiDeps) {
  const app = openApiApp();
  app.openapi(create, async (c) => {
    const { mailbox, name } = c.req.valid('json');
    assertMailboxAccess(c, mailbox);
    const created = await createApiKey(deps.db, mailbox, name);
    deps.logger.info({ mailbox, keyId: created.id, by: actor(c) }, 'API key created');
    return c.json(created, 200);
  });
  app.openapi(list, async (c) => {
    const mailbox = scopeMailbox(c, c.req.valid('query').mailbox);
    const keys = await listApiKeys(deps.db, mailbox ?? undefined);
    return c.json({ items: keys.map(keyJson) }, 200);
  });
  app.openapi(revoke, async (c) => {
    const { id } = c.req.valid('json');
    const p = c.get('principal');
    const revoked = await revokeApiKey(deps.db, id, p.kind === 'mailbox' ? p.mailbox : undefined);
    if (!revoked) throw new AppError('NOT_FOUND', `no active key ${id}${p.kind === 'mailbox' ? ' for this mailbox' : ''}`);
    deps.logger.info({ keyId: id, by: actor(c) }, 'API key revoked');
    return c.json({ id, revoked: true as const }, 200);
  });
  return app;
}
