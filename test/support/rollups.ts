import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import type { Db } from '../../src/db/client.js';
import { getStats, getTimeline, mailboxSummaries } from '../../src/queries/stats.js';
import { MAX_TIMELINE_MINUTES } from '../../src/routes/stats.js';

/** What the rollups must say, by scanning every row. */
async function scan(db: Db, mailbox: string | null, since?: Date) {
  const where = sql`${mailbox === null ? sql`true` : sql`mailbox = ${mailbox}`} and ${since ? sql`created_at >= ${since.toISOString()}::timestamptz` : sql`true`}`;
  const group = async (col: string, analysedOnly: boolean) =>
    Object.fromEntries(
      (await db.rows<{ k: string | null; n: string }>(sql`
        select ${sql.raw(col)} as k, count(*) as n from llm_email_analysis where ${where} ${analysedOnly ? sql`and status = 'analyzed'` : sql``} group by 1`)).map((r) => [r.k ?? 'none', Number(r.n)]),
    );
  const [totals] = await db.rows<{ hits: string; pt: string; ct: string }>(sql`
    select count(*) filter (where cache_hit) as hits, coalesce(sum(prompt_tokens), 0) as pt, coalesce(sum(completion_tokens), 0) as ct
      from llm_email_analysis where ${where}`);
  return {
    by_status: await group('status', false),
    by_verdict: await group('verdict', true),
    by_category: await group('category', true),
    cache: Number(totals!.hits),
    prompt: Number(totals!.pt),
    completion: Number(totals!.ct),
  };
}

/** Every mailbox and the whole server, over everything and since a few moments: the rollups equal scans of llm_email_analysis. */
export async function expectRollupsExact(db: Db, step: string, mailboxes: string[]) {
  const sinces = [undefined, new Date(Date.now() - 3.5 * 86_400_000), new Date(Date.now() - 20 * 3_600_000), new Date(Date.now() - 9 * 86_400_000 - 123_456)];
  for (const mailbox of [null, ...mailboxes]) {
    for (const since of sinces) {
      const stats = await getStats(db, { mailbox, since });
      const full = await scan(db, mailbox, since);
      expect(
        { ...stats.analyses, cache: stats.content_cache.llm_calls_saved, prompt: stats.tokens.prompt, completion: stats.tokens.completion },
        `${step}: ${mailbox ?? 'all'} since ${since?.toISOString() ?? 'ever'}`,
      ).toEqual(full);
    }
  }
  const summaries = await mailboxSummaries(db);
  const rows = await db.rows<{ mailbox: string; analyses: string; phishing: string; latest: Date | string }>(sql`
    select mailbox, count(*) as analyses, count(*) filter (where is_phishing) as phishing, max(created_at) as latest
      from llm_email_analysis group by mailbox order by max(created_at) desc, mailbox`);
  expect(summaries, step).toEqual(rows.map((r) => ({ mailbox: r.mailbox, analyses: Number(r.analyses), phishing: Number(r.phishing), latest: new Date(r.latest) })));
  // The timeline's per-minute and per-hour rollups: equal to the rows of their window (from a whole
  // hour away from its far edge, which moves while the test runs), and the whole server's timeline
  // read from them equal to the same timeline read from the rows.
  const edge = sql`(date_trunc('hour', llm_timeline_from(), 'UTC') + interval '2 hours')`;
  expect(await db.rows(sql`select minute, status, verdict, category, n from llm_stats_minutely where minute >= ${edge} order by 1, 2, 3, 4`), step).toEqual(
    await db.rows(sql`
      select date_trunc('minute', created_at, 'UTC') as minute, status, coalesce(verdict, '') as verdict, coalesce(category, '') as category, count(*) as n
        from llm_email_analysis where created_at >= ${edge} group by 1, 2, 3, 4 order by 1, 2, 3, 4`),
  );
  expect(await db.rows(sql`select minute, bin, n from llm_latency_minutely where minute >= ${edge} order by 1, 2`), step).toEqual(
    await db.rows(sql`
      select date_trunc('minute', created_at, 'UTC') as minute, llm_latency_bin(llm_ms) as bin, count(*) as n
        from llm_email_analysis where created_at >= ${edge} and status = 'analyzed' and not cache_hit and llm_ms is not null
       group by 1, 2 order by 1, 2`),
  );
  // The hours equal the minutes added up.
  expect(await db.rows(sql`select hour, status, verdict, category, n from llm_stats_hourly where hour >= ${edge} order by 1, 2, 3, 4`), step).toEqual(
    await db.rows(sql`
      select date_trunc('hour', minute, 'UTC') as hour, status, verdict, category, sum(n)::bigint as n from llm_stats_minutely
       where minute >= ${edge} group by 1, 2, 3, 4 order by 1, 2, 3, 4`),
  );
  expect(await db.rows(sql`select hour, bin, n from llm_latency_hourly where hour >= ${edge} order by 1, 2`), step).toEqual(
    await db.rows(sql`
      select date_trunc('hour', minute, 'UTC') as hour, bin, sum(n)::bigint as n from llm_latency_minutely
       where minute >= ${edge} group by 1, 2 order by 1, 2`),
  );
  const now = new Date();
  for (const minutes of [60, 1_440, MAX_TIMELINE_MINUTES]) {
    expect(await getTimeline(db, { mailbox: null, minutes, now }), `${step}: timeline of ${minutes} min`).toEqual(await getTimeline(db, { mailbox: null, minutes, now, source: 'rows' }));
  }
  // No empty rollup rows are left behind.
  const [empty] = await db.rows<{ n: string }>(sql`
    select (select count(*) from llm_stats_daily where n = 0) + (select count(*) from llm_stats_server_daily where n = 0) as n`);
  expect(Number(empty!.n), step).toBe(0);
}
