import { sql, type SQL } from 'drizzle-orm';
import { lit } from '../domain/states.js';
import { txRows, type Db } from '../db/client.js';
import { PARTITIONED, partitionsOf, type PartitionedTable } from '../db/partitions.js';
import { hasSqlState } from '../db/unavailable.js';

/** Rows deleted per statement: short transactions that never hold up pushes or workers for long. */
const PURGE_BATCH_ROWS = 5_000;
/**
 * How long dropping a month may wait for its table lock (it needs the parent table to itself for a
 * moment); past that, this pass removes the expired days row by row and the next pass tries again.
 */
const DROP_LOCK_TIMEOUT_MS = 2_000;
const DAY_MS = 86_400_000;

export interface PurgeReport {
  analyses: number;
  queue: number;
  audit: number;
  /** Users' feedback on messages (llm_feedback), by when it was given. */
  feedback: number;
  /** Whole months of analyses and audit entries dropped. */
  partitions: number;
}

/** The first instant of the UTC day from which rows are kept: whole UTC days go, each at least `days` days old. */
export function retentionCutoff(days: number, now = new Date()): Date {
  return new Date(Math.floor((now.getTime() - days * DAY_MS) / DAY_MS) * DAY_MS);
}

type Exec = <T>(query: SQL) => Promise<T[]>;

/**
 * LLM_RETENTION_DAYS: removes analyses, audit entries, feedback and finished queue rows from UTC
 * days that are wholly older than the limit. Waiting and running jobs are never touched.
 *
 * Analyses and audit entries are partitioned by month: a month wholly past the cutoff is dropped
 * (no dead rows left behind), the days of the month the cutoff falls in are deleted from that one
 * partition. The rollups are adjusted in the same transaction, in bulk (whole days of
 * llm_stats_daily go; llm_stats_mailbox loses what went): the rows go straight from their
 * partitions, which fires none of the parent's statement triggers (at a million analyses they took
 * 127 ms of the 137 ms that deleting a day's rows took; the delete itself, 6 ms).
 */
export async function purgeExpired(db: Db, retentionDays: number, now = new Date()): Promise<PurgeReport> {
  const report: PurgeReport = { analyses: 0, queue: 0, audit: 0, feedback: 0, partitions: 0 };
  if (retentionDays <= 0) return report;
  const cutoff = retentionCutoff(retentionDays, now);
  let removed: Omit<PurgeReport, 'queue' | 'feedback'>;
  try {
    removed = await db.orm.transaction((tx) => purgePartitions((q) => txRows(tx, q), cutoff, true));
  } catch (err) {
    if (!hasSqlState(err, LOCK_NOT_AVAILABLE)) throw err;
    removed = await db.orm.transaction((tx) => purgePartitions((q) => txRows(tx, q), cutoff, false));
  }
  Object.assign(report, removed);
  const [fb] = await db.rows<{ n: number }>(sql`
    with d as (delete from llm_feedback where at < ${cutoff.toISOString()}::timestamptz returning 1) select count(*)::int as n from d`);
  report.feedback = Number(fb?.n ?? 0);
  for (;;) {
    const [row] = await db.rows<{ n: number }>(sql`
      with d as (
        delete from llm_processing_queue where id in (
          select id from llm_processing_queue where state not in (${lit('queued', 'processing')}) and coalesce(finished_at, updated_at) < ${cutoff.toISOString()}::timestamptz
          limit ${PURGE_BATCH_ROWS}) returning 1)
      select count(*)::int as n from d`);
    const n = Number(row?.n ?? 0);
    report.queue += n;
    if (n < PURGE_BATCH_ROWS) break;
  }
  return report;
}

/** Postgres's lock_not_available: a lock_timeout ran out. */
const LOCK_NOT_AVAILABLE = '55P03';

