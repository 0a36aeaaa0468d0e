import { sql } from 'drizzle-orm';
import { lit } from '../domain/states.js';
import type { Db } from '../db/client.js';

/** How long the oldest due job has been waiting, in seconds (0 when nothing is waiting). */
export async function queueLagSec(db: Db): Promise<number> {
  const [row] = await db.rows<{ lag: number | string | null }>(sql`
    select extract(epoch from now() - min(run_at))::float8 as lag
      from llm_processing_queue where state = ${lit('queued')} and run_at <= now()`);
  return row?.lag == null ? 0 : Math.max(0, Number(row.lag));
}

/** Read at most this often: under a backlog the query scans every queued row, and a second's staleness is harmless. */
const LAG_TTL_MS = 1_000;

/**
 * The queue's lag for load shedding, read from the database at most once a second however many jobs
 * ask. A failed read counts as no lag: shedding is an optimisation, never a reason to fail a job.
 */
export class QueueLag {
  private value = 0;
  private readAt = 0;
  private reading: Promise<number> | null = null;

  constructor(private readonly db: Db) {}

  async seconds(): Promise<number> {
    if (Date.now() - this.readAt < LAG_TTL_MS) return this.value;
    this.reading ??= queueLagSec(this.db)
      .catch(() => 0)
      .then((v) => {
        this.value = v;
        this.readAt = Date.now();
        this.reading = null;
        return v;
      });
    return this.reading;
  }
}
