import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { sameMessage } from '../domain/message-key.js';
import { preferencesJsonSql } from '../domain/preferences.js';
import { lit } from '../domain/states.js';
import * as queue from '../queue/lifecycle.js';
import { auditRow, insertAuditRows, type AuditEntry } from './audit.js';

/**
 * What the analysis asks of the generic queue (queue/lifecycle.ts): what a claim brings along for
 * the pipeline, and what a job's end also writes.
 */

/** Read with each claim, in the same statement. */
export interface JobContext {
  /** Status of the message's stored analysis when it was claimed; null when it has none. */
  analysisStatus: string | null;
  /**
   * Whether the audit trail holds the decision on that analysis. A stored analysis without one was
   * cut off between its write and the job's end (a crash): the job finishes it (actions, decision)
   * from the stored answer instead of calling it done.
   */
  decisionRecorded: boolean;
  /** The mailbox's llm_user_preferences row (camelCase keys) when it was claimed; null when it has none. */
  preferences: Record<string, unknown> | null;
}

/** A claimed job as the pipeline gets it. */
export type Job = queue.Job<JobContext>;

/**
 * Both lookups look only at rows written since the queue row was made: a job's analysis and its
 * decision are written while its queue row exists (queue rows are never re-made while they live:
 * a new push of the same message finds the row), and retention removes analyses and audit entries
 * before the queue rows of the same days. That bound lets Postgres skip the months before the job's
 * (run-time partition pruning): at a million analyses over 17 months, the claim of 10 jobs took
 * 7.0 ms p50 looking in every month, 4.3 ms with the bound, 3.1 ms without any context. The one
 * row that can predate its queue row, an analysis that followed a message the user moved
 * (store.ts followMessage), has no decision of its own either way, so its job runs the same steps
 * (and finds its answer by content hash).
 */
export const JOB_CONTEXT: queue.ClaimWith<JobContext> = {
  analysisStatus: sql<string | null>`(
    select a.status from llm_email_analysis a
     where ${sameMessage('a', 'llm_processing_queue')} and a.created_at >= llm_processing_queue.created_at)`,
  decisionRecorded: sql<boolean>`exists (
    select 1 from llm_audit_log l
     where ${sameMessage('l', 'llm_processing_queue')} and l.at >= llm_processing_queue.created_at and l.action in (${lit('analyzed', 'skipped')}))`,
  preferences: sql<Record<string, unknown> | null>`(
    select ${preferencesJsonSql('p')}
      from llm_user_preferences p where p.username = llm_processing_queue.mailbox)`,
};

/**
 * With a job's end: the decisions it recorded go to the audit trail (for the jobs this worker still
 * held: a job taken over is recorded by its new worker), and a job whose row is gone was erased with
 * its mailbox while it ran (GDPR): what it wrote about its message is deleted.
 */
export const FINISH_WRITES: queue.FinishWrites<AuditEntry> = (records) => [
  sql`delete from llm_email_analysis a using erased e where ${sameMessage('a', 'e')} returning 1`,
  sql`delete from llm_audit_log l using erased e where ${sameMessage('l', 'e')} returning 1`,
  sql`${insertAuditRows(JSON.stringify(records.map((r) => auditRow(r.record, r.jobId))), { onlyEnded: true })} returning 1`,
];

/** Claims jobs with the pipeline's context. */
export function claim(db: Db, opts: { workerId: string; limit: number; leaseMs: number; after?: queue.ClaimCursor }): Promise<Job[]> {
  return queue.claim(db, { ...opts, with: JOB_CONTEXT });
}

/** Ends jobs, recording their audit entries. */
export function finishMany(db: Db, workerId: string, endings: queue.Ending<AuditEntry>[]): Promise<Set<number>> {
  return queue.finishMany(db, workerId, endings, FINISH_WRITES);
}
