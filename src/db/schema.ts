import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  date,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  real,
  smallint,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import type { AnalysisStatus, FeedbackHow, FeedbackSaid, JobSource, JobState, Verdict } from '../domain/states.js';

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
/** UIDs and UIDVALIDITY are unsigned 32-bit: they need bigint, and fit a JS number. */
const u32 = (name: string) => bigint(name, { mode: 'number' });

/**
 * One row per message that mailsight has heard of, keyed like the analysis.
 * state: queued -> processing -> done | skipped | failed | dead | gone | stale
 * priority: lower runs first (0 api, 1 push, 2 reconcile/backfill).
 */
export const processingQueue = pgTable(
  'llm_processing_queue',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    mailbox: text('mailbox').notNull(),
    folder: text('folder').notNull(),
    uidvalidity: u32('uidvalidity').notNull(),
    uid: u32('uid').notNull(),
    state: text('state').$type<JobState>().notNull().default('queued'),
    source: text('source').$type<JobSource>().notNull(),
    priority: smallint('priority').notNull().default(1),
    event: text('event'),
    messageId: text('message_id'),
    fromHeader: text('from_header'),
    subject: text('subject'),
    /** With ENCRYPTION_KEY: From and Subject sealed here (the two columns above stay empty). */
    sealedHeaders: text('sealed_headers'),
    keyId: text('key_id'),
    attempts: integer('attempts').notNull().default(0),
    runAt: ts('run_at').notNull().defaultNow(),
    leaseUntil: ts('lease_until'),
    lockedBy: text('locked_by'),
    lastError: text('last_error'),
    force: boolean('force').notNull().default(false),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    finishedAt: ts('finished_at'),
  },
  (t) => [
    uniqueIndex('llm_processing_queue_message_key').on(t.mailbox, t.folder, t.uidvalidity, t.uid),
    // The fair claim walks queued work mailbox by mailbox within each priority (src/queue/lifecycle.ts).
    index('llm_processing_queue_fair_claim_idx')
      .on(t.priority, t.mailbox, t.runAt, t.id)
      .where(sql`${t.state} = 'queued'`),
    // When each mailbox was last served (its newest claim or end), for the fair claim's turns.
    // Not on queued rows, so a push does not pay for it.
    index('llm_processing_queue_served_idx')
      .on(t.mailbox, t.updatedAt)
      .where(sql`${t.state} <> 'queued'`),
    index('llm_processing_queue_lease_idx')
      .on(t.leaseUntil)
      .where(sql`${t.state} = 'processing'`),
    // Recent failures (the overview), and retention's walk over finished rows by age. Neither
    // covers queued rows, so a push pays for neither.
    index('llm_processing_queue_failed_idx')
      .on(t.updatedAt)
      .where(sql`${t.state} in ('failed', 'dead')`),
    // The age of the oldest waiting job (/stats, the overview, /metrics).
    index('llm_processing_queue_waiting_idx')
      .on(t.createdAt)
      .where(sql`${t.state} in ('queued', 'processing')`),
    index('llm_processing_queue_finished_idx')
      .on(sql`coalesce(${t.finishedAt}, ${t.updatedAt})`)
      .where(sql`${t.state} not in ('queued', 'processing')`),
    // No separate (mailbox, folder, uidvalidity) index: the unique key's prefix serves those lookups,
    // and every push would pay for one more index.
  ],
);

/**
 * One row per analysed (or deliberately skipped) message. Partitioned by month of created_at
 * (drizzle/0015_monthly_partitions.sql; drizzle-kit does not model partitions): retention drops
 * whole months. Postgres allows a unique index over all partitions only if it holds created_at, so
 * each partition has its own unique index on the message key, and the pipeline writes through
 * llm_write_analysis (analysis/store.ts), which holds an advisory lock on the key: one row per key
 * across partitions.
 */
