import { sql, type SQL } from 'drizzle-orm';
import { lit } from '../domain/states.js';
import type { Db } from '../db/client.js';

export interface StatsFilter {
  /** null: every mailbox (admin). */
  mailbox: string | null;
  /** Analyses created since then; queue figures are always current. */
  since?: Date;
}

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
const ms = (v: unknown) => (v === null || v === undefined ? null : Math.round(Number(v)));

function countsBy(rows: { key: string | null; n: number | string }[]) {
  return Object.fromEntries(rows.map((r) => [r.key ?? 'none', Number(r.n)]));
}

/** Counts, queue health, timing percentiles, cache savings and tokens: what /stats and the dashboard show. */
export async function getStats(db: Db, f: StatsFilter) {
  const inMailbox: SQL = f.mailbox === null ? sql`true` : sql`mailbox = ${f.mailbox}`;
  const analysed: SQL = f.since ? sql`${inMailbox} and created_at >= ${f.since.toISOString()}::timestamptz` : inMailbox;
  const [queueStates, queueHealth, statuses, verdicts, categories, [totals]] = await Promise.all([
    db.rows<{ key: string; n: number }>(sql`select state as key, count(*) as n from llm_processing_queue where ${inMailbox} group by state`),
    db.rows<{ depth: number; oldest: number | null }>(sql`
      select count(*) as depth, extract(epoch from now() - min(created_at))::float8 as oldest
      from llm_processing_queue where ${inMailbox} and state in (${lit('queued', 'processing')})`),
    db.rows<{ key: string; n: number }>(sql`select status as key, count(*) as n from llm_email_analysis where ${analysed} group by status`),
    db.rows<{ key: string; n: number }>(sql`select verdict as key, count(*) as n from llm_email_analysis where ${analysed} and status = ${lit('analyzed')} group by verdict`),
    db.rows<{ key: string; n: number }>(sql`select category as key, count(*) as n from llm_email_analysis where ${analysed} and status = ${lit('analyzed')} group by category`),
    db.rows<Record<string, unknown>>(sql`
      select
        count(*) filter (where status = ${lit('analyzed')}) as analyzed,
        count(*) filter (where cache_hit) as cache_hits,
        coalesce(sum(prompt_tokens), 0) as prompt_tokens,
        coalesce(sum(completion_tokens), 0) as completion_tokens,
        percentile_cont(0.5) within group (order by total_ms) filter (where status = ${lit('analyzed')}) as total_p50,
        percentile_cont(0.95) within group (order by total_ms) filter (where status = ${lit('analyzed')}) as total_p95,
        percentile_cont(0.5) within group (order by llm_ms) filter (where status = ${lit('analyzed')} and not cache_hit) as llm_p50,
        percentile_cont(0.95) within group (order by llm_ms) filter (where status = ${lit('analyzed')} and not cache_hit) as llm_p95
      from llm_email_analysis where ${analysed}`),
  ]);
  const health = queueHealth[0]!;
  return {
    mailbox: f.mailbox,
    since: f.since?.toISOString() ?? null,
    queue: {
      by_state: countsBy(queueStates),
      depth: Number(health.depth),
      oldest_age_sec: health.oldest === null ? null : Math.round(Number(health.oldest)),
    },
    analyses: {
      by_status: countsBy(statuses),
      by_verdict: countsBy(verdicts),
      by_category: countsBy(categories),
    },
    timings_ms: {
      processing: { p50: ms(totals!.total_p50), p95: ms(totals!.total_p95) },
      llm: { p50: ms(totals!.llm_p50), p95: ms(totals!.llm_p95) },
    },
    content_cache: { llm_calls_saved: num(totals!.cache_hits) },
    tokens: {
      prompt: num(totals!.prompt_tokens),
      completion: num(totals!.completion_tokens),
      total: Number(totals!.prompt_tokens) + Number(totals!.completion_tokens),
    },
  };
}

export interface TimelineFilter {
  mailbox: string | null;
  /** How far back, in minutes. */
  minutes: number;
  /** About this many points; a bucket is at least a minute. */
  buckets?: number;
}

export interface TimelinePoint {
  at: string;
  analyzed: number;
  failed: number;
  by_verdict: Record<string, number>;
  by_category: Record<string, number>;
  llm_ms: { p50: number | null; p95: number | null };
}

/**
 * Analyses over time, bucketed: how many per bucket, the verdict and category mix, and LLM latency
 * (calls only, not cache hits). Every bucket of the window is present, empty ones with zeros, so a
 * chart's x axis is time. What /stats?timeline_minutes= and the dashboard's charts show.
 */