async function purgePartitions(exec: Exec, cutoff: Date, dropMonths: boolean): Promise<Omit<PurgeReport, 'queue' | 'feedback'>> {
  const analyses = await purgeTable(exec, 'llm_email_analysis', cutoff, dropMonths, (rows) => sql`
    with gone as (${rows(sql`mailbox, is_phishing`)}),
    per as (select mailbox, count(*) as n, count(*) filter (where is_phishing) as phishing from gone group by mailbox),
    fixed as (
      update llm_stats_mailbox s set analyses = s.analyses - per.n, phishing = s.phishing - per.phishing
        from per where s.mailbox = per.mailbox returning 1)
    select coalesce(sum(n), 0)::int as n from per`);
  // What went was the oldest of each mailbox: its newest stays, unless nothing does.
  await exec(sql`delete from llm_stats_mailbox where analyses <= 0`);
  const day = (d: Date) => sql`${d.toISOString().slice(0, 10)}::date`;
  const days = analyses.keptBefore ? sql`day >= ${day(analyses.keptBefore)} and day < ${day(cutoff)}` : sql`day < ${day(cutoff)}`;
  await exec(sql`delete from llm_stats_daily where ${days}`);
  await exec(sql`delete from llm_stats_server_daily where ${days}`);
  // A limit shorter than the timeline's eight days reaches into its minutes and hours too.
  for (const grain of ['minute', 'hour']) {
    const t = sql.identifier(grain);
    const range = analyses.keptBefore ? sql`${t} >= ${analyses.keptBefore.toISOString()}::timestamptz and ${t} < ${cutoff.toISOString()}::timestamptz` : sql`${t} < ${cutoff.toISOString()}::timestamptz`;
    await exec(sql`delete from ${sql.identifier(`llm_stats_${grain}ly`)} where ${range}`);
    await exec(sql`delete from ${sql.identifier(`llm_latency_${grain}ly`)} where ${range}`);
  }
  const audit = await purgeTable(exec, 'llm_audit_log', cutoff, dropMonths, (rows) => sql`with gone as (${rows(sql`1`)}) select count(*)::int as n from gone`);
  const drops = [...analyses.drops, ...audit.drops];
  if (drops.length) {
    // Last, so that the parent table is held to itself (from the first drop to the commit) only for a moment.
    await exec(sql.raw(`set local lock_timeout = ${DROP_LOCK_TIMEOUT_MS}`));
    for (const name of drops) await exec(sql`drop table ${sql.identifier(name)}`);
  }
  return { analyses: analyses.n, audit: audit.n, partitions: drops.length };
}

/**
 * One table's rows before `cutoff`: months wholly before it are read (to count them) and listed
 * for dropping, or left alone with `dropMonths` false; the rest are deleted from their partitions.
 * `count(rows)` is the statement that counts what `rows(columns)` gives (and adjusts rollups).
 */
async function purgeTable(
  exec: Exec,
  table: PartitionedTable,
  cutoff: Date,
  dropMonths: boolean,
  count: (rows: (columns: SQL) => SQL) => SQL,
): Promise<{ n: number; drops: string[]; keptBefore: Date | null }> {
  const column = sql.identifier(PARTITIONED[table]);
  const out = { n: 0, drops: [] as string[], keptBefore: null as Date | null };
  // The default partition comes last, when keptBefore is known: it must not lose days kept in months.
  for (const p of await partitionsOf(exec, table)) {
    if (p.from && p.from >= cutoff) continue;
    const whole = p.to !== null && p.to <= cutoff;
    if (whole && !dropMonths) {
      if (!out.keptBefore || p.to! > out.keptBefore) out.keptBefore = p.to;
      continue;
    }
    const part = sql.identifier(p.name);
    const from = out.keptBefore ? sql` and ${column} >= ${out.keptBefore.toISOString()}::timestamptz` : sql``;
    const rows = (columns: SQL) =>
      whole ? sql`select ${columns} from ${part}` : sql`delete from ${part} where ${column} < ${cutoff.toISOString()}::timestamptz${from} returning ${columns}`;
    const [r] = await exec<{ n: number }>(count(rows));
    out.n += Number(r?.n ?? 0);
    if (whole) out.drops.push(p.name);
  }
  return out;
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
