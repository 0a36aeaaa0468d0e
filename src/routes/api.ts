import { createRoute } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { healthSchema } from '../queries/schemas.js';
import { checkReadiness } from '../health/readiness.js';
import { API_KEY_HEADER, apiKeyAuth } from '../http/api-auth.js';
import { principalName } from '../queries/keys.js';
import { AppError } from '../http/errors.js';
import { API_ERRORS, API_SECURITY, json, openApiApp } from '../http/openapi.js';
import { analysisRoutes } from './analysis.js';
import { keyRoutes } from './keys.js';
import { mailboxRoutes } from './mailbox.js';
import { preferencesRoutes } from './preferences.js';
import { statsRoutes } from './stats.js';
import { feedbackRoutes } from './feedback.js';
import type { ApiDeps } from './deps.js';

export const API_BASE = '/api/v1';
const MAX_API_BODY_BYTES = 64 * 1024;


const health = createRoute({
  method: 'get',
  path: '/get/llm/health',
  summary: 'Each component (database, IMAP, Ollama and the model) with its state',
  security: API_SECURITY,
  responses: { 200: json(healthSchema, 'Component states; status is degraded when any is not ok'), ...API_ERRORS },
});

/** The seed's /api/v1 (Mailcow's path convention), every route behind X-API-Key. */
export function apiRoutes(deps: ApiDeps) {
  const app = openApiApp();
  app.openAPIRegistry.registerComponent('securitySchemes', 'ApiKey', {
    type: 'apiKey',
    in: 'header',
    name: API_KEY_HEADER,
    description: 'The admin key (API_KEY) or a mailbox key from `mailsight apikey create`',
  });
  app.use('*', apiKeyAuth(deps.db, deps.adminKey, deps.authFailures));
  const limiter = deps.rateLimiter;
  if (limiter) {
    app.use('*', async (c, next) => {
      const p = c.get('principal');
      const wait = limiter.take(principalName(p));
      if (wait > 0) {
        deps.onRateLimited?.();
        throw new AppError('TOO_MANY_REQUESTS', `this API key made too many requests (API_RATE_LIMIT per minute); try again in ${wait} s`, { retryAfterSec: wait });
      }
      await next();
    });
  }
  app.use(
    '*',
    bodyLimit({
      maxSize: MAX_API_BODY_BYTES,
      onError: () => {
        throw new AppError('PAYLOAD_TOO_LARGE', `request body over ${MAX_API_BODY_BYTES} bytes`);
      },
    }),
  );
  app.openapi(health, async (c) => {
    // Hosts, the master user and the model are the admin's to see; a mailbox key gets the states only.
    const report = await checkReadiness(deps.readiness, { detailed: c.get('principal').kind === 'admin' });
    return c.json({ status: report.status === 'ready' ? ('ok' as const) : ('degraded' as const), components: report.components }, 200);
  });
  app.route('/', analysisRoutes(deps));
  app.route('/', statsRoutes(deps));
  app.route('/', feedbackRoutes(deps));
  app.route('/', preferencesRoutes(deps));
  app.route('/', mailboxRoutes(deps));
  app.route('/', keyRoutes(deps));
  // A known path asked with another method: 405 with the methods it takes (README), not 404.
  app.all('*', (c) => {
    const path = c.req.path.slice(API_BASE.length);
    const allowed = [...new Set(app.routes.filter((r) => r.path === path && r.method !== 'ALL').map((r) => r.method))];
    if (allowed.length === 0) throw new AppError('NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`);
    throw new AppError('METHOD_NOT_ALLOWED', `${path} takes ${allowed.join(', ')}, not ${c.req.method}`, { headers: { Allow: allowed.join(', ') } });
  });
  return app;
}