export async function getTimeline(db: Db, f: TimelineFilter) {
  const bucketSec = Math.max(60, Math.ceil((f.minutes * 60) / (f.buckets ?? 30) / 60) * 60);
  const end = Math.floor(Date.now() / 1000 / bucketSec) * bucketSec + bucketSec;
  const start = end - Math.ceil((f.minutes * 60) / bucketSec) * bucketSec;
  const inMailbox: SQL = f.mailbox === null ? sql`true` : sql`mailbox = ${f.mailbox}`;
  const bucket = sql`(floor(extract(epoch from created_at) / ${bucketSec}) * ${bucketSec})::bigint`;
  const window = sql`${inMailbox} and created_at >= to_timestamp(${start})`;
  const [totals, verdicts, categories] = await Promise.all([
    db.rows<{ b: string; analyzed: string; failed: string; p50: number | null; p95: number | null }>(sql`
      select ${bucket} as b,
             count(*) filter (where status = ${lit('analyzed')}) as analyzed,
             count(*) filter (where status = ${lit('failed')}) as failed,
             percentile_cont(0.5) within group (order by llm_ms) filter (where status = ${lit('analyzed')} and not cache_hit) as p50,
             percentile_cont(0.95) within group (order by llm_ms) filter (where status = ${lit('analyzed')} and not cache_hit) as p95
        from llm_email_analysis where ${window} group by 1`),
    db.rows<{ b: string; key: string | null; n: string }>(sql`
      select ${bucket} as b, verdict as key, count(*) as n from llm_email_analysis
       where ${window} and status = ${lit('analyzed')} group by 1, 2`),
    db.rows<{ b: string; key: string | null; n: string }>(sql`
      select ${bucket} as b, category as key, count(*) as n from llm_email_analysis
       where ${window} and status = ${lit('analyzed')} group by 1, 2`),
  ]);
  const points = new Map<number, TimelinePoint>();
  for (let t = start; t < end; t += bucketSec) {
    points.set(t, { at: new Date(t * 1000).toISOString(), analyzed: 0, failed: 0, by_verdict: {}, by_category: {}, llm_ms: { p50: null, p95: null } });
  }
  for (const r of totals) {
    const p = points.get(Number(r.b));
    if (!p) continue;
    Object.assign(p, { analyzed: Number(r.analyzed), failed: Number(r.failed), llm_ms: { p50: ms(r.p50), p95: ms(r.p95) } });
  }
  for (const [rows, field] of [[verdicts, 'by_verdict'], [categories, 'by_category']] as const) {
    for (const r of rows) {
      const p = points.get(Number(r.b));
      if (p) p[field][r.key ?? 'none'] = Number(r.n);
    }
  }
  return { minutes: f.minutes, bucket_sec: bucketSec, points: [...points.values()] };
}

/** The newest failures, from the queue (jobs that ended failed or dead) and from stored analyses. */
export async function recentFailures(db: Db, mailbox: string | null, limit = 10) {
  const inMailbox: SQL = mailbox === null ? sql`true` : sql`mailbox = ${mailbox}`;
  const rows = await db.rows<{ mailbox: string; folder: string; uidvalidity: number; uid: number; state: string; reason: string | null; at: Date | string }>(sql`
    (select mailbox, folder, uidvalidity, uid, state, last_error as reason, updated_at as at
       from llm_processing_queue where ${inMailbox} and state in (${lit('failed', 'dead')})
      order by updated_at desc limit ${limit})
    union all
    (select mailbox, folder, uidvalidity, uid, 'failed' as state, error as reason, updated_at as at
       from llm_email_analysis where ${inMailbox} and status = ${lit('failed')}
      order by updated_at desc limit ${limit})
    order by at desc limit ${limit}`);
  return rows.map((r) => ({ ...r, uidvalidity: Number(r.uidvalidity), uid: Number(r.uid), at: new Date(r.at) }));
}

/** Mailboxes with analyses, the most recently active first (the admin's way into a mailbox). */
export async function mailboxSummaries(db: Db, limit = 100) {
  const rows = await db.rows<{ mailbox: string; analyses: string; phishing: string; latest: Date | string }>(sql`
    select mailbox, count(*) as analyses, count(*) filter (where is_phishing) as phishing, max(created_at) as latest
      from llm_email_analysis group by mailbox order by max(created_at) desc limit ${limit}`);
  return rows.map((r) => ({ mailbox: r.mailbox, analyses: Number(r.analyses), phishing: Number(r.phishing), latest: new Date(r.latest) }));
}
