import { Hono } from 'hono';
import { safeEqual } from '../http/basic-auth.js';
import { AppError } from '../http/errors.js';
import type { Metrics } from '../metrics.js';

/** Prometheus text; with `token`, only for `Authorization: Bearer <token>` (Prometheus' `authorization`). */
export function metricsRoutes(metrics: Metrics, token?: string) {
  const app = new Hono();
  app.get('/metrics', async (c) => {
    if (token !== undefined) {
      const given = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '')?.[1];
      if (given === undefined || !safeEqual(given, token)) {
        c.header('WWW-Authenticate', 'Bearer realm="mailsight metrics"');
        throw new AppError('UNAUTHORIZED', given === undefined ? 'metrics need a bearer token (METRICS_TOKEN)' : 'wrong metrics token');
      }
    }
    const text = await metrics.text();
    return c.body(text, 200, { 'Content-Type': metrics.registry.contentType });
  });
  return app;
}
