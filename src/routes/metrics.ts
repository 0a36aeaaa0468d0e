import { Hono } from 'hono';
import type { Metrics } from '../metrics.js';

export function metricsRoutes(metrics: Metrics) {
  const app = new Hono();
  app.get('/metrics', async (c) => {
    const text = await metrics.text();
    return c.body(text, 200, { 'Content-Type': metrics.registry.contentType });
  });
  return app;
}
