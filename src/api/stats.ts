import { sql, type SQL } from 'drizzle-orm';
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
      from llm_processing_queue where ${inMailbox} and state in ('queued', 'processing')`),
    db.rows<{ key: string; n: number }>(sql`select status as key, count(*) as n from llm_email_analysis where ${analysed} group by status`),
    db.rows<{ key: string; n: number }>(sql`select verdict as key, count(*) as n from llm_email_analysis where ${analysed} and status = 'analyzed' group by verdict`),
    db.rows<{ key: string; n: number }>(sql`select category as key, count(*) as n from llm_email_analysis where ${analysed} and status = 'analyzed' group by category`),
    db.rows<Record<string, unknown>>(sql`
      select
        count(*) filter (where status = 'analyzed') as analyzed,
        count(*) filter (where cache_hit) as cache_hits,
        coalesce(sum(prompt_tokens), 0) as prompt_tokens,
        coalesce(sum(completion_tokens), 0) as completion_tokens,
        percentile_cont(0.5) within group (order by total_ms) filter (where status = 'analyzed') as total_p50,
        percentile_cont(0.95) within group (order by total_ms) filter (where status = 'analyzed') as total_p95,
        percentile_cont(0.5) within group (order by llm_ms) filter (where status = 'analyzed' and not cache_hit) as llm_p50,
        percentile_cont(0.95) within group (order by llm_ms) filter (where status = 'analyzed' and not cache_hit) as llm_p95
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
