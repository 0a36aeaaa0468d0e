import { sql } from 'drizzle-orm';
import { txRows, type Db } from '../db/client.js';

/**
 * Recomputes the stats rollups from llm_email_analysis, in one transaction (what migration 0013 does
 * once). Their triggers keep them exact; this is for a bulk load made with the triggers disabled.
 */
export async function rebuildRollups(db: Db): Promise<void> {
  await db.orm.transaction(async (tx) => {
    await txRows(tx, sql`delete from llm_stats_daily`);
    await txRows(tx, sql`delete from llm_stats_mailbox`);
    await txRows(tx, sql`
      insert into llm_stats_daily (mailbox, day, status, verdict, category, n, cache_hits, prompt_tokens, completion_tokens)
      select m.mailbox, (a.created_at at time zone 'UTC')::date, a.status, coalesce(a.verdict, ''), coalesce(a.category, ''), count(*),
             count(*) filter (where a.cache_hit), coalesce(sum(a.prompt_tokens), 0), coalesce(sum(a.completion_tokens), 0)
        from llm_email_analysis a cross join lateral (values (a.mailbox), ('')) as m(mailbox)
       group by 1, 2, 3, 4, 5`);
    await txRows(tx, sql`
      insert into llm_stats_mailbox (mailbox, analyses, phishing, latest)
      select mailbox, count(*), count(*) filter (where is_phishing), max(created_at) from llm_email_analysis group by mailbox`);
  });
}