export const emailAnalysis = pgTable(
  'llm_email_analysis',
  {
    id: bigserial('id', { mode: 'number' }).notNull(),
    mailbox: text('mailbox').notNull(),
    folder: text('folder').notNull(),
    uidvalidity: u32('uidvalidity').notNull(),
    uid: u32('uid').notNull(),
    /** analyzed | skipped (preferences said no) | failed (the model's output was unusable; see error) */
    status: text('status').$type<AnalysisStatus>().notNull().default('analyzed'),
    skipReason: text('skip_reason'),
    error: text('error'),
    messageId: text('message_id'),
    fromAddress: text('from_address'),
    fromName: text('from_name'),
    subject: text('subject'),
    sentAt: ts('sent_at'),
    /**
     * When the server received the message (IMAP INTERNALDATE); without a fetch, when it was
     * processed. Milliseconds, as JavaScript dates carry them: the dashboard's cursor holds one exactly.
     */
    receivedAt: timestamp('received_at', { withTimezone: true, mode: 'date', precision: 3 }).notNull().defaultNow(),
    sizeBytes: integer('size_bytes'),
    summary: text('summary'),
    category: text('category'),
    tags: text('tags').array().notNull().default(sql`'{}'::text[]`),
    verdict: text('verdict').$type<Verdict>(),
    confidence: real('confidence'),
    reasons: jsonb('reasons').$type<string[]>().notNull().default([]),
    isSpam: boolean('is_spam'),
    isPhishing: boolean('is_phishing'),
    priority: smallint('priority'),
    priorityReason: text('priority_reason'),
    sensitive: jsonb('sensitive').$type<string[]>().notNull().default([]),
    language: text('language'),
    replySuggestion: text('reply_suggestion'),
    signals: jsonb('signals').$type<Record<string, unknown>>().notNull().default({}),
    /** What the deterministic signals found, in words (the model's reasons are in `reasons`). */
    signalReasons: jsonb('signal_reasons').$type<string[]>().notNull().default([]),
    /** Model and signals combined (noisy OR), 0..1. */
    phishingScore: real('phishing_score'),
    /** Who decided the verdict (domain/states.ts VERDICT_SOURCES). */
    verdictSource: text('verdict_source'),
    /**
     * The model's own verdict and confidence (null when no model answered). The stored verdict may
     * be another's (the signals' floor, the user's word on the sender): the content cache gives other
     * mailboxes the model's answer, never a verdict only this mailbox's user asked for.
     */
    modelVerdict: text('model_verdict').$type<Verdict>(),
    modelConfidence: real('model_confidence'),
    /** The escalation rule that matched, if any. */
    rule: text('rule'),
    /** Where a mailbox action moved the message (folder and UID there), and the keywords it set. */
    movedToFolder: text('moved_to_folder'),
    movedToUid: u32('moved_to_uid'),
    keywords: text('keywords').array().notNull().default(sql`'{}'::text[]`),
    /** Optional parts left out because the queue was behind (LLM_SHED_AFTER_SEC): summary, reply_suggestion. */
    leftOut: text('left_out').array().notNull().default(sql`'{}'::text[]`),
    parseWarnings: jsonb('parse_warnings').$type<string[]>().notNull().default([]),
    /**
     * With ENCRYPTION_KEY the message content lives here, sealed (AES-256-GCM), and its plaintext
     * columns stay empty: headers (subject, from) and content (summary, tags, reasons, priority
     * reason, reply suggestion). Filters use the metadata columns, which are never sealed.
     */
    sealedHeaders: text('sealed_headers'),
    sealedContent: text('sealed_content'),
    keyId: text('key_id'),
    model: text('model'),
    promptVersion: text('prompt_version'),
    contentHash: text('content_hash'),
    cacheHit: boolean('cache_hit').notNull().default(false),
    promptTokens: integer('prompt_tokens'),
    completionTokens: integer('completion_tokens'),
    fetchMs: integer('fetch_ms'),
    llmMs: integer('llm_ms'),
    totalMs: integer('total_ms'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.id, t.createdAt] }),
    // The API lists a mailbox newest first with an id keyset cursor; retention deletes by age.
    index('llm_email_analysis_mailbox_id_idx').on(t.mailbox, t.id),
    index('llm_email_analysis_created_idx').on(t.createdAt),
    index('llm_email_analysis_content_idx').on(t.contentHash),
    // An IMAP APPEND finds the analysis of the message it copies (a user's move, mailsight's own).
    index('llm_email_analysis_message_id_idx').on(t.mailbox, t.messageId),
    // The dashboard's mailbox list: newest received first, paged by (received_at, id).
    index('llm_email_analysis_mailbox_received_idx').on(t.mailbox, t.receivedAt.desc(), t.id.desc()),
    // Recent failures (the overview): a few rows, found without reading the others.
    index('llm_email_analysis_failed_idx').on(t.updatedAt).where(sql`${t.status} = 'failed'`),
  ],
);

