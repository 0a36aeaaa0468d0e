import { createHash } from 'node:crypto';
import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { ContentProtection } from '../privacy/protection.js';
import { parseMessage, type ParsedMessage } from '../mail/parse.js';
import type { FinalState } from '../domain/states.js';
import type { Job } from './jobs.js';
import type { LlmClient } from './llm.js';
import { buildPrompt, PROMPT_VERSION } from './prompt.js';
import type { AnalysisResult } from './result.js';
import { keyOf } from '../domain/message-key.js';
import { DEFAULT_PREFERENCES, type Preferences } from '../domain/preferences.js';
import { FolderFilter } from '../mail/folders.js';
import { act } from './act.js';
import type { MessageSource } from './message-source.js';
import { Answers, type LlmAnswer } from './answers.js';
import { archiveAnalysis, AuditSink, type AuditEntry } from './audit.js';
import { compileRules } from './rules.js';
import { computeSignals, evidence, promptSignals, SENSITIVE_TYPE, type Evidence, type Signals } from './signals/index.js';
import { applyLearned, decideBySignals, decideVerdict, type Decision } from './verdict.js';
import { learnedAbout, type LearnedSender } from './senders.js';
import { forgetPushedHeaders } from '../queue/jobs.js';
import { followedFrom, followMessage, raiseVerdict, upsertAnalysis, type NewAnalysis } from './store.js';
import { campaignKeys, campaignTarget, campaignVerdict, joinCampaigns, markCampaign } from './campaigns.js';
import { moveFeedback } from './feedback.js';
import { isJunkFolder } from '../mail/folders.js';
import { QueueLag } from '../queue/lag.js';

/** What load shedding leaves out (LLM_SHED_AFTER_SEC), as recorded in left_out. */
export const OPTIONAL_PARTS = ['summary', 'reply_suggestion'] as const;

export type { MessageSource };

