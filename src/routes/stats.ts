import { createRoute, z } from '@hono/zod-openapi';
import { getStats } from '../api/stats.js';
import { statsSchema } from '../api/schemas.js';
import { scopeMailbox } from '../http/api-auth.js';
import { API_ERRORS, API_SECURITY, json, openApiApp } from '../http/openapi.js';
import * as p from '../http/params.js';
import type { ApiDeps } from './api.js';

const stats = createRoute({
  method: 'get',
  path: '/get/llm/stats',
  summary: 'Counts by state, verdict and category; queue depth and oldest job; p50/p95 timings; cache savings; tokens',
  description: 'Without `mailbox`: every mailbox (admin key) or the key\'s own mailbox (mailbox key). `since` limits the analyses counted; queue figures are always current.',
  security: API_SECURITY,
  request: { query: z.object({ mailbox: p.mailbox.optional(), since: p.instant.optional() }).strict() },
  responses: { 200: json(statsSchema, 'Statistics'), ...API_ERRORS },
});

export function statsRoutes(deps: ApiDeps) {
  return openApiApp().openapi(stats, async (c) => {
    const q = c.req.valid('query');
    return c.json(await getStats(deps.db, { mailbox: scopeMailbox(c, q.mailbox), since: q.since }), 200);
  });
}
