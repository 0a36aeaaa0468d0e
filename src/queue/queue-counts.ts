import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';

/**
 * The whole server's queue rows per state, without counting them: statement triggers on the queue
 * append signed changes to llm_queue_counts (drizzle/0014_queue_counts.sql), read here as sums.
 */
export async function queueStateCounts(db: Db): Promise<Record<string, number>> {
  const rows = await db.rows<{ state: string; n: string }>(sql`select state, sum(n) as n from llm_queue_counts group by state having sum(n) <> 0`);
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

/**
 * Folds the appended changes into one row per state, in one statement: changes appended meanwhile
 * are outside its snapshot, so they are neither deleted nor counted twice. Run by the sweep's leader.
 */
export async function compactQueueCounts(db: Db): Promise<number> {
  const [row] = await db.rows<{ folded: number }>(sql`
    with gone as (delete from llm_queue_counts returning state, n),
    kept as (insert into llm_queue_counts (state, n) select state, sum(n) from gone group by state having sum(n) <> 0 returning 1)
    select (select count(*) from gone)::int as folded`);
  return Number(row?.folded ?? 0);
}

/** Rebuilds the counts from the queue itself (what migration 0014 does once), for a bulk load made with the triggers off. */
export async function rebuildQueueCounts(db: Db): Promise<void> {
  await db.orm.transaction(async (tx) => {
    await tx.execute(sql`delete from llm_queue_counts`);
    await tx.execute(sql`insert into llm_queue_counts (state, n) select state, count(*) from llm_processing_queue group by state`);
  });
}
