import type { FolderStatusSource } from '../queries/request-analysis.js';
import type { Feedback } from '../analysis/feedback.js';
import type { Db } from '../db/client.js';
import type { ReadinessCheck } from '../health/readiness.js';
import type { AuthFailureLimiter } from '../http/auth-failures.js';
import type { KeyRateLimiter } from '../http/rate-limit.js';
import type { Logger } from '../logger.js';
import type { MailLoginOutcome } from '../mail/user-login.js';
import type { ContentProtection } from '../privacy/protection.js';

/** What the /api/v1 routes (routes/api.ts and its sub-routers) and the dashboard are given. */
export interface ApiDeps {
  db: Db;
  logger: Logger;
  adminKey: string | undefined;
  /** IMAP, to learn a folder's current UIDVALIDITY for an analyze request; absent: what the database knows. */
  imap?: FolderStatusSource;
  /** Database, IMAP and Ollama checks, as /ready runs them. */
  readiness: ReadinessCheck[];
  /** Wakes local workers after a job was queued. */
  onQueued?: () => void;
  /** Failed key attempts per source address (429 past the limit). */
  authFailures?: AuthFailureLimiter;
  /** Requests per key (API_RATE_LIMIT); absent: unlimited. */
  rateLimiter?: KeyRateLimiter;
  /** Counts requests refused by the per-key limit, for /metrics. */
  onRateLimited?: () => void;
  /**
   * Checks a mailbox owner's mail password with Dovecot (DASHBOARD_IMAP_LOGIN); absent: the
   * dashboard takes keys only. `client` is the browser's address, passed on to Dovecot.
   */
  mailLogin?: (user: string, password: string, client: string) => Promise<MailLoginOutcome>;
  /** Failed mail-password sign-ins per account, besides the per-address limit. */
  accountFailures?: AuthFailureLimiter;
  /** Counts dashboard sign-ins, for /metrics. */
  onSignIn?: (method: 'key' | 'password', outcome: 'ok' | 'refused' | 'limited' | 'unavailable') => void;
  /** Counts users' feedback, for /metrics. */
  onFeedback?: (f: Feedback) => void;
  /** Opens sealed content for the replies. */
  protection: ContentProtection;
  /** CAMPAIGN_WINDOW_HOURS when campaign clean-up is on (users' junk can mark a campaign). */
  campaignWindowHours?: number;
}