export interface PipelineDeps {
  db: Db;
  source: MessageSource;
  llm: Pick<LlmClient, 'analyse' | 'model' | 'fit'>;
  config: Pick<Config, 'processing' | 'rules' | 'actions' | 'dryRun' | 'campaigns'> & Partial<Pick<Config, 'folders'>>;
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

/** What the steps share for the life of the pipeline. */
interface Pipeline extends PipelineDeps {
  audit: AuditSink;
  ruleFor: ReturnType<typeof compileRules>;
  folders: FolderFilter | null;
  lag: QueueLag;
  answers: Answers;
}

/** One job's run through the steps. */
interface Run {
  p: Pipeline;
  job: Job;
  log: Logger;
  started: number;
  /** A person asked through the API (source `api`): overrides a skip, a rule and load shedding. */
  requested: boolean;
  prefs: Preferences;
}

/** A fetched and parsed message, with its signals and the row it will be stored as. */
interface Read {
  parsed: ParsedMessage;
  signals: Signals;
  ev: Evidence;
  row: NewAnalysis;
  /** What the mailbox's user taught about its sender (null: nothing, or learning is off). */
  learned: LearnedSender | null;
  /** Its campaign keys (campaigns.ts); none with campaign clean-up off. */
  campaignKeys: string[];
}

type Step<T> = Promise<T | JobOutcome>;
const isOutcome = (x: unknown): x is JobOutcome => typeof x === 'object' && x !== null && 'llmCalls' in x && 'state' in x;
const elapsed = (run: Run) => Math.round(performance.now() - run.started);

/**
 * The job handler: the steps below in order (decided, preferences, folder, fetch, parse and signals,
 * rules, model with the cache, store with the floor, act and audit). At most one LLM call.
 * Idempotent: a message that already has its analysis is not sent to the model again unless the job
 * says `force`. Transient failures are thrown (the worker retries them); everything else ends in an
 * outcome.
 */
export function createPipeline(deps: PipelineDeps) {
  const p: Pipeline = {
    ...deps,
    audit: deps.audit ?? new AuditSink(),
    ruleFor: compileRules(deps.config.rules),
    folders: deps.config.folders ? new FolderFilter(deps.config.folders.include, deps.config.folders.exclude) : null,
    lag: new QueueLag(deps.db),
    answers: new Answers(deps.db, deps.protection),
  };
  return async function analyseJob(job: Job): Promise<JobOutcome> {
    const run: Run = {
      p,
      job,
      log: p.logger.child({ jobId: job.id, mailbox: job.mailbox, folder: job.folder, uid: job.uid }),
      started: performance.now(),
      requested: job.source === 'api',
      prefs: (job.preferences as Preferences | null) ?? DEFAULT_PREFERENCES,
    };
    if (job.source === 'campaign') return raiseForCampaign(run);
    const early = alreadyDecided(run) ?? (await byPreferences(run)) ?? (await byFolder(run));
    if (early) return early;
    const read = await fetchAndRead(run);
    if (isOutcome(read)) return read;
    return (await bySweptMove(run, read)) ?? (await byCampaign(run, read)) ?? (await byRule(run, read)) ?? (await analyse(run, read));
  };
}

/**
 * Decided and recorded: nothing to do. Decided but not recorded (a crash after the write): go on; the
 * stored answer is found by its content hash, so the model is not asked again. Read by the claim
 * (jobs.ts JOB_CONTEXT). A person asking through the API overrides a skip; `force` an analysis.
 */
function alreadyDecided({ job, requested }: Run): JobOutcome | undefined {
  const decided = job.analysisStatus === 'analyzed' || (job.analysisStatus === 'skipped' && !requested);
  if (!job.force && decided && job.decisionRecorded) return { state: 'done', detail: 'already analysed', llmCalls: 0 };
  return undefined;
}

/** Writes the row; a forced re-analysis first copies the result it replaces into the audit trail. */
async function store({ p, job }: Run, row: NewAnalysis): Promise<void> {
  if (job.force && job.analysisStatus) await archiveAnalysis(p.db, keyOf(job), 'forced re-analysis');
  await upsertAnalysis(p.db, p.protection.protectAnalysis(row));
}

/** Opted out: nothing is kept, not even the headers the push carried. auto_analysis off: recorded as skipped. */
async function byPreferences(run: Run): Promise<JobOutcome | undefined> {
  const { p, job, prefs } = run;
  if (prefs.optOut) {
    await forgetPushedHeaders(p.db, job.id);
    return { state: 'skipped', detail: 'the user opted out', llmCalls: 0 };
  }
  if (!prefs.autoAnalysis && !run.requested) {
    const reason = 'auto_analysis is off for this mailbox';
    await store(run, { ...keyOf(job), ...headerColumns(job, p.protection), status: 'skipped', skipReason: reason, totalMs: 0 });
    return { state: 'skipped', detail: reason, llmCalls: 0 };
  }
  return undefined;
}

/**
 * The push judged the folder by its name; the server's SPECIAL-USE marks settle it (a Junk folder
 * called "Spam-Quarantäne"). INBOX is never one of them.
 */
async function byFolder({ p, job, requested }: Run): Promise<JobOutcome | undefined> {
  if (requested || !p.folders?.usesFlags || !p.source.folderFlags || job.folder.toUpperCase() === 'INBOX') return undefined;
  const flags = await p.source.folderFlags(job.mailbox, job.folder);
  const decision = p.folders.decide(job.folder, flags ?? undefined);
  return decision.analyse ? undefined : { state: 'skipped', detail: decision.reason, llmCalls: 0 };
}

/** Fetch (size-capped, BODY.PEEK), parse, the deterministic signals, and what the user taught about the sender. */
async function fetchAndRead({ p, job, prefs }: Run): Step<Read> {
  const fetched = await p.source.fetchMessage(job);
  if (fetched.status === 'gone') return { state: 'gone', detail: 'message no longer in the folder', llmCalls: 0 };
  if (fetched.status === 'stale') {
    return { state: 'stale', detail: `UIDVALIDITY of ${job.folder} is now ${fetched.uidvalidity}, was ${job.uidvalidity}`, llmCalls: 0 };
  }
  p.metrics?.imapFetchSeconds.observe(fetched.ms / 1000);
  const parsed = await parseMessage(fetched.raw, { truncatedFrom: fetched.truncated ? fetched.size : undefined });
  const signals = computeSignals(parsed);
  const ev = evidence(signals);
  const row: NewAnalysis = {
    ...keyOf(job),
    ...headerColumns(job, p.protection, parsed),
    sizeBytes: fetched.size,
    receivedAt: fetched.receivedAt,
    model: p.llm.model,
    promptVersion: PROMPT_VERSION,
    fetchMs: fetched.ms,
    signals: signals as unknown as Record<string, unknown>,
    signalReasons: ev.reasons,
  };
  const learned = prefs.learnSenders ? await learnedAbout(p.db, p.protection, job.mailbox, parsed.from?.address) : null;
  return { parsed, signals, ev, row, learned, campaignKeys: p.config.campaigns.enabled ? campaignKeys(parsed, p.protection) : [] };
}

/**
 * Mail the sweep found (source `reconcile`) that this mailbox already has an analysis of, by
 * Message-ID: the user moved or copied it here, which the OX driver does not push. The analysis
 * follows the message as it does for the Lua driver's MessageAppend (push/receive.ts): no model call
 * and no action, so a message the user dragged back out of Junk is not moved there again, and that
 * drag is their word that it is not junk. A second delivery of a message whose copy is still in
 * Junk is no move: it is analysed, and acted on, as new mail.
 */
async function bySweptMove({ p, job }: Run, read: Read): Promise<JobOutcome | undefined> {
  const messageId = read.parsed.messageId;
  if (job.source !== 'reconcile' || !messageId) return undefined;
  const key = keyOf(job);
  const from = await followedFrom(p.db, key, messageId);
  if (!from) return undefined;
  const junk = isJunkFolder(from.folder, p.config.actions.junkFolder);
  if (junk && (await p.source.hasMessage?.(job.mailbox, from.folder, from.uid))) return undefined;
  const followed = await followMessage(p.db, key, messageId);
  if (followed.kind !== 'followed') return undefined;
  const feedback = await moveFeedback(p.db, key, { protection: p.protection, messageId }, followed, p.config.actions.junkFolder);
  const detail = `followed the analysis of ${followed.from.folder} UID ${followed.from.uid}: moved or copied here by the user${feedback ? `, who said ${feedback.said}` : ''}`;
  return { state: 'done', detail, llmCalls: 0 };
}

/**
 * Escalation rules: a matching `skip` settles the message on its signals, with no LLM call. A person
 * asking through the API always gets the model's analysis.
 */
async function byRule(run: Run, read: Read): Promise<JobOutcome | undefined> {
  if (run.requested) return undefined;
  const ruled = run.p.ruleFor(read.parsed, read.signals);
  if (ruled.action !== 'skip' || !ruled.rule) {
    read.row.rule = ruled.rule?.name ?? null;
    return undefined;
  }
  const rule = ruled.rule;
  const d = applyLearned(
    rule.verdict
      ? { ...decideVerdict({ verdict: rule.verdict, confidence: 1 }, { ...read.ev, phishing: 0, spam: 0 }), verdictSource: 'rule' }
      : decideBySignals(read.ev),
    read.learned,
    read.ev,
  );
  const detail = `rule ${rule.name}`;
  await store(run, {
    ...read.row,
    status: 'skipped',
    skipReason: detail,
    rule: rule.name,
    ...verdictColumns(d),
    sensitive: sensitiveTypes(read.signals),
    totalMs: elapsed(run),
  });
  await joinCampaigns(run.p.db, keyOf(run.job), read.campaignKeys);
  const records = await actOn(run, read, d, { category: null, priority: null }, 'skipped', rule.name);
  return { state: 'skipped', detail, llmCalls: 0, records };
}

/**
 * A message of a campaign already judged phishing or scam (campaigns.ts): that verdict, with no
 * LLM call, the usual actions, and a `campaign` entry naming the message that marked it. A sender
 * this mailbox's user rescued is judged as usual (applyLearned), and a person asking through the
 * API gets the model.
 */
async function byCampaign(run: Run, read: Read): Promise<JobOutcome | undefined> {
  const { p, job } = run;
  if (run.requested) return undefined;
  const c = await campaignVerdict(p.db, keyOf(job), read.campaignKeys, p.config.campaigns.windowHours);
  if (!c) return undefined;
  const base = decideVerdict({ verdict: c.verdict, confidence: c.confidence }, read.ev);
  const why = campaignReason(c.verdict, p.config.campaigns.windowHours);
  const d = applyLearned({ ...base, verdictSource: base.verdictSource === 'model' ? 'campaign' : base.verdictSource, why }, read.learned, read.ev);
  // This mailbox's user rescued the sender: the campaign does not decide here; the model is asked as usual.
  if (d.verdictSource === 'user') return undefined;
  await store(run, { ...read.row, status: 'skipped', skipReason: 'campaign', ...verdictColumns(d), sensitive: sensitiveTypes(read.signals), totalMs: elapsed(run) });
  await joinCampaigns(p.db, keyOf(job), read.campaignKeys);
  const records = await actOn(run, read, d, { category: null, priority: null }, 'skipped', undefined);
  await p.audit.write(p.db, [{ ...keyOf(job), messageId: read.parsed.messageId, verdict: d.verdict, confidence: d.confidence, action: 'campaign', reason: why, details: { trigger: c.trigger } }]);
  p.metrics?.campaignVerdicts.inc({ when: 'later' });
  return { state: 'skipped', detail: why, llmCalls: 0, records };
}

const campaignReason = (verdict: string, windowHours: number) =>
  `verdict by campaign: another message of the same campaign (same content, or same sender and link hosts, within ${windowHours} h) was judged ${verdict}`;

/** Nothing the signals found: a campaign job acts on the stored analysis, without fetching the message. */
const NO_EVIDENCE: Evidence = { phishing: 0, spam: 0, bulk: 0, reasons: [], items: [], bulkScore: 0, bulkSigns: [] };

/**
 * A `campaign` job: an earlier message of a campaign that was judged phishing or scam since
 * (campaigns.ts markCampaign). Its stored verdict, if still legit or unknown and not rescued by its
 * user, is raised to the campaign's (verdict source `campaign`, the model's own kept), and the usual
 * actions run, or are only recorded with DRY_RUN. No fetch, no LLM call.
 */
async function raiseForCampaign(run: Run): Promise<JobOutcome> {
  const { p, job } = run;
  const key = keyOf(job);
  const t = await campaignTarget(p.db, key, p.config.campaigns.windowHours);
  if (!t) return { state: 'done', detail: 'campaign: nothing to raise', llmCalls: 0 };
  if (t.rescued) return { state: 'done', detail: 'campaign: left alone, its user said it is not junk', llmCalls: 0 };
  if (t.current !== 'legit' && t.current !== 'unknown') return { state: 'done', detail: `campaign: already judged ${t.current}`, llmCalls: 0 };
  const c = t.campaign;
  const why = campaignReason(c.verdict, p.config.campaigns.windowHours);
  const d: Decision = { ...decideVerdict({ verdict: c.verdict, confidence: c.confidence }, NO_EVIDENCE), verdictSource: 'campaign', why };
  if (!(await raiseVerdict(p.db, key, d))) return { state: 'done', detail: 'campaign: judged meanwhile', llmCalls: 0 };
  p.metrics?.campaignVerdicts.inc({ when: 'earlier' });
  const records = await act({
    db: p.db,
    source: p.source,
    audit: p.audit,
    settings: p.config.actions,
    dryRun: p.config.dryRun,
    job,
    prefs: run.prefs,
    messageId: t.messageId,
    decision: d,
    evidence: NO_EVIDENCE,
    result: { category: null, priority: null },
    decided: 'campaign',
    details: { trigger: c.trigger },
    rule: undefined,
  });
  return { state: 'done', detail: why, llmCalls: 0, records };
}

/** The act and audit steps for a decision (act.ts). */
function actOn(run: Run, read: Read, decision: Decision, result: { category?: string | null; priority?: number | null }, decided: 'analyzed' | 'skipped', rule: string | undefined) {
  const { p } = run;
  return act({
    db: p.db,
    source: p.source,
    audit: p.audit,
    settings: p.config.actions,
    dryRun: p.config.dryRun,
    job: run.job,
    prefs: run.prefs,
    messageId: read.parsed.messageId,
    decision,
    evidence: read.ev,
    result,
    decided,
    rule,
  });
}

/**
 * The model step (with the content cache), then the floor (verdict.ts), the store, act and audit.
 * Load shedding: while the queue is behind, verdicts first; what a person asked for stays whole.
 */
async function analyse(run: Run, read: Read): Promise<JobOutcome> {
  const { p, job, prefs } = run;
  const shedAfter = p.config.processing.shedAfterSec;
  const brief = shedAfter > 0 && !run.requested && (await p.lag.seconds()) >= shedAfter;
  const leftOut = brief ? OPTIONAL_PARTS.filter((part) => (part === 'summary' ? prefs.summaryEnabled : prefs.replySuggestions)) : [];
  // Cut to fit the model's context window, counted with its tokenizer: never sent larger.
  const prompted = await p.llm.fit(
    (maxBodyChars) =>
      buildPrompt(read.parsed, {
        maxBodyChars,
        replySuggestion: prefs.replySuggestions,
        summaryLanguage: prefs.summaryLanguage ?? undefined,
        signals: promptSignals(read.signals, read.ev),
        brief,
      }),
    p.config.processing.maxEmailSize,
  );
  const hash = contentHash(prompted.prompt.inputHash, p.llm.model, prefs);
  read.row.contentHash = hash;

  let answer: Awaited<ReturnType<Answers['for']>>;
  try {
    answer = await p.answers.for(hash, () => p.llm.analyse(prompted), job.force);
  } catch (err) {
    const e = err as { transient?: boolean; message?: string };
    if (e.transient !== false) throw err;
    // A permanent model failure (output unusable after the repair attempt): record it with the reason.
    // The signals still stand: the floor's verdict is stored, so strong evidence is not lost with the model.
    const d = applyLearned(decideVerdict(null, read.ev), read.learned, read.ev);
    await store(run, { ...read.row, status: 'failed', error: e.message, ...verdictColumns(d), totalMs: elapsed(run) });
    const records: AuditEntry[] = [{ ...keyOf(job), messageId: read.parsed.messageId, verdict: d.verdict, confidence: d.confidence, action: 'error', reason: e.message }];
    return { state: 'failed', detail: e.message, llmCalls: 1, records };
  }

  const d = applyLearned(decideVerdict(answer.result, read.ev), read.learned, read.ev);
  try {
    await store(run, {
      ...read.row,
      ...resultColumns(answer.result, brief ? { ...prefs, summaryEnabled: false, replySuggestions: false } : prefs),
      leftOut,
      ...verdictColumns(d),
      modelVerdict: answer.result.verdict,
      modelConfidence: answer.result.confidence,
      sensitive: [...new Set([...answer.result.sensitive, ...sensitiveTypes(read.signals)])],
      status: 'analyzed',
      error: null,
      cacheHit: answer.shared,
      promptTokens: answer.shared ? 0 : answer.usage?.promptTokens,
      completionTokens: answer.shared ? 0 : answer.usage?.completionTokens,
      llmMs: answer.shared ? 0 : answer.usage?.ms,
      totalMs: elapsed(run),
    });
  } finally {
    answer.stored();
  }
  countAnswer(p.metrics, answer);
  await joinCampaigns(p.db, keyOf(job), read.campaignKeys);
  // A phishing or scam verdict of the model or the signals marks the campaign, and reaches back.
  if ((d.verdict === 'phishing' || d.verdict === 'scam') && (d.verdictSource === 'model' || d.verdictSource === 'signals')) {
    const queued = await markCampaign(p.db, keyOf(job), read.campaignKeys, d, p.config.campaigns.windowHours);
    if (queued > 0) run.log.info({ queued, verdict: d.verdict }, 'campaign: earlier messages queued to be raised');
  }
  const records = await actOn(run, read, d, answer.result, 'analyzed', read.row.rule ?? undefined);
  run.log.debug({ verdict: d.verdict, verdictSource: d.verdictSource, cacheHit: answer.shared }, 'analysed');
  return { state: 'done', llmCalls: answer.shared ? 0 : (answer.usage?.attempts ?? 1), cacheHit: answer.shared, records };
}

function countAnswer(metrics: Metrics | undefined, answer: LlmAnswer & { shared: boolean }) {
  if (!metrics) return;
  metrics.cache.inc({ result: answer.shared ? 'hit' : 'miss' });
  if (!answer.shared && answer.usage) {
    metrics.llmSeconds.observe(answer.usage.ms / 1000);
    metrics.tokens.inc({ kind: 'prompt' }, answer.usage.promptTokens);
    metrics.tokens.inc({ kind: 'completion' }, answer.usage.completionTokens);
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


export type AnalyseJob = ReturnType<typeof createPipeline>;
