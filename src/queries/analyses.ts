import { and, asc, desc, eq, gt, gte, lt, lte, sql, type SQL } from 'drizzle-orm';
import { keyMatches } from '../domain/message-key.js';
import type { MessageState, Verdict, VerdictSource } from '../domain/states.js';
import type { Db } from '../db/client.js';
import { auditLog, emailAnalysis, processingQueue } from '../db/schema.js';
import { AppError } from '../http/errors.js';
import type { ContentProtection } from '../privacy/protection.js';
import type { CATEGORIES, VERDICTS } from '../analysis/result.js';

/** Reading analyses for the API: one message with its state, or a page of a mailbox's analyses. */

type AnalysisRow = typeof emailAnalysis.$inferSelect;
type QueueRow = typeof processingQueue.$inferSelect;

/** The API's view of an analysis row: the table's snake_case names, the UID as the seed's `email_id`. */
export function analysisJson(r: AnalysisRow & { unreadableKeyId?: string | null }) {
  return {
    id: r.id,
    mailbox: r.mailbox,
    folder: r.folder,
    uidvalidity: r.uidvalidity,
    email_id: r.uid,
    status: r.status as 'analyzed' | 'skipped' | 'failed',
    skip_reason: r.skipReason,
    error: r.error,
    message_id: r.messageId,
    from_address: r.fromAddress,
    from_name: r.fromName,
    subject: r.subject,
    date: r.sentAt?.toISOString() ?? null,
    received_at: r.receivedAt.toISOString(),
    size_bytes: r.sizeBytes,
    summary: r.summary,
    category: r.category as (typeof CATEGORIES)[number] | null,
    tags: r.tags,
    verdict: r.verdict as (typeof VERDICTS)[number] | null,
    confidence: r.confidence,
    is_spam: r.isSpam,
    is_phishing: r.isPhishing,
    reasons: r.reasons,
    signal_reasons: r.signalReasons,
    phishing_score: r.phishingScore,
    verdict_source: r.verdictSource as VerdictSource | null,
    rule: r.rule,
    priority: r.priority,
    priority_reason: r.priorityReason,
    sensitive: r.sensitive,
    language: r.language,
    reply_suggestion: r.replySuggestion,
    signals: r.signals,
    keywords: r.keywords,
    left_out: r.leftOut as ('summary' | 'reply_suggestion')[],
    moved_to_folder: r.movedToFolder,
    moved_to_uid: r.movedToUid,
    parse_warnings: r.parseWarnings,
    unreadable_key_id: r.unreadableKeyId ?? null,
    model: r.model,
    prompt_version: r.promptVersion,
    cache_hit: r.cacheHit,
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    fetch_ms: r.fetchMs,
    llm_ms: r.llmMs,
    total_ms: r.totalMs,
    created_at: r.createdAt.toISOString(),
    updated_at: r.updatedAt.toISOString(),
  };
}

function queueJson(q: QueueRow) {
  return {
    state: q.state,
    source: q.source,
    attempts: q.attempts,
    last_error: q.lastError,
    force: q.force,
    next_run_at: q.state === 'queued' ? q.runAt.toISOString() : null,
    queued_at: q.createdAt.toISOString(),
    finished_at: q.finishedAt?.toISOString() ?? null,
  };
}

/**
 * The one state a caller wants to know: a job waiting or running wins (a forced re-analysis keeps
 * the old result visible meanwhile), then the stored analysis, then how the job ended.
 */

function stateOf(q: QueueRow | undefined, a: AnalysisRow | undefined): MessageState {
  if (q && (q.state === 'queued' || q.state === 'processing')) return q.state;
  if (a) return a.status;
  return q?.state ?? 'done';
}

export interface MessageRef {
  mailbox: string;
  folder: string;
  uid: number;
  /** Omitted: the folder's current UIDVALIDITY as mailsight knows it (the seed's (mailbox, uid) pair). */
  uidvalidity?: number;
}

/**
 * The folder's current UIDVALIDITY as far as mailsight knows: the highest one on record (RFC 3501
 * makes a new UIDVALIDITY greater than the one before). Two index-only lookups on the message keys.
 */
export async function knownUidvalidity(db: Db, ref: Pick<MessageRef, 'mailbox' | 'folder'>): Promise<number | undefined> {
  const [row] = await db.rows<{ uidvalidity: string | number | null }>(sql`
    select greatest(
      (select max(uidvalidity) from llm_processing_queue where mailbox = ${ref.mailbox} and folder = ${ref.folder}),
      (select max(uidvalidity) from llm_email_analysis where mailbox = ${ref.mailbox} and folder = ${ref.folder})
    ) as uidvalidity`);
  return row?.uidvalidity == null ? undefined : Number(row.uidvalidity);
}

const keyOf = <T extends typeof processingQueue | typeof emailAnalysis | typeof auditLog>(t: T, k: Required<MessageRef>) => keyMatches(t, k);

/**
 * A campaign's audit entry names the message that marked the campaign. Another mailbox's name is
 * shown to the admin only: a mailbox's user learns that another mailbox had it, not which.
 */
function auditDetails(mailbox: string, details: Record<string, unknown> | null, showOtherMailboxes: boolean) {
  const trigger = details?.trigger as { mailbox?: string } | undefined;
  if (!trigger || showOtherMailboxes || trigger.mailbox === mailbox) return details;
  return { ...details, trigger: 'a message in another mailbox' };
}

