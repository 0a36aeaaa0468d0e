import { sql, type SQL } from 'drizzle-orm';
import type { Db } from './client.js';

/**
 * llm_email_analysis and llm_audit_log are partitioned by UTC month (drizzle/0015_monthly_partitions.sql),
 * each with a default partition that catches whatever no month partition takes.
 */
export const PARTITIONED = {
  llm_email_analysis: 'created_at',
  llm_audit_log: 'at',
} as const;
export type PartitionedTable = keyof typeof PARTITIONED;

/**
 * Months made ahead of the current one: rows always find their month even if the service that makes
 * them is stopped for this long. What lands in the default partition meanwhile moves to its month
 * when that month is made.
 */
export const MONTHS_AHEAD = 2;

export interface Partition {
  name: string;
  /** null for the default partition. */
  from: Date | null;
  to: Date | null;
}

const MONTH_NAME = /_p(\d{4})(\d{2})$/;

/** The first instant of the UTC month that holds `at`. */
export function monthStart(at: Date, plusMonths = 0): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + plusMonths, 1));
}

/** The month partitions of `table` from the month of `at` to MONTHS_AHEAD after it; returns those it made. */
export async function ensurePartitions(db: Db, at = new Date()): Promise<string[]> {
  const made: string[] = [];
  for (const table of Object.keys(PARTITIONED) as PartitionedTable[]) {
    for (let i = 0; i <= MONTHS_AHEAD; i++) {
      const month = monthStart(at, i).toISOString().slice(0, 10);
      const [row] = await db.rows<{ made: boolean }>(sql`select llm_ensure_month(${table}, ${month}::date) as made`);
      if (row?.made) made.push(`${table}_p${month.slice(0, 4)}${month.slice(5, 7)}`);
    }
  }
  return made;
}

/** The partitions of `table`, oldest month first, the default partition last (`exec`: db.rows, or txRows in a transaction). */
export async function partitionsOf(exec: (query: SQL) => Promise<Record<string, unknown>[]>, table: PartitionedTable): Promise<Partition[]> {
  const rows = (await exec(sql`
    select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
     where i.inhparent = ${table}::regclass order by c.relname`)) as { name: string }[];
  return rows
    .map(({ name }) => {
      const m = MONTH_NAME.exec(name);
      if (!m) return { name, from: null, to: null };
      const from = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1));
      return { name, from, to: monthStart(from, 1) };
    })
    .sort((a, b) => (a.from?.getTime() ?? Infinity) - (b.from?.getTime() ?? Infinity));
}
