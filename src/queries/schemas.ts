import { z } from '@hono/zod-openapi';
import { SWITCHES, type SwitchName } from '../domain/preferences.js';
import { FEEDBACK_HOW, FEEDBACK_SAID, MESSAGE_STATES, VERDICT_SOURCES, type MessageState } from '../domain/states.js';
import { CATEGORIES, VERDICTS } from '../analysis/result.js';

/** Response shapes of /api/v1, for the OpenAPI document. */

const nullable = <T extends z.ZodType>(t: T) => t.nullable();

export const analysisSchema = z
  .object({
    id: z.number().int(),
    mailbox: z.string(),
    folder: z.string(),
    uidvalidity: z.number().int(),
    email_id: z.number().int().openapi({ description: 'IMAP UID' }),
    status: z.enum(['analyzed', 'skipped', 'failed']),
    skip_reason: nullable(z.string()),
    error: nullable(z.string()),
    message_id: nullable(z.string()),
    from_address: nullable(z.string()),
    from_name: nullable(z.string()),
    subject: nullable(z.string()),
    date: nullable(z.string().openapi({ format: 'date-time' })),
    received_at: z.string().openapi({ format: 'date-time', description: 'When the server received the message (IMAP INTERNALDATE)' }),
    size_bytes: nullable(z.number().int()),
    summary: nullable(z.string()),
    category: nullable(z.enum(CATEGORIES)),
    tags: z.array(z.string()),
    verdict: nullable(z.enum(VERDICTS)),
    confidence: nullable(z.number()),
    is_spam: nullable(z.boolean()),
    is_phishing: nullable(z.boolean()),
    reasons: z.array(z.string()).openapi({ description: "The model's reasons" }),
    signal_reasons: z.array(z.string()).openapi({ description: "What mailsight's deterministic checks found" }),
    phishing_score: nullable(z.number().openapi({ description: 'Model and signals combined, 0..1' })),
    verdict_source: nullable(z.enum(VERDICT_SOURCES)),
    rule: nullable(z.string().openapi({ description: 'The escalation rule that matched' })),
    priority: nullable(z.number().int().openapi({ description: '1 (lowest) to 10' })),
    priority_reason: nullable(z.string()),
    sensitive: z.array(z.string()).openapi({ description: 'Kinds of sensitive data found (never the values)' }),
    language: nullable(z.string()),
    left_out: z
      .array(z.enum(['summary', 'reply_suggestion']))
      .openapi({ description: 'Optional parts left out because the queue was behind (LLM_SHED_AFTER_SEC)' }),
    reply_suggestion: nullable(z.string()),
    signals: z.record(z.string(), z.unknown()),
    keywords: z.array(z.string()).openapi({ description: 'IMAP keywords mailsight set' }),
    moved_to_folder: nullable(z.string()),
    moved_to_uid: nullable(z.number().int()),
    parse_warnings: z.array(z.string()),
    unreadable_key_id: nullable(z.string()).openapi({
      description: 'Set when the stored content cannot be opened: the id of the key it is sealed with, which is not configured. Content fields are then empty',
    }),
    model: nullable(z.string()),
    prompt_version: nullable(z.string()),
    cache_hit: z.boolean(),
    prompt_tokens: nullable(z.number().int()),
    completion_tokens: nullable(z.number().int()),
    fetch_ms: nullable(z.number().int()),
    llm_ms: nullable(z.number().int()),
    total_ms: nullable(z.number().int()),
    created_at: z.string().openapi({ format: 'date-time' }),
    updated_at: z.string().openapi({ format: 'date-time' }),
  })
  .openapi('Analysis');

export const messageSchema = z
  .object({
    mailbox: z.string(),
    folder: z.string(),
    uidvalidity: z.number().int(),
    email_id: z.number().int(),
    state: z.enum(MESSAGE_STATES as [MessageState, ...MessageState[]]),
    analysis: analysisSchema.nullable(),
    queue: z
      .object({
        state: z.string(),
        source: z.string(),
        attempts: z.number().int(),
        last_error: z.string().nullable(),
        force: z.boolean(),
        next_run_at: z.string().nullable(),
        queued_at: z.string(),
        finished_at: z.string().nullable(),
      })
      .nullable(),
    audit: z.array(
      z.object({
        at: z.string(),
        action: z.string(),
        verdict: z.string().nullable(),
        confidence: z.number().nullable(),
        rule: z.string().nullable(),
        reason: z.string().nullable(),
        details: z.record(z.string(), z.unknown()).nullable(),
      }),
    ),
  })
  .openapi('Message');

export const pageSchema = z
  .object({
    items: z.array(analysisSchema),
    next_cursor: z.string().nullable().openapi({ description: 'Pass as `cursor` for the next page; null on the last page' }),
  })
  .openapi('AnalysisPage');

