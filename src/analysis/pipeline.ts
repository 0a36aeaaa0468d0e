import { createHash } from 'node:crypto';
import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import type { userPreferences } from '../db/schema.js';
import type { Logger } from '../logger.js';
import type { FetchOutcome } from '../mail/imap.js';
import { parseMessage, type ParsedMessage } from '../mail/parse.js';
import type { FinalState, Job } from '../queue/lifecycle.js';
import type { LlmClient, LlmUsage } from './llm.js';
import { buildPrompt, PROMPT_VERSION } from './prompt.js';
import type { AnalysisResult } from './result.js';
import { findByContentHash, upsertAnalysis, type NewAnalysis } from './store.js';

/** Where the pipeline gets messages from: the IMAP sessions in production. */
export interface MessageSource {
  fetchMessage(key: Pick<Job, 'mailbox' | 'folder' | 'uidvalidity' | 'uid'>): Promise<FetchOutcome>;
}

export interface PipelineDeps {
  db: Db;
  source: MessageSource;
  llm: Pick<LlmClient, 'analyse' | 'model'>;
  config: Pick<Config, 'processing'>;
  logger: Logger;
}

export interface JobOutcome {
  state: FinalState;
  /** Why it ended so (skipped, gone, stale, failed), for the queue's last_error. */
  detail?: string;
  llmCalls: number;
  cacheHit?: boolean;
}

export type Preferences = Pick<
  typeof userPreferences.$inferSelect,
  'autoAnalysis' | 'autoCategorize' | 'phishingAlerts' | 'summaryEnabled' | 'replySuggestions' | 'summaryLanguage'
>;

export const DEFAULT_PREFERENCES: Preferences = {
  autoAnalysis: true,
  autoCategorize: true,
  phishingAlerts: true,
  summaryEnabled: true,
  replySuggestions: false,
  summaryLanguage: null,
};

type ResultColumns = Pick<
  NewAnalysis,
  | 'summary'
  | 'category'
  | 'tags'
  | 'verdict'
  | 'confidence'
  | 'reasons'
  | 'isSpam'
  | 'isPhishing'
  | 'priority'
  | 'priorityReason'
  | 'sensitive'
  | 'language'
  | 'replySuggestion'
>;

/** What the user's preferences let us store of a model result. */
export function resultColumns(r: AnalysisResult, prefs: Preferences): ResultColumns {
  return {
    summary: prefs.summaryEnabled ? r.summary : null,
    category: prefs.autoCategorize ? r.category : null,
    tags: prefs.autoCategorize ? r.tags : [],
    verdict: r.verdict,
    confidence: r.confidence,
    reasons: r.reasons,
    isSpam: r.verdict === 'spam' || r.verdict === 'scam',
    isPhishing: r.verdict === 'phishing',
    priority: r.priority,
    priorityReason: r.priority_reason,
    sensitive: r.sensitive,
    language: r.language,
    replySuggestion: prefs.replySuggestions ? r.reply_suggestion : null,
  };
}

/**
 * The content cache key: the same prompt to the same model and prompt version gives the same answer
 * (temperature 0), and the same preferences store the same columns of it.
 */
export function contentHash(inputHash: string, model: string, prefs: Preferences): string {
  const profile = `${prefs.summaryEnabled ? 1 : 0}${prefs.autoCategorize ? 1 : 0}`;
  return createHash('sha256').update(`${inputHash}\0${model}\0${PROMPT_VERSION}\0${profile}`).digest('hex');
}

function headerColumns(job: Job, parsed?: ParsedMessage): Partial<NewAnalysis> {
  if (!parsed) {
    // Not fetched: what the push said (already decoded on receipt).
    const from = job.fromHeader ?? undefined;
    const address = from ? (/<([^>]+)>/.exec(from)?.[1] ?? from) : undefined;
    return { messageId: job.messageId, fromAddress: address, subject: job.subject };
  }
  return {
    messageId: parsed.messageId ?? job.messageId,
    fromAddress: parsed.from?.address,
    fromName: parsed.from?.name,
    subject: parsed.subject ?? job.subject,
    sentAt: parsed.date,
    sizeBytes: parsed.sizeBytes,
    parseWarnings: parsed.warnings,
  };
}

type LlmAnswer = { result: AnalysisResult; usage: LlmUsage | null };

/**
 * The job handler: fetch, parse, at most one LLM call, store. Idempotent: a message that already
 * has its analysis is not sent to the model again unless the job says `force`. Transient failures
 * are thrown (the worker retries them); everything else ends in an outcome.
 */
