import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { ContentProtection } from '../privacy/protection.js';
import type { FetchOutcome } from '../mail/imap.js';
import { parseMessage, type ParsedMessage } from '../mail/parse.js';
import type { FinalState } from '../domain/states.js';
import type { Job } from './jobs.js';
import type { LlmClient, LlmUsage } from './llm.js';
import { buildPrompt, PROMPT_VERSION } from './prompt.js';
import type { AnalysisResult } from './result.js';
import { errorText } from '../logger.js';
import { keyEquals, keyOf, type MessageKey } from '../domain/message-key.js';
import { DEFAULT_PREFERENCES, type Preferences } from '../domain/preferences.js';
import { FolderFilter } from '../mail/folders.js';
import { planActions, type ActHooks, type ActionPlan, type ActOutcome } from '../mail/actions.js';
import { archiveAnalysis, AuditSink, type AuditEntry } from './audit.js';
import { compileRules } from './rules.js';
import { computeSignals, evidence, promptSignals, SENSITIVE_TYPE, type Evidence, type Signals } from './signals/index.js';
import { decideVerdict, type Decision } from './verdict.js';
import { forgetPushedHeaders } from '../queue/jobs.js';
import { findByContentHash, upsertAnalysis, type NewAnalysis } from './store.js';
import { QueueLag } from '../queue/lag.js';

/** What load shedding leaves out (LLM_SHED_AFTER_SEC), as recorded in left_out. */
export const OPTIONAL_PARTS = ['summary', 'reply_suggestion'] as const;

/** Where the pipeline gets messages from, and acts on them: the IMAP sessions in production. */
export interface MessageSource {
  fetchMessage(key: MessageKey): Promise<FetchOutcome>;
  act?(key: MessageKey, plan: ActionPlan, hooks?: ActHooks): Promise<ActOutcome>;
  /** The folder's SPECIAL-USE flags ([] for none, null: no such folder). */
  folderFlags?(mailbox: string, folder: string): Promise<string[] | null>;
}

export interface PipelineDeps {
  db: Db;
  source: MessageSource;
  llm: Pick<LlmClient, 'analyse' | 'model' | 'fit'>;
  config: Pick<Config, 'processing' | 'rules' | 'actions' | 'dryRun'> & Partial<Pick<Config, 'folders'>>;
  logger: Logger;
  metrics?: Metrics;
  protection: ContentProtection;
  /** Where decisions and actions are recorded (the table, and AUDIT_FILE). */
  audit?: AuditSink;
}

export interface JobOutcome {
  state: FinalState;
  /** Decisions to record with the job's end (jobs.ts FINISH_WRITES). */
  records?: AuditEntry[];
  /** Why it ended so (skipped, gone, stale, failed), for the queue's last_error. */
  detail?: string;
  llmCalls: number;
  cacheHit?: boolean;
}

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

