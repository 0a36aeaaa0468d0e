import { sql } from 'drizzle-orm';
import { txRows, type Db } from './client.js';

/** The tables rebuildRollups refills. */
const ROLLUP_TABLES = ['llm_stats_daily', 'llm_stats_server_daily', 'llm_stats_mailbox', 'llm_stats_minutely', 'llm_latency_minutely', 'llm_stats_hourly', 'llm_latency_hourly'];

/**
 * Recomputes the stats rollups from llm_email_analysis, in one transaction (what migrations 0013 and
 * 0016 do once). Their triggers keep them exact; this is for a bulk load made with the triggers disabled.
 */
export async function rebuildRollups(db: Db): Promise<void> {
  await db.orm.transaction(async (tx) => {
    await txRows(tx, sql`delete from llm_stats_daily`);
    await txRows(tx, sql`delete from llm_stats_server_daily`);
    await txRows(tx, sql`delete from llm_stats_mailbox`);
    await txRows(tx, sql`
      insert into llm_stats_daily (mailbox, day, status, verdict, category, n, cache_hits, prompt_tokens, completion_tokens)
      select mailbox, (created_at at time zone 'UTC')::date, status, coalesce(verdict, ''), coalesce(category, ''), count(*),
             count(*) filter (where cache_hit), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0)
        from llm_email_analysis group by 1, 2, 3, 4, 5`);
    await txRows(tx, sql`
      insert into llm_stats_server_daily (day, status, verdict, category, n, cache_hits, prompt_tokens, completion_tokens)
      select day, status, verdict, category, sum(n), sum(cache_hits), sum(prompt_tokens), sum(completion_tokens)
        from llm_stats_daily group by 1, 2, 3, 4`);
    await txRows(tx, sql`
      insert into llm_stats_mailbox (mailbox, analyses, phishing, latest)
      select mailbox, count(*), count(*) filter (where is_phishing), max(created_at) from llm_email_analysis group by mailbox`);
    for (const table of ['llm_stats_minutely', 'llm_latency_minutely', 'llm_stats_hourly', 'llm_latency_hourly']) await txRows(tx, sql`delete from ${sql.identifier(table)}`);
    await txRows(tx, sql`
      select llm_timeline_apply(array(
        select row(created_at, status, verdict, category, cache_hit, llm_ms, 1, prompt_tokens, completion_tokens)::llm_timeline_change
          from llm_email_analysis where created_at >= llm_timeline_from()))`);
  });
  // Fresh statistics for the tables just refilled. Without them the planner guessed a third of the
  // minute table for the last hour and scanned all of it: 30 ms instead of 1 ms for the 1-hour
  // chart at 10 million analyses (193,000 minute rows). Autovacuum would get there, minutes later.
  for (const table of ROLLUP_TABLES) await db.rows(sql`analyze ${sql.identifier(table)}`);
}

/**
 * Removes the timeline's minutes and hours older than its window (llm_timeline_from: eight days), which the
 * triggers no longer keep; the sweep calls it every round. Returns the rows removed.
 */
export async function pruneTimelineRollups(db: Db): Promise<number> {
  const [row] = await db.rows<{ n: number }>(sql`
    with a as (delete from llm_stats_minutely where minute < llm_timeline_from() returning 1),
         b as (delete from llm_latency_minutely where minute < llm_timeline_from() returning 1),
         c as (delete from llm_stats_hourly where hour < llm_timeline_from() returning 1),
         d as (delete from llm_latency_hourly where hour < llm_timeline_from() returning 1)
    select ((select count(*) from a) + (select count(*) from b) + (select count(*) from c) + (select count(*) from d))::int as n`);
  return Number(row?.n ?? 0);
}
