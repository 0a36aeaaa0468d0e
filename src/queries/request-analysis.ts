import { sql, type SQL } from 'drizzle-orm';
import { lit } from '../domain/states.js';
import { keyEquals } from '../domain/message-key.js';
import { txRows, type Db } from '../db/client.js';
import { AppError } from '../http/errors.js';
import type { Logger } from '../logger.js';
import { errorText } from '../logger.js';
import { SOURCE_PRIORITY } from '../queue/jobs.js';
import { knownUidvalidity } from './analyses.js';
import { writeAudit } from '../analysis/audit.js';

/** Where the current UIDVALIDITY and UIDNEXT of a folder come from: the IMAP sessions. */
export interface FolderStatusSource {
  readonly configured: boolean;
  folderStatus(mailbox: string, folder: string): Promise<{ uidValidity: number; uidNext: number } | null>;
}

export interface AnalyzeRequest {
  mailbox: string;
  folder: string;
  uid: number;
  force: boolean;
  /** Who asked, for the audit trail. */
  actor: string;
}

/**
 * The folder's current UIDVALIDITY, from the server when it can be asked (and a UID past UIDNEXT is
 * refused there); otherwise the one mailsight knows for the folder.
 */
async function currentUidvalidity(db: Db, imap: FolderStatusSource | undefined, r: AnalyzeRequest, logger: Logger) {
  let imapProblem = 'IMAP is not configured';
  if (imap?.configured) {
    try {
      const st = await imap.folderStatus(r.mailbox, r.folder);
      if (!st) throw new AppError('NOT_FOUND', `${r.mailbox} has no folder ${r.folder}`);
      if (r.uid >= st.uidNext) throw new AppError('NOT_FOUND', `${r.folder} of ${r.mailbox} has no UID ${r.uid} (UIDNEXT is ${st.uidNext})`);
      return st.uidValidity;
    } catch (err) {
      if (err instanceof AppError) throw err;
      imapProblem = errorText(err);
      logger.warn({ mailbox: r.mailbox, err: imapProblem }, 'analyze request: IMAP status failed; using the UIDVALIDITY on record');
    }
  }
  const known = await knownUidvalidity(db, r);
  if (known === undefined) {
    throw new AppError('IMAP_UNAVAILABLE', `cannot learn the UIDVALIDITY of ${r.folder}: ${imapProblem}, and mailsight has no record of the folder`);
  }
  return known;
}

/**
 * Jobs asked for over the API that one mailbox may have ahead of pushed mail (queued or running).
 * Past this, further requests wait their turn like pushed mail (the claim is fair between mailboxes
 * within a priority), so one key's flood of forced re-analyses cannot hold back other mailboxes'
 * new mail. Counted under a lock (below): counted without one, 41 simultaneous requests all saw
 * none ahead, and another mailbox's message took 2.7-4.5x its unloaded time (bench fairness).
 */
export const API_PRIORITY_PER_MAILBOX = 2;

/**
 * Queues a message ahead of push and sweep work (up to API_PRIORITY_PER_MAILBOX per mailbox). An analysed message is left alone unless `force`;
 * a job already running is left alone; anything else (new, waiting, failed, dead, skipped) is queued
 * now with fresh attempts. One statement decides, so two requests cannot race into two jobs.
 */
export async function requestAnalysis(db: Db, imap: FolderStatusSource | undefined, r: AnalyzeRequest, logger: Logger) {
  const uidvalidity = await currentUidvalidity(db, imap, r, logger);
  // Counted and inserted under a per-mailbox lock: 41 requests at once must not all see 0 ahead.
  const rows = await db.orm.transaction(async (tx) => {
    const exec = <T>(query: SQL) => txRows<T>(tx, query);
    await exec(sql`select pg_advisory_xact_lock(hashtext(${`api-priority:${r.mailbox}`}))`);
    const [ahead] = await exec<{ n: number }>(sql`
      select count(*)::int as n from llm_processing_queue
      where mailbox = ${r.mailbox} and state in (${lit('queued', 'processing')}) and priority = ${SOURCE_PRIORITY.api}`);
    const priority = Number(ahead?.n ?? 0) < API_PRIORITY_PER_MAILBOX ? SOURCE_PRIORITY.api : SOURCE_PRIORITY.push;
    // The SELECT's condition keeps an analysed message out unless forced; the conflict's keeps a running job alone.
    return exec<{ id: number; inserted: boolean }>(sql`
      insert into llm_processing_queue (mailbox, folder, uidvalidity, uid, source, priority, force)
      select ${r.mailbox}, ${r.folder}, ${uidvalidity}, ${r.uid}, ${lit('api')}, ${priority}, ${r.force}
      where ${r.force} or not exists (
        select 1 from llm_email_analysis a
        where ${keyEquals({ ...r, uidvalidity }, 'a')} and a.status = ${lit('analyzed')})
      on conflict (mailbox, folder, uidvalidity, uid) do update set
        state = ${lit('queued')}, source = ${lit('api')}, priority = ${priority}, force = excluded.force, attempts = 0,
        run_at = now(), lease_until = null, locked_by = null, last_error = null, finished_at = null, updated_at = now()
      where llm_processing_queue.state <> ${lit('processing')}
      returning id, (xmax = 0) as inserted`);
  });
  const key = { mailbox: r.mailbox, folder: r.folder, uidvalidity, uid: r.uid };
  const base = { mailbox: r.mailbox, folder: r.folder, uidvalidity, email_id: r.uid, force: r.force };
  if (rows.length === 0) {
    // Not queued: it is running now, or analysed and not forced.
    const [cur] = await db.rows<{ state: string }>(sql`
      select state from llm_processing_queue
      where ${keyEquals({ ...r, uidvalidity })}`);
    const state = cur?.state === 'processing' ? ('processing' as const) : ('analyzed' as const);
    return { ...base, state, queued: false, reason: state === 'processing' ? 'being analysed now' : 'already analysed; send force to analyse again' };
  }
  await writeAudit(db, { ...key, action: r.force ? 'reanalysis_requested' : 'analysis_requested', reason: `by ${r.actor}` });
  return { ...base, state: 'queued' as const, queued: true, new: rows[0]!.inserted };
}