function headerColumns(job: Job, protection: ContentProtection, parsed?: ParsedMessage): Partial<NewAnalysis> {
  if (!parsed) {
    // Not fetched: what the push said (already decoded on receipt).
    const pushed = protection.revealQueueHeaders(job);
    const from = pushed.fromHeader ?? undefined;
    const address = from ? (/<([^>]+)>/.exec(from)?.[1] ?? from) : undefined;
    return { messageId: job.messageId, fromAddress: address, subject: pushed.subject };
  }
  return {
    messageId: parsed.messageId ?? job.messageId,
    fromAddress: parsed.from?.address,
    fromName: parsed.from?.name,
    subject: parsed.subject ?? protection.revealQueueHeaders(job).subject,
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
  const { db, source, llm, config, logger, metrics, protection } = deps;
  const audit = deps.audit ?? new AuditSink();
  const ruleFor = compileRules(config.rules);
  const folders = config.folders ? new FolderFilter(config.folders.include, config.folders.exclude) : null;
  const lag = new QueueLag(db);
  /** Identical content being analysed right now: later copies wait for the first call. */
  const inFlight = new Map<string, Promise<LlmAnswer>>();

  async function cached(hash: string): Promise<LlmAnswer | null> {
    const found = await findByContentHash(db, hash);
    if (!found) return null;
    const row = protection.revealAnalysis(found);
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
    // A person asking through the API (source `api`) overrides a skip; `force` overrides an analysis.
    const requested = job.source === 'api';
    const decided = job.analysisStatus === 'analyzed' || (job.analysisStatus === 'skipped' && !requested);
    // Decided and recorded: nothing to do. Decided but not recorded (a crash after the write): go on;
    // the stored answer is found by its content hash, so the model is not asked again.
    if (!job.force && decided && job.decisionRecorded) return { state: 'done', detail: 'already analysed', llmCalls: 0 };
    const prefs = (job.preferences as Preferences | null) ?? DEFAULT_PREFERENCES;
    const base = keyOf(job);
    /** Writes the row; a forced re-analysis first copies the result it replaces into the audit trail. */
    const store = async (row: NewAnalysis) => {
      if (job.force && job.analysisStatus) await archiveAnalysis(db, base, 'forced re-analysis');
      await upsertAnalysis(db, protection.protectAnalysis(row));
    };
    if (prefs.optOut) {
      await forgetPushedHeaders(db, job.id);
      return { state: 'skipped', detail: 'the user opted out', llmCalls: 0 };
    }
    if (!prefs.autoAnalysis && !requested) {
      const reason = 'auto_analysis is off for this mailbox';
      await store({ ...base, ...headerColumns(job, protection), status: 'skipped', skipReason: reason, totalMs: 0 });
      return { state: 'skipped', detail: reason, llmCalls: 0 };
    }

    // The push judged the folder by its name; the server's SPECIAL-USE marks settle it (a Junk folder
    // called "Spam-Quarantäne"). INBOX is never one of them.
    if (!requested && folders?.usesFlags && source.folderFlags && job.folder.toUpperCase() !== 'INBOX') {
      const flags = await source.folderFlags(job.mailbox, job.folder);
      const decision = folders.decide(job.folder, flags ?? undefined);
      if (!decision.analyse) return { state: 'skipped', detail: decision.reason, llmCalls: 0 };
    }

    const fetched = await source.fetchMessage(job);
    if (fetched.status === 'ok') metrics?.imapFetchSeconds.observe(fetched.ms / 1000);
    if (fetched.status === 'gone') return { state: 'gone', detail: 'message no longer in the folder', llmCalls: 0 };
    if (fetched.status === 'stale') {
      return { state: 'stale', detail: `UIDVALIDITY of ${job.folder} is now ${fetched.uidvalidity}, was ${job.uidvalidity}`, llmCalls: 0 };
    }

    const parsed = await parseMessage(fetched.raw, { truncatedFrom: fetched.truncated ? fetched.size : undefined });
    const signals = computeSignals(parsed);
    const ev = evidence(signals);
    const row: NewAnalysis = {
      ...base,
      ...headerColumns(job, protection, parsed),
      sizeBytes: fetched.size,
      model: llm.model,
      promptVersion: PROMPT_VERSION,
      fetchMs: fetched.ms,
      signals: signals as unknown as Record<string, unknown>,
      signalReasons: ev.reasons,
    };

    // Escalation rules: a matching `skip` settles the message on its signals, with no LLM call.
    // A person asking through the API always gets the model's analysis.
    const ruled = requested ? { action: 'analyze' as const } : ruleFor(parsed, signals);
    if (ruled.action === 'skip' && ruled.rule) {
      const rule = ruled.rule;
      const d: Decision = rule.verdict
        ? { ...decideVerdict({ verdict: rule.verdict, confidence: 1 }, { ...ev, phishing: 0, spam: 0 }), verdictSource: 'rule' }
        : decideVerdict(null, ev);
      const detail = `rule ${rule.name}`;
      await store({
        ...row,
        status: 'skipped',
        skipReason: detail,
        rule: rule.name,
        ...verdictColumns(d),
        sensitive: sensitiveTypes(signals),
        totalMs: Math.round(performance.now() - started),
      });
      const audit = await afterDecision(job, prefs, parsed.messageId, d, ev, { category: null, priority: null }, 'skipped', rule.name);
      return { state: 'skipped', detail, llmCalls: 0, records: audit };
    }

    // Load shedding: while the queue is behind, verdicts first; what a person asked for stays whole.
    const shedAfter = config.processing.shedAfterSec;
    const brief = shedAfter > 0 && !requested && (await lag.seconds()) >= shedAfter;
    const leftOut = brief ? OPTIONAL_PARTS.filter((part) => (part === 'summary' ? prefs.summaryEnabled : prefs.replySuggestions)) : [];
    // Cut to fit the model's context window, counted with its tokenizer: never sent larger.
    const prompted = await llm.fit(
      (maxBodyChars) =>
        buildPrompt(parsed, {
          maxBodyChars,
          replySuggestion: prefs.replySuggestions,
          summaryLanguage: prefs.summaryLanguage ?? undefined,
          signals: promptSignals(signals, ev),
          brief,
        }),
      config.processing.maxEmailSize,
    );
    const prompt = prompted.prompt;
    const hash = contentHash(prompt.inputHash, llm.model, prefs);
    row.contentHash = hash;
    row.rule = ruled.rule?.name ?? null;

    let answer: Awaited<ReturnType<typeof answerFor>>;
    try {
      answer = await answerFor(hash, () => llm.analyse(prompted), job.force);
    } catch (err) {
      const e = err as { transient?: boolean; message?: string };
      if (e.transient !== false) throw err;
      // A permanent model failure (output unusable after the repair attempt): record it with the reason.
      // The signals still stand: the floor's verdict is stored, so strong evidence is not lost with the model.
      const d = decideVerdict(null, ev);
      await store({ ...row, status: 'failed', error: e.message, ...verdictColumns(d), totalMs: Math.round(performance.now() - started) });
      const entries: AuditEntry[] = [{ ...base, messageId: parsed.messageId, verdict: d.verdict, confidence: d.confidence, action: 'error', reason: e.message }];
      return { state: 'failed', detail: e.message, llmCalls: 1, records: entries };
    }

    const d = decideVerdict(answer.result, ev);
    try {
      await store({
        ...row,
        ...resultColumns(answer.result, brief ? { ...prefs, summaryEnabled: false, replySuggestions: false } : prefs),
        leftOut,
        ...verdictColumns(d),
        sensitive: [...new Set([...answer.result.sensitive, ...sensitiveTypes(signals)])],
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
    if (metrics) {
      metrics.cache.inc({ result: answer.shared ? 'hit' : 'miss' });
      if (!answer.shared && answer.usage) {
        metrics.llmSeconds.observe(answer.usage.ms / 1000);
        metrics.tokens.inc({ kind: 'prompt' }, answer.usage.promptTokens);
        metrics.tokens.inc({ kind: 'completion' }, answer.usage.completionTokens);
      }
    }
    const entries = await afterDecision(job, prefs, parsed.messageId, d, ev, answer.result, 'analyzed', ruled.rule?.name);
    log.debug({ verdict: d.verdict, verdictSource: d.verdictSource, cacheHit: answer.shared }, 'analysed');
    return { state: 'done', llmCalls: answer.shared ? 0 : (answer.usage?.attempts ?? 1), cacheHit: answer.shared, records: entries };
  };

  /**
   * Carries out (or, with DRY_RUN, only plans) the mailbox actions a decision calls for, and returns
   * the audit entries for the job's end. When a mailbox was changed, its entries are written at
   * once instead: that record must not depend on the job's end. An action that fails is recorded;
   * the analysis stands and the job still ends.
   */
  async function afterDecision(
    job: Job,
    prefs: Preferences,
    messageId: string | undefined,
    d: Decision,
    ev: Evidence,
    result: { category?: string | null; priority?: number | null },
    decided: 'analyzed' | 'skipped',
    rule: string | undefined,
  ): Promise<AuditEntry[]> {
    const key = keyOf(job);
    const common = { ...key, messageId, verdict: d.verdict, confidence: d.confidence, rule };
    // Reasons from the signals only: the model's reasons may quote the message, and the trail is not sealed.
    const why = d.verdictSource === 'model' ? 'verdict by the model' : `verdict by ${d.verdictSource}${ev.reasons.length ? `: ${ev.reasons.slice(0, 3).join('; ')}` : ''}`;
    const entries: AuditEntry[] = [{ ...common, action: decided, reason: why }];
    const plan = planActions(d, result, prefs, config.actions, job.folder);
    let acted = false;
    if (plan.keywords.length === 0 && !plan.moveToJunk) {
      entries.push({ ...common, action: 'kept', reason: 'no action for this verdict' });
    } else if (config.dryRun || !source.act) {
      if (plan.keywords.length) entries.push({ ...common, action: 'would_flag', reason: `DRY_RUN: keywords ${plan.keywords.join(' ')}` });
      if (plan.moveToJunk) entries.push({ ...common, action: 'would_move', reason: `DRY_RUN: to the Junk folder${plan.markSeen ? ', marked read' : ''}` });
    } else {
      acted = true;
      // The move is recorded before it is made: its MessageAppend push (and the source's expunge) can
      // arrive before the MOVE returns, and must find it (push/receive.ts, queue/jobs.ts markExpunged).
      const hooks: ActHooks = { beforeMove: (target) => recordMoving(db, key, target) };
      try {
        const out = await source.act(key, plan, hooks);
        if (out.status === 'done') {
          if (out.keywords.length) entries.push({ ...common, action: 'flagged', reason: `keywords ${out.keywords.join(' ')}` });
          if (out.movedTo) {
            entries.push({ ...common, action: 'moved', reason: `to ${out.movedTo.folder}${out.movedTo.uid ? ` as UID ${out.movedTo.uid}` : ''}`, details: { folder: out.movedTo.folder, uid: out.movedTo.uid ?? null } });
          }
          await recordActions(db, key, out.keywords, out.movedTo);
        } else {
          const reason = out.status === 'gone' ? 'the message is no longer in the folder' : `UIDVALIDITY of ${job.folder} changed`;
          entries.push({ ...common, action: plan.moveToJunk ? 'move_failed' : 'error', reason });
        }
      } catch (err) {
        entries.push({ ...common, action: plan.moveToJunk ? 'move_failed' : 'error', reason: errorText(err) });
      }
      if (!entries.some((e) => e.action === 'moved')) await clearMoving(db, key);
    }
    if (!acted) return entries;
    await audit.write(db, entries);
    return [];
  }
}

function verdictColumns(d: Decision): Partial<NewAnalysis> {
  return {
    verdict: d.verdict,
    confidence: d.confidence,
    isSpam: d.isSpam,
    isPhishing: d.isPhishing,
    phishingScore: d.phishingScore,
    verdictSource: d.verdictSource,
  };
}

/** The sensitive-data detectors' findings as the result's sensitive types. */
function sensitiveTypes(s: Signals): string[] {
  return Object.keys(s.sensitive).map((k) => SENSITIVE_TYPE[k as keyof typeof SENSITIVE_TYPE]);
}


/**
 * Where the message went and which keywords it got, on its analysis row. The UID in the new folder
 * comes from COPYUID, or else from the move's own push, which may have recorded it already.
 */
async function recordActions(db: Db, key: MessageKey, keywords: string[], movedTo?: { folder: string; uid?: number }) {
  await db.rows(sql`
    update llm_email_analysis
       set keywords = array(select jsonb_array_elements_text(${JSON.stringify(keywords)}::jsonb)),
           moved_to_folder = ${movedTo?.folder ?? null},
           moved_to_uid = case when ${movedTo?.folder ?? null}::text is null then null else coalesce(${movedTo?.uid ?? null}::bigint, moved_to_uid) end,
           updated_at = now()
     where ${keyEquals(key)}
    returning id`);
}

/** The move about to be made (the UID there is not known yet). */
async function recordMoving(db: Db, key: MessageKey, target: string) {
  await db.rows(sql`update llm_email_analysis set moved_to_folder = ${target}, moved_to_uid = null, updated_at = now() where ${keyEquals(key)} returning id`);
}

/** A move that did not happen: unless its push arrived (then it did), the row says the message stayed. */
async function clearMoving(db: Db, key: MessageKey) {
  await db.rows(sql`update llm_email_analysis set moved_to_folder = null, updated_at = now() where ${keyEquals(key)} and moved_to_folder is not null and moved_to_uid is null returning id`);
}

export type AnalyseJob = ReturnType<typeof createPipeline>;