export const analyzeResultSchema = z
  .object({
    mailbox: z.string(),
    folder: z.string(),
    uidvalidity: z.number().int(),
    email_id: z.number().int(),
    force: z.boolean(),
    state: z.enum(['queued', 'processing', 'analyzed']),
    queued: z.boolean(),
    new: z.boolean().optional(),
    reason: z.string().optional(),
  })
  .openapi('AnalyzeRequested');

const counts = z.record(z.string(), z.number().int());
const percentiles = z.object({ p50: z.number().nullable(), p95: z.number().nullable() });

const quality = z.object({
  feedback: z.number().int(),
  agree: z.number().int(),
  false_junk: z.number().int().openapi({ description: 'mailsight said junk, the user said legit (rescued)' }),
  missed_junk: z.number().int().openapi({ description: 'mailsight said legit or unknown, the user said junk' }),
  no_verdict: z.number().int().openapi({ description: 'feedback on a message mailsight has no verdict for' }),
  agreement: z.number().nullable().openapi({ description: 'agree / (feedback - no_verdict), 0..1; null without feedback' }),
});

export const statsSchema = z
  .object({
    mailbox: z.string().nullable(),
    since: z.string().nullable(),
    queue: z.object({ by_state: counts, depth: z.number().int(), oldest_age_sec: z.number().nullable() }),
    analyses: z.object({ by_status: counts, by_verdict: counts, by_category: counts }),
    timings_ms: z.object({
      from: z.string().openapi({ format: 'date-time', description: 'The percentiles cover the newest 2,000 analyses since then: the last 24 hours, or since `since` when that is later' }),
      processing: percentiles,
      llm: percentiles,
    }),
    content_cache: z.object({ llm_calls_saved: z.number().nullable() }),
    tokens: z.object({ prompt: z.number().nullable(), completion: z.number().nullable(), total: z.number() }),
    quality: quality
      .extend({
        by_source: z.record(z.string(), quality).openapi({ description: 'Per verdict source (model, signals, rule, …)' }),
        by_model: z.record(z.string(), quality).openapi({ description: "Per model and prompt version ('model / prompt version')" }),
        by_day: z.record(z.string(), quality).openapi({ description: 'Per UTC day the feedback was given' }),
      })
      .openapi({ description: "Users' feedback (Junk / Not junk keywords, moves into and out of Junk, the dashboard, the API) against mailsight's verdicts" }),
    timeline: z
      .object({
        minutes: z.number().int(),
        bucket_sec: z.number().int(),
        points: z.array(
          z.object({
            at: z.string().openapi({ format: 'date-time', description: 'Start of the bucket' }),
            analyzed: z.number().int(),
            failed: z.number().int(),
            by_verdict: counts,
            by_category: counts,
            llm_ms: percentiles,
          }),
        ),
      })
      .optional()
      .openapi({ description: 'With timeline_minutes: analyses per bucket over that window, oldest first' }),
  })
  .openapi('Stats');

export const preferencesSchema = z
  .object({
    username: z.string(),
    ...(Object.fromEntries(SWITCHES.map((s) => [s.name, z.boolean().openapi({ description: s.label })])) as Record<SwitchName, z.ZodBoolean>),
    summary_language: z.string().nullable(),
    stored: z.boolean().openapi({ description: 'false: never changed, these are the defaults' }),
    updated_at: z.string().nullable(),
    learned_senders: z
      .array(
        z.object({
          sender: z.string().nullable().openapi({ description: 'The address; null when it is sealed under a key that is not configured' }),
          id: z.string().openapi({ description: 'What forget_sender_ids takes' }),
          said: z.enum(FEEDBACK_SAID),
          how: z.enum(FEEDBACK_HOW),
          at: z.string(),
        }),
      )
      .openapi({ description: "Senders learned from the user's Junk / Not junk in this mailbox, newest first (learn_senders)" }),
  })
  .openapi('Preferences');

export const healthSchema = z
  .object({
    status: z.enum(['ok', 'degraded']),
    components: z.record(
      z.string(),
      z.object({ ok: z.boolean(), latencyMs: z.number(), error: z.string().optional() }).catchall(z.unknown()),
    ),
  })
  .openapi('Health');

export const eraseSchema = z
  .object({ mailbox: z.string(), deleted: z.record(z.string(), z.number().int()) })
  .openapi('Erased');

export const apiKeySchema = z
  .object({
    id: z.string(),
    mailbox: z.string(),
    name: z.string().nullable(),
    created_at: z.string(),
    last_used_at: z.string().nullable(),
    revoked_at: z.string().nullable(),
  })
  .openapi('ApiKey');

export const createdApiKeySchema = z
  .object({ id: z.string(), mailbox: z.string(), name: z.string().nullable(), key: z.string().openapi({ description: 'The key itself: shown this once, stored only as a hash' }) })
  .openapi('CreatedApiKey');