/** The key and the sums both daily rollups keep (a fresh set of column builders per table). */
const rollupColumns = () => ({
  status: text('status').notNull(),
  verdict: text('verdict').notNull(),
  category: text('category').notNull(),
  n: bigint('n', { mode: 'number' }).notNull().default(0),
  cacheHits: bigint('cache_hits', { mode: 'number' }).notNull().default(0),
  promptTokens: bigint('prompt_tokens', { mode: 'number' }).notNull().default(0),
  completionTokens: bigint('completion_tokens', { mode: 'number' }).notNull().default(0),
});

/**
 * Analysis counts and sums per mailbox, UTC day, status, verdict and category: what /stats and the
 * overview add up instead of scanning llm_email_analysis. Kept exact by statement triggers on that
 * table (drizzle/0013_stats_rollups.sql): every insert, update and delete of analyses moves
 * these counts in the same transaction. A null verdict or category is ''.
 */
export const statsDaily = pgTable(
  'llm_stats_daily',
  {
    mailbox: text('mailbox').notNull(),
    day: date('day', { mode: 'string' }).notNull(),
    ...rollupColumns(),
  },
  (t) => [
    primaryKey({ columns: [t.mailbox, t.day, t.status, t.verdict, t.category] }),
    // Retention removes whole expired days at once (queue/retention.ts).
    index('llm_stats_daily_day_idx').on(t.day),
  ],
);

/**
 * The whole server's queue rows per state, as signed changes that statement triggers on
 * llm_processing_queue append (no row is updated in place, so concurrent pushes never wait on each
 * other here); the sweep's leader sums them up now and then (queue/queue-counts.ts). The count of a
 * state is the sum of its rows.
 */
export const queueCounts = pgTable('llm_queue_counts', {
  state: text('state').notNull(),
  n: bigint('n', { mode: 'number' }).notNull(),
});

/**
 * The same for the whole server, in a table of its own: its rows stay together on few pages (kept
 * among the mailboxes' rows, the server's 19,000 rows of a year took 45 ms to read at a million
 * analyses, from 10,000 pages).
 */
export const statsServerDaily = pgTable(
  'llm_stats_server_daily',
  {
    day: date('day', { mode: 'string' }).notNull(),
    ...rollupColumns(),
  },
  (t) => [primaryKey({ columns: [t.day, t.status, t.verdict, t.category] })],
);

/**
 * The whole server's analyses per minute, status, verdict and category (with the daily rollups'
 * sums), for the last eight days: what the timeline, the overview's charts and /stats since a
 * recent moment add up (queries/stats.ts). Kept by
 * the same statement triggers (drizzle/0016_timeline_rollups.sql) for rows of that window; older
 * minutes are pruned by the sweep.
 */
export const statsMinutely = pgTable(
  'llm_stats_minutely',
  {
    minute: ts('minute').notNull(),
    ...rollupColumns(),
  },
  (t) => [primaryKey({ columns: [t.minute, t.status, t.verdict, t.category] })],
);

/**
 * LLM latency of the whole server per minute, as a histogram (analysed messages that called the
 * model): `bin` is llm_latency_bin(llm_ms), bins 5 % wide. Percentiles of any bucket of minutes
 * come from adding the bins up.
 */
export const latencyMinutely = pgTable(
  'llm_latency_minutely',
  {
    minute: ts('minute').notNull(),
    bin: smallint('bin').notNull(),
    n: bigint('n', { mode: 'number' }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.minute, t.bin] })],
);

/**
 * The same per hour: what windows of a day or more read (their buckets are whole hours), so that
 * their cost stays flat as a server grows (per minute, a day of a busy server holds about as many
 * rollup rows as analyses). Kept and pruned with the minutes (drizzle/0016_timeline_rollups.sql).
 */
export const statsHourly = pgTable(
  'llm_stats_hourly',
  {
    hour: ts('hour').notNull(),
    ...rollupColumns(),
  },
  (t) => [primaryKey({ columns: [t.hour, t.status, t.verdict, t.category] })],
);

/** LLM latency of the whole server per hour, in the same bins. */
export const latencyHourly = pgTable(
  'llm_latency_hourly',
  {
    hour: ts('hour').notNull(),
    bin: smallint('bin').notNull(),
    n: bigint('n', { mode: 'number' }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.hour, t.bin] })],
);

