import { Hono } from 'hono';
import type { ReadinessCheck } from '../health/readiness.js';
import { checkReadiness } from '../health/readiness.js';

export function healthRoutes(checks: ReadinessCheck[]) {
  const app = new Hono();
  app.get('/health', (c) => c.json({ status: 'ok' }));
  app.get('/ready', async (c) => {
    const report = await checkReadiness(checks, { detailed: false });
    return c.json(report, report.status === 'ready' ? 200 : 503);
  });
  return app;
}
