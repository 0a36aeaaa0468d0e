import { OpenAPIHono } from '@hono/zod-openapi';
import { requestId } from 'hono/request-id';
import type { FolderStatusSource } from './queries/request-analysis.js';
import type { Config } from './config.js';
import { FolderFilter } from './mail/folders.js';
import type { Db } from './db/client.js';
import { ping } from './db/client.js';
import type { ReadinessCheck } from './health/readiness.js';
import { accessLog } from './http/access-log.js';
import { KeyRateLimiter } from './http/rate-limit.js';
import { AuthFailureLimiter } from './http/auth-failures.js';
import { notFound, onError } from './http/errors.js';
import type { Logger } from './logger.js';
import { Metrics } from './metrics.js';
import { checkMailPassword } from './mail/user-login.js';
import { protectionFor, type ContentProtection } from './privacy/protection.js';
import { PUSH_PATH, type PushCredentials } from './push/credentials.js';
import { API_BASE, apiRoutes } from './routes/api.js';
import { dashboardRoutes } from './dashboard/routes.js';
import { DASHBOARD } from './dashboard/views/layout.js';
import { docsRoutes } from './routes/docs.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { documentOtherRoutes } from './routes/openapi-extra.js';
import { pushRoutes } from './routes/push.js';
import type { Feedback } from './analysis/feedback.js';

export interface AppDeps {
  config: Config;
  db: Db;
  /** The push endpoint's own pool (Dovecot is waiting: it must not queue behind worker queries); default `db`. */
  pushDb?: Db;
  logger: Logger;
  pushCredentials: PushCredentials | null;
  /** The admin key (http/admin-key.ts resolves a generated one); default API_KEY. */
  adminKey?: string;
  /** Readiness checks beyond the database (IMAP, Ollama) added by the caller. */
  readiness?: ReadinessCheck[];
  /** Wakes local workers when a push or an API request queued a new job. */
  onQueued?: () => void;
  /** IMAP sessions (analyze requests learn a folder's UIDVALIDITY there). */
  imap?: FolderStatusSource;
  /** Shared with the workers; a fresh registry when absent. */
  metrics?: Metrics;
  /** How message content is stored (sealed, plaintext, headers dropped); from the config when absent. */
  protection?: ContentProtection;
}

const OPENAPI_VERSION = '1.0.0';
/**
 * Wrong mail passwords for one account, from any address: guessing spread over many addresses is
 * slowed as well, and mailsight never feeds Dovecot (or Mailcow's netfilter, which bans by address)
 * a long run of failures for one user.
 */
const ACCOUNT_LIMITS = { maxFailures: 5, windowMs: 15 * 60_000, blockMs: 15 * 60_000 };

/** The HTTP surface. No listening, no timers: main.ts and tests decide how it runs. */
export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono();
  const metrics = deps.metrics ?? new Metrics({ db: deps.db });
  const protection = deps.protection ?? protectionFor(deps.config);
  const campaignWindowHours = deps.config.campaigns.enabled ? deps.config.campaigns.windowHours : undefined;
  const limits = { maxFailures: deps.config.authMaxFailures, windowMs: 60_000, blockMs: deps.config.authBlockSec * 1000 };
  app.onError(onError(deps.logger));
  app.notFound(notFound);

  // The push comes first, before the request id and the access log below: Dovecot holds each
  // delivery until it is answered, so it runs only what it needs (and logs its own lines).
  app.route(
    PUSH_PATH,
    pushRoutes({
      db: deps.pushDb ?? deps.db,
      logger: deps.logger,
      credentials: deps.pushCredentials,
      dbTimeoutMs: deps.config.push.dbTimeoutMs,
      onQueued: deps.onQueued,
      metrics,
      authFailures: new AuthFailureLimiter('push auth', deps.logger, limits),
      allowFrom: deps.config.push.allowFrom,
      protection,
      folders: new FolderFilter(deps.config.folders.include, deps.config.folders.exclude),
      junkFolder: deps.config.actions.junkFolder,
      campaignWindowHours,
    }),
  );
  app.use(requestId());
  app.use(accessLog(deps.logger));

  const readiness: ReadinessCheck[] = [{ name: 'database', run: () => ping(deps.db) }, ...(deps.readiness ?? [])];
  app.route('/', healthRoutes(readiness));
  const services = {
    db: deps.db,
    logger: deps.logger,
    adminKey: deps.adminKey ?? deps.config.apiKey,
    imap: deps.imap,
    readiness,
    onQueued: deps.onQueued,
    authFailures: new AuthFailureLimiter('API key', deps.logger, limits),
    rateLimiter: new KeyRateLimiter(deps.config.apiRateLimit),
    onRateLimited: () => metrics.apiRateLimited.inc(),
    protection,
    campaignWindowHours,
    ...(deps.config.dashboardImapLogin
      ? {
          mailLogin: (user: string, password: string, client: string) => checkMailPassword(deps.config.imap, user, password, client),
          accountFailures: new AuthFailureLimiter('mail password sign-in for one account', deps.logger, ACCOUNT_LIMITS),
        }
      : {}),
    onSignIn: (method: 'key' | 'password', outcome: 'ok' | 'refused' | 'limited' | 'unavailable') => metrics.dashboardSignIns.inc({ method, outcome }),
    onFeedback: (f: Feedback) => metrics.feedback.inc({ said: f.said, how: f.how, outcome: f.outcome }),
  };
  app.route(API_BASE, apiRoutes(services));
  app.route(DASHBOARD, dashboardRoutes(services));
  app.get('/', (c) => c.redirect(DASHBOARD, 302));
  app.route('/', metricsRoutes(metrics, deps.config.metricsToken));
  app.route('/', docsRoutes());
  documentOtherRoutes(app.openAPIRegistry);
  app.get('/openapi.json', (c) =>
    c.json(
      app.getOpenAPI31Document({
        openapi: '3.1.0',
        info: {
          title: 'mailsight',
          version: OPENAPI_VERSION,
          description: 'Private AI analysis of incoming mail on a Dovecot server. Paths under /api/v1 follow the Mailcow convention.',
        },
      }),
    ),
  );
  return app;
}