/** Per mailbox: its analyses, the phishing among them, and the newest (the overview's list of mailboxes); same triggers. */
export const statsMailbox = pgTable(
  'llm_stats_mailbox',
  {
    mailbox: text('mailbox').primaryKey(),
    analyses: bigint('analyses', { mode: 'number' }).notNull(),
    phishing: bigint('phishing', { mode: 'number' }).notNull(),
    latest: ts('latest').notNull(),
  },
  (t) => [index('llm_stats_mailbox_latest_idx').on(t.latest.desc())],
);

export const userPreferences = pgTable('llm_user_preferences', {
  username: text('username').primaryKey(),
  autoAnalysis: boolean('auto_analysis').notNull().default(true),
  autoCategorize: boolean('auto_categorize').notNull().default(true),
  phishingAlerts: boolean('phishing_alerts').notNull().default(true),
  summaryEnabled: boolean('summary_enabled').notNull().default(true),
  replySuggestions: boolean('reply_suggestions').notNull().default(false),
  summaryLanguage: text('summary_language'),
  /** The user opted out: everything about the mailbox was erased and nothing is stored from now on. */
  optOut: boolean('opt_out').notNull().default(false),
  /** Per-mailbox learning from the user's Junk / Not junk (analysis/senders.ts). */
  learnSenders: boolean('learn_senders').notNull().default(true),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
});

export const config = pgTable('llm_config', {
  key: text('key').primaryKey(),
  value: jsonb('value').notNull(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
});

export const auditLog = pgTable(
  'llm_audit_log',
  {
    id: bigserial('id', { mode: 'number' }).notNull(),
    at: ts('at').notNull().defaultNow(),
    mailbox: text('mailbox').notNull(),
    folder: text('folder'),
    uidvalidity: u32('uidvalidity'),
    uid: u32('uid'),
    messageId: text('message_id'),
    verdict: text('verdict').$type<Verdict>(),
    confidence: real('confidence'),
    rule: text('rule'),
    action: text('action').notNull(),
    reason: text('reason'),
    details: jsonb('details').$type<Record<string, unknown>>(),
  },
  (t) => [
    primaryKey({ columns: [t.id, t.at] }),
    index('llm_audit_log_mailbox_idx').on(t.mailbox, t.at),
    // Retention deletes by age.
    index('llm_audit_log_at_idx').on(t.at),
    // One message's trail: the claim asks whether its decision is recorded, the API shows it.
    index('llm_audit_log_message_idx').on(t.mailbox, t.folder, t.uidvalidity, t.uid),
  ],
);

/**
 * What users said of mailsight's verdicts: one row per message (mailbox and Message-ID, or its key
 * when it has none), the latest word. `said` is junk or legit; `how` is keyword (a client's
 * Junk / Not junk button), move (into or out of the Junk folder), dashboard or api. The verdict,
 * its source, the model and the prompt version are mailsight's at that moment, so quality can be
 * compared per model and prompt. mailsight's own keywords and moves are never recorded here.
 */
export const feedback = pgTable(
  'llm_feedback',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    mailbox: text('mailbox').notNull(),
    /** The Message-ID, or `key:<folder>/<uidvalidity>/<uid>` for a message without one. */
    message: text('message').notNull(),
    folder: text('folder').notNull(),
    uidvalidity: u32('uidvalidity').notNull(),
    uid: u32('uid').notNull(),
    said: text('said').$type<FeedbackSaid>().notNull(),
    how: text('how').$type<FeedbackHow>().notNull(),
    verdict: text('verdict').$type<Verdict>(),
    verdictSource: text('verdict_source'),
    model: text('model'),
    promptVersion: text('prompt_version'),
    /** The sender's address (per-mailbox learning). */
    sender: text('sender'),
    at: ts('at').notNull().defaultNow(),
  },
  (t) => [uniqueIndex('llm_feedback_message_key').on(t.mailbox, t.message), index('llm_feedback_at_idx').on(t.at)],
);

/**
 * Every mailbox mailsight has seen a job for: what the sweep walks (queue/reconcile.ts). Kept by the
 * queue's insert trigger (drizzle/0019), so reading it costs the same at any queue size.
 */
