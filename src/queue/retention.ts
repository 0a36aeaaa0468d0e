import { sql } from 'drizzle-orm';
import { lit } from '../domain/states.js';
import type { Db } from '../db/client.js';

/** Rows deleted per statement: short transactions that never hold up pushes or workers for long. */
const PURGE_BATCH_ROWS = 5_000;

export interface PurgeReport {
  analyses: number;
  queue: number;
  audit: number;
}

/**
 * LLM_RETENTION_DAYS: deletes analyses, finished queue rows and audit entries older than the limit,
 * in batches. Waiting and running jobs are never touched.
 */
export async function purgeExpired(db: Db, retentionDays: number): Promise<PurgeReport> {
  const report: PurgeReport = { analyses: 0, queue: 0, audit: 0 };
  if (retentionDays <= 0) return report;
  const cutoff = sql`now() - ${retentionDays} * interval '1 day'`;
  const batches: [keyof PurgeReport, ReturnType<typeof sql>][] = [
    ['analyses', sql`delete from llm_email_analysis where id in (select id from llm_email_analysis where created_at < ${cutoff} limit ${PURGE_BATCH_ROWS}) returning 1`],
    [
      'queue',
      sql`delete from llm_processing_queue where id in (
        select id from llm_processing_queue where state not in (${lit('queued', 'processing')}) and coalesce(finished_at, updated_at) < ${cutoff}
        limit ${PURGE_BATCH_ROWS}) returning 1`,
    ],
    ['audit', sql`delete from llm_audit_log where id in (select id from llm_audit_log where at < ${cutoff} limit ${PURGE_BATCH_ROWS}) returning 1`],
  ];
  for (const [name, statement] of batches) {
    for (;;) {
      const [row] = await db.rows<{ n: number }>(sql`with d as (${statement}) select count(*)::int as n from d`);
      const n = Number(row?.n ?? 0);
      report[name] += n;
      if (n < PURGE_BATCH_ROWS) break;
    }
  }
  return report;
}

/**
 * PRIVACY_SUMMARY_DAYS: older analyses lose their content (summary, reasons, tags, reply suggestion,
 * priority reason, sealed or not) and keep their verdict, category, priority and dates. They stop
 * serving the content cache too. Batched like the purge.
 */
export async function expireContent(db: Db, days: number): Promise<number> {
  if (days <= 0) return 0;
  let total = 0;
  for (;;) {
    const [row] = await db.rows<{ n: number }>(sql`
      with d as (
        update llm_email_analysis set summary = null, reply_suggestion = null, priority_reason = null,
          reasons = '[]'::jsonb, tags = '{}'::text[], sealed_content = null, content_hash = null, updated_at = now()
        where id in (
          select id from llm_email_analysis
          where created_at < now() - ${days} * interval '1 day'
            and (summary is not null or reply_suggestion is not null or priority_reason is not null
                 or sealed_content is not null or reasons <> '[]'::jsonb or cardinality(tags) > 0)
          limit ${PURGE_BATCH_ROWS})
        returning 1)
      select count(*)::int as n from d`);
    const n = Number(row?.n ?? 0);
    total += n;
    if (n < PURGE_BATCH_ROWS) return total;
  }
}