export function createPipeline(deps: PipelineDeps) {
  const { db, source, llm, config, logger } = deps;
  /** Identical content being analysed right now: later copies wait for the first call. */
  const inFlight = new Map<string, Promise<LlmAnswer>>();

  async function cached(hash: string): Promise<LlmAnswer | null> {
    const row = await findByContentHash(db, hash);
    if (!row) return null;
    // The row holds what its preferences kept; the hash includes those preferences, so it is complete.
    const result = {
      summary: row.summary ?? '',
      category: row.category ?? 'other',
      tags: row.tags,
      verdict: row.verdict,
      confidence: row.confidence ?? 0,
      reasons: row.reasons,
      priority: row.priority ?? 5,
      priority_reason: row.priorityReason ?? '',
      sensitive: row.sensitive,
      language: row.language ?? '',
      reply_suggestion: row.replySuggestion,
    } as AnalysisResult;
    return { result, usage: null };
  }

  /**
   * The answer for this content: from a copy being analysed right now in this process, from a stored
   * row, or from the model. The caller that asked the model calls `stored()` once its row is written,
   * so a copy arriving in between finds the row instead of asking again.
   */
  async function answerFor(
    hash: string,
    run: () => Promise<LlmAnswer>,
    fresh: boolean,
  ): Promise<LlmAnswer & { shared: boolean; stored: () => void }> {
    const noop = () => {};
    const pending = inFlight.get(hash);
    if (pending) return { ...(await pending), shared: true, stored: noop };
    // Registered before the first await: a copy that arrives while we look in the table waits for us.
    // A forced re-analysis asks the model again instead of reusing the stored answer.
    const p = fresh ? run() : cached(hash).then((hit) => hit ?? run());
    inFlight.set(hash, p);
    const stored = () => {
      if (inFlight.get(hash) === p) inFlight.delete(hash);
    };
    try {
      const answer = await p;
      return { ...answer, shared: answer.usage === null, stored };
    } catch (err) {
      stored();
      throw err;
    }
  }

  return async function analyseJob(job: Job): Promise<JobOutcome> {
    const started = performance.now();
    const log = logger.child({ jobId: job.id, mailbox: job.mailbox, folder: job.folder, uid: job.uid });

    // Read by the claim, in the same statement: the message's stored analysis and the mailbox's preferences.
    if (!job.force && job.analysisStatus && job.analysisStatus !== 'failed') return { state: 'done', detail: 'already analysed', llmCalls: 0 };
    const prefs = (job.preferences as Preferences | null) ?? DEFAULT_PREFERENCES;
    const base = { mailbox: job.mailbox, folder: job.folder, uidvalidity: job.uidvalidity, uid: job.uid };
    if (!prefs.autoAnalysis) {
      const reason = 'auto_analysis is off for this mailbox';
      await upsertAnalysis(db, { ...base, ...headerColumns(job), status: 'skipped', skipReason: reason, totalMs: 0 });
      return { state: 'skipped', detail: reason, llmCalls: 0 };
    }

    const fetched = await source.fetchMessage(job);
    if (fetched.status === 'gone') return { state: 'gone', detail: 'message no longer in the folder', llmCalls: 0 };
    if (fetched.status === 'stale') {
      return { state: 'stale', detail: `UIDVALIDITY of ${job.folder} is now ${fetched.uidvalidity}, was ${job.uidvalidity}`, llmCalls: 0 };
    }

    const parsed = await parseMessage(fetched.raw, { truncatedFrom: fetched.truncated ? fetched.size : undefined });
    const prompt = buildPrompt(parsed, {
      maxBodyChars: config.processing.maxEmailSize,
      replySuggestion: prefs.replySuggestions,
      summaryLanguage: prefs.summaryLanguage ?? undefined,
    });
    const hash = contentHash(prompt.inputHash, llm.model, prefs);
    const row: NewAnalysis = {
      ...base,
      ...headerColumns(job, parsed),
      sizeBytes: fetched.size,
      model: llm.model,
      promptVersion: PROMPT_VERSION,
      contentHash: hash,
      fetchMs: fetched.ms,
    };

    let answer: Awaited<ReturnType<typeof answerFor>>;
    try {
      answer = await answerFor(hash, () => llm.analyse(prompt), job.force);
    } catch (err) {
      const e = err as { transient?: boolean; message?: string };
      if (e.transient !== false) throw err;
      // A permanent model failure (output unusable after the repair attempt): record it with the reason.
      await upsertAnalysis(db, { ...row, status: 'failed', error: e.message, totalMs: Math.round(performance.now() - started) });
      return { state: 'failed', detail: e.message, llmCalls: 1 };
    }

    try {
      await upsertAnalysis(db, {
        ...row,
        ...resultColumns(answer.result, prefs),
        status: 'analyzed',
        error: null,
        cacheHit: answer.shared,
        promptTokens: answer.shared ? 0 : answer.usage?.promptTokens,
        completionTokens: answer.shared ? 0 : answer.usage?.completionTokens,
        llmMs: answer.shared ? 0 : answer.usage?.ms,
        totalMs: Math.round(performance.now() - started),
      });
    } finally {
      answer.stored();
    }
    log.debug({ verdict: answer.result.verdict, cacheHit: answer.shared }, 'analysed');
    return { state: 'done', llmCalls: answer.shared ? 0 : (answer.usage?.attempts ?? 1), cacheHit: answer.shared };
  };
}

export type AnalyseJob = ReturnType<typeof createPipeline>;
