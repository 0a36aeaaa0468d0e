import { createRoute, z } from '@hono/zod-openapi';
import { getStats, getTimeline } from '../queries/stats.js';
import { statsSchema } from '../queries/schemas.js';
import { scopeMailbox } from '../http/api-auth.js';
import { API_ERRORS, API_SECURITY, json, openApiApp } from '../http/openapi.js';
import * as p from '../http/params.js';
import type { ApiDeps } from './deps.js';

export const MAX_TIMELINE_MINUTES = 7 * 24 * 60;

const stats = createRoute({
  method: 'get',
  path: '/get/llm/stats',
  summary: 'Counts by state, verdict and category; queue depth and oldest job; p50/p95 timings; cache savings; tokens',
  description: 'Without `mailbox`: every mailbox (admin key) or the key\'s own mailbox (mailbox key). `since` limits the analyses counted; queue figures are always current.',
  security: API_SECURITY,
  request: {
    query: z
      .object({
        mailbox: p.mailbox.optional(),
        since: p.instant.optional(),
        timeline_minutes: p
          .queryInt(1, MAX_TIMELINE_MINUTES)
          .optional()
          .openapi({ description: `Also return analyses over time for this many minutes (at most ${MAX_TIMELINE_MINUTES}), in about 30 buckets` }),
      })
      .strict(),
  },
  responses: { 200: json(statsSchema, 'Statistics'), ...API_ERRORS },
});

export function statsRoutes(deps: ApiDeps) {
  return openApiApp().openapi(stats, async (c) => {
    const q = c.req.valid('query');
    const mailbox = scopeMailbox(c, q.mailbox);
    const [stats, timeline] = await Promise.all([
      getStats(deps.db, { mailbox, since: q.since }),
      q.timeline_minutes === undefined ? undefined : getTimeline(deps.db, { mailbox, minutes: q.timeline_minutes }),
    ]);
    return c.json({ ...stats, ...(timeline ? { timeline } : {}) }, 200);
  });
}