export const mailboxes = pgTable('llm_mailboxes', {
  mailbox: text('mailbox').primaryKey(),
  firstSeen: ts('first_seen').notNull().defaultNow(),
});

/**
 * Campaign membership (analysis/campaigns.ts): each analysed message under each of its campaign
 * keys, for the window (CAMPAIGN_WINDOW_HOURS) in which a later verdict can reach it.
 */
export const campaignMembers = pgTable(
  'llm_campaign_members',
  {
    campaignKey: text('campaign_key').notNull(),
    mailbox: text('mailbox').notNull(),
    folder: text('folder').notNull(),
    uidvalidity: u32('uidvalidity').notNull(),
    uid: u32('uid').notNull(),
    at: ts('at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.campaignKey, t.mailbox, t.folder, t.uidvalidity, t.uid] }),
    index('llm_campaign_members_message_idx').on(t.mailbox, t.folder, t.uidvalidity, t.uid),
    index('llm_campaign_members_at_idx').on(t.at),
  ],
);

/** Campaigns judged phishing, scam or (by users) junk: the verdict that reaches every member, and the message that set it. */
export const campaigns = pgTable(
  'llm_campaigns',
  {
    campaignKey: text('campaign_key').primaryKey(),
    verdict: text('verdict').$type<Verdict>().notNull(),
    confidence: real('confidence').notNull(),
    mailbox: text('mailbox').notNull(),
    folder: text('folder').notNull(),
    uidvalidity: u32('uidvalidity').notNull(),
    uid: u32('uid').notNull(),
    at: ts('at').notNull().defaultNow(),
  },
  (t) => [index('llm_campaigns_at_idx').on(t.at)],
);

/**
 * What a mailbox's user taught mailsight about senders (analysis/senders.ts): the latest word on a
 * message from that sender. Only that mailbox's verdicts use it. `sender_key` is the address in
 * lower case, or with ENCRYPTION_KEY a keyed hash of it (`<key id>.<HMAC>`), the address itself
 * then sealed in `sealed_sender`.
 */
export const learnedSenders = pgTable(
  'llm_learned_senders',
  {
    mailbox: text('mailbox').notNull(),
    senderKey: text('sender_key').notNull(),
    sender: text('sender'),
    sealedSender: text('sealed_sender'),
    keyId: text('key_id'),
    said: text('said').$type<FeedbackSaid>().notNull(),
    how: text('how').$type<FeedbackHow>().notNull(),
    /** The message that taught it: its Message-ID, or its key. */
    message: text('message').notNull(),
    at: ts('at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.mailbox, t.senderKey] })],
);

/**
 * Per-mailbox API keys. The key is shown once at creation; only its SHA-256 is kept. The key carries
 * its row id (`msk_<id>_<secret>`), so a lookup is by primary key and the hash comparison constant-time.
 */
export const apiKeys = pgTable(
  'llm_api_keys',
  {
    id: text('id').primaryKey(),
    mailbox: text('mailbox').notNull(),
    name: text('name'),
    hash: text('hash').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
    lastUsedAt: ts('last_used_at'),
    revokedAt: ts('revoked_at'),
  },
  (t) => [index('llm_api_keys_mailbox_idx').on(t.mailbox)],
);

/** Dashboard sign-ins: the cookie holds a random token, this table its SHA-256 (a leaked table opens nothing). */
export const dashboardSessions = pgTable(
  'llm_dashboard_sessions',
  {
    id: text('id').primaryKey(),
    /** 'admin', or 'mailbox' with the key it was opened with (revoking the key ends the session). */
    kind: text('kind').notNull(),
    mailbox: text('mailbox'),
    keyId: text('key_id'),
    /** Fingerprint of the admin key it was opened with: a changed API_KEY ends admin sessions. */
    adminFingerprint: text('admin_fingerprint'),
    csrf: text('csrf').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
    expiresAt: ts('expires_at').notNull(),
  },
  (t) => [index('llm_dashboard_sessions_expires_idx').on(t.expiresAt)],
);

export const schema = { processingQueue, emailAnalysis, userPreferences, config, auditLog, apiKeys, dashboardSessions, statsDaily, statsServerDaily, statsMailbox, statsMinutely, latencyMinutely, statsHourly, latencyHourly, queueCounts, feedback, learnedSenders, mailboxes, campaignMembers, campaigns };
