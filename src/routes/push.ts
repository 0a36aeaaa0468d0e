import { keyOf } from '../domain/message-key.js';
import { Hono } from 'hono';
import type { Db } from '../db/client.js';
import type { AllowList } from '../http/allow-list.js';
import { clientAddress, type AuthFailureLimiter } from '../http/auth-failures.js';
import { accessLog } from '../http/access-log.js';
import { basicAuth } from '../http/basic-auth.js';
import { readBodyText } from '../http/body.js';
import { AppError, withDeadline } from '../http/errors.js';
import { errorText, type Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { FolderFilter } from '../mail/folders.js';
import type { ContentProtection } from '../privacy/protection.js';
import { parsePushBody, type PushEvent } from '../push/payload.js';
import { receivePush } from '../push/receive.js';

export const MAX_PUSH_BODY_BYTES = 64 * 1024;

export interface PushRouteDeps {
  db: Db;
  logger: Logger;
  credentials: { username: string; password: string } | null;
  /** Dovecot waits for this answer: give up on the database after this long and say 503. */
  dbTimeoutMs: number;
  /** Called after a job was queued, so local workers wake at once. */
  onQueued?: () => void;
  metrics?: Metrics;
  authFailures?: AuthFailureLimiter;
  /** PUSH_ALLOW_FROM: only these may push (others 403 before authentication), and they are never locked out. */
  allowFrom?: AllowList;
  protection: ContentProtection;
  /** FOLDERS_INCLUDE / FOLDERS_EXCLUDE: pushes for other folders are acknowledged and cost nothing. */
  folders: FolderFilter;
  /** ACTIONS junk_folder (a user's moves into and out of it are feedback). */
  junkFolder: string;
  /** CAMPAIGN_WINDOW_HOURS when campaign clean-up is on (users' junk can mark a campaign). */
  campaignWindowHours?: number;
}

/** A push's log fields, built only for a line that is written, and without a spread (see receivePush). */
function logFields(ev: PushEvent, extra: Record<string, unknown>) {
  return Object.assign(keyOf(ev), { event: ev.event }, extra);
}

/** The mailsight_pushes_total label of a refused push. */
function refusal(status: number): string {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 429) return 'rate_limited';
  if (status === 503) return 'db_unavailable';
  return 'rejected';
}

export function pushRoutes(deps: PushRouteDeps) {
  const app = new Hono();
  // Successes are debug lines: they arrive by the thousand.
  app.use(accessLog(deps.logger, 300));
  if (deps.metrics) {
    const { pushes } = deps.metrics;
    app.use(async (c, next) => {
      await next();
      if (c.res.status >= 400) pushes.inc({ outcome: refusal(c.res.status) });
    });
  }
  const allowFrom = deps.allowFrom;
  if (allowFrom) {
    app.use(async (c, next) => {
      const address = clientAddress(c);
      if (!allowFrom.allows(address)) throw new AppError('FORBIDDEN', `pushes from ${address} are not allowed (PUSH_ALLOW_FROM)`);
      await next();
    });
  }
  const auth = basicAuth(deps.credentials, deps.authFailures, {
    trusted: allowFrom ? (address) => allowFrom.allows(address) : undefined,
    onFailure: (trusted) => deps.metrics?.pushAuthFailures.inc({ from: trusted ? 'allowed' : 'other' }),
    logger: deps.logger,
  });
  app.on(['PUT', 'POST'], '/', auth, async (c) => {
    const text = await readBodyText(c, MAX_PUSH_BODY_BYTES);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      throw new AppError('INVALID_JSON', `body is not valid JSON: ${errorText(err)}`);
    }
    const parsed = parsePushBody(body);
    if (!parsed.ok) throw new AppError('VALIDATION_FAILED', parsed.problems.join('; '));

    const ev = parsed.event;
    let outcome;
    try {
      outcome = await withDeadline(
        receivePush(deps.db, ev, deps),
        deps.dbTimeoutMs,
        () => new AppError('DATABASE_UNAVAILABLE', `database did not answer within ${deps.dbTimeoutMs} ms`),
      );
    } catch (err) {
      const appErr =
        err instanceof AppError ? err : new AppError('DATABASE_UNAVAILABLE', 'database unavailable', { cause: err });
      // Dovecot will not resend; the reconciliation sweep finds INBOX messages whose push was lost.
      // Past the deadline the INSERT may still commit (then the job simply runs): "not confirmed".
      deps.logger.warn(logFields(ev, { err: errorText(err) }), 'push not confirmed, answered 503');
      throw appErr;
    }
    if (outcome.status === 'queued' && outcome.new) deps.onQueued?.();
    deps.metrics?.pushes.inc({ outcome: outcome.status === 'queued' && !outcome.new ? 'duplicate' : outcome.status });
    const feedback = outcome.status === 'feedback' || outcome.status === 'followed' ? outcome.feedback : undefined;
    if (feedback) deps.metrics?.feedback.inc({ said: feedback.said, how: feedback.how, outcome: feedback.outcome });
    if (deps.logger.isLevelEnabled('debug')) deps.logger.debug(logFields(ev, { outcome: outcome.status }), 'push');
    return c.json(outcome, 202);
  });

  app.all('/', (c) => {
    c.header('Allow', 'PUT, POST');
    throw new AppError('METHOD_NOT_ALLOWED', `use PUT or POST, not ${c.req.method}`);
  });
  return app;
}