/** One message: its state, its analysis if any, its queue entry and its audit trail. 404 when never heard of. */
export async function getMessage(db: Db, ref: MessageRef, protection: ContentProtection, opts: { showOtherMailboxes?: boolean } = {}) {
  const uidvalidity = ref.uidvalidity ?? (await knownUidvalidity(db, ref));
  const notFound = () =>
    new AppError('NOT_FOUND', `mailsight has no record of UID ${ref.uid} in ${ref.folder} of ${ref.mailbox}`);
  if (uidvalidity === undefined) throw notFound();
  const key = { ...ref, uidvalidity };
  const [[q], [a], audit] = await Promise.all([
    db.orm.select().from(processingQueue).where(keyOf(processingQueue, key)),
    db.orm.select().from(emailAnalysis).where(keyOf(emailAnalysis, key)),
    db.orm.select().from(auditLog).where(keyOf(auditLog, key)).orderBy(asc(auditLog.id)),
  ]);
  if (!q && !a) throw notFound();
  return {
    mailbox: key.mailbox,
    folder: key.folder,
    uidvalidity,
    email_id: key.uid,
    state: stateOf(q, a),
    analysis: a ? analysisJson(protection.revealAnalysisForDisplay(a)) : null,
    queue: q ? queueJson(q) : null,
    audit: audit.map((e) => ({
      at: e.at.toISOString(),
      action: e.action,
      verdict: e.verdict,
      confidence: e.confidence,
      rule: e.rule,
      reason: e.reason,
      details: auditDetails(e.mailbox, protection.revealAuditDetails(e.mailbox, e.details ?? null), opts.showOtherMailboxes ?? false),
    })),
  };
}

export interface ListFilter {
  mailbox: string;
  folder?: string;
  category?: string;
  verdict?: Verdict;
  isPhishing?: boolean;
  minPriority?: number;
  sensitive?: boolean;
  since?: Date;
  until?: Date;
  limit: number;
  cursor?: string;
  /**
   * `analysed` (the API's order): newest analysis first, `since`/`until` on the time of analysis.
   * `received` (the dashboard's): the message the server received last first, dates on that time.
   */
  order?: 'analysed' | 'received';
}

/**
 * The cursor is where the last row stands in the order: its id (ids only grow, so rows inserted
 * while a caller pages through land before its cursor and never shift a page), and in the received
 * order its time of receipt with the id. Every row present at the start is seen once.
 */
export const encodeCursor = (id: number) => Buffer.from(`a:${id}`).toString('base64url');
const encodeReceivedCursor = (at: Date, id: number) => Buffer.from(`r:${at.getTime()}:${id}`).toString('base64url');

export function decodeCursor(cursor: string): number | null {
  const m = /^a:(\d{1,18})$/.exec(Buffer.from(cursor, 'base64url').toString());
  return m ? Number(m[1]) : null;
}

function decodeReceivedCursor(cursor: string): { at: Date; id: number } | null {
  const m = /^r:(-?\d{1,15}):(\d{1,18})$/.exec(Buffer.from(cursor, 'base64url').toString());
  return m ? { at: new Date(Number(m[1])), id: Number(m[2]) } : null;
}

/** A page of a mailbox's analyses, newest first (by analysis, or by receipt: `order`). */
export async function listAnalyses(db: Db, f: ListFilter, protection: ContentProtection) {
  const t = emailAnalysis;
  const received = f.order === 'received';
  const where: (SQL | undefined)[] = [eq(t.mailbox, f.mailbox)];
  if (f.cursor !== undefined) {
    if (received) {
      const before = decodeReceivedCursor(f.cursor);
      if (before === null) throw new AppError('VALIDATION_FAILED', 'cursor: not a cursor this page returned');
      where.push(sql`(${t.receivedAt}, ${t.id}) < (${before.at.toISOString()}::timestamptz, ${before.id})`);
    } else {
      const before = decodeCursor(f.cursor);
      if (before === null) throw new AppError('VALIDATION_FAILED', 'cursor: not a cursor this API returned');
      where.push(lt(t.id, before));
    }
  }
  if (f.folder !== undefined) where.push(eq(t.folder, f.folder));
  if (f.category !== undefined) where.push(eq(t.category, f.category));
  if (f.verdict !== undefined) where.push(eq(t.verdict, f.verdict));
  if (f.isPhishing !== undefined) where.push(eq(t.isPhishing, f.isPhishing));
  if (f.minPriority !== undefined) where.push(gte(t.priority, f.minPriority));
  if (f.sensitive !== undefined) where.push(f.sensitive ? gt(sql`jsonb_array_length(${t.sensitive})`, 0) : eq(sql`jsonb_array_length(${t.sensitive})`, 0));
  const when = received ? t.receivedAt : t.createdAt;
  if (f.since !== undefined) where.push(gte(when, f.since));
  if (f.until !== undefined) where.push(lte(when, f.until));
  const rows = await db.orm
    .select()
    .from(t)
    .where(and(...where))
    .orderBy(...(received ? [desc(t.receivedAt), desc(t.id)] : [desc(t.id)]))
    .limit(f.limit + 1);
  const page = rows.slice(0, f.limit);
  const last = page[page.length - 1];
  return {
    items: page.map((r) => analysisJson(protection.revealAnalysisForDisplay(r))),
    next_cursor: rows.length > f.limit && last ? (received ? encodeReceivedCursor(last.receivedAt, last.id) : encodeCursor(last.id)) : null,
  };
}
