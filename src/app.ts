import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import type { Config } from './config.js';
import type { Db } from './db/client.js';
import { ping } from './db/client.js';
import type { ReadinessCheck } from './health/readiness.js';
import { notFound, onError } from './http/errors.js';
import type { Logger } from './logger.js';
import { PUSH_PATH, type PushCredentials } from './push/credentials.js';
import { healthRoutes } from './routes/health.js';
import { pushRoutes } from './routes/push.js';

export interface AppDeps {
  config: Config;
  db: Db;
  /** The push endpoint's own pool (Dovecot is waiting: it must not queue behind worker queries); default `db`. */
  pushDb?: Db;
  logger: Logger;
  pushCredentials: PushCredentials | null;
  /** Readiness checks beyond the database (IMAP, Ollama) added by the caller. */
  readiness?: ReadinessCheck[];
  /** Wakes local workers when a push queued a new job. */
  onQueued?: () => void;
}

/** The HTTP surface. No listening, no timers: main.ts and tests decide how it runs. */
export function createApp(deps: AppDeps) {
  const app = new Hono();
  app.use(requestId());
  app.use(async (c, next) => {
    const started = performance.now();
    await next();
    const line = {
      requestId: c.get('requestId'),
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round((performance.now() - started) * 10) / 10,
    };
    // Pushes arrive by the thousand: their successes are debug, everything else info.
    if (c.req.path === PUSH_PATH && c.res.status < 300) deps.logger.debug(line, 'request');
    else deps.logger.info(line, 'request');
  });
  app.onError(onError(deps.logger));
  app.notFound(notFound);

  const readiness: ReadinessCheck[] = [{ name: 'database', run: () => ping(deps.db) }, ...(deps.readiness ?? [])];
  app.route('/', healthRoutes(readiness));
  app.route(
    PUSH_PATH,
    pushRoutes({
      db: deps.pushDb ?? deps.db,
      logger: deps.logger,
      credentials: deps.pushCredentials,
      dbTimeoutMs: deps.config.push.dbTimeoutMs,
      onQueued: deps.onQueued,
    }),
  );
  return app;
}
