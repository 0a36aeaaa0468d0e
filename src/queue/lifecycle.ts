import { and, eq, getTableColumns, inArray, sql, type SQL } from 'drizzle-orm';
import { lit } from '../domain/states.js';
import type { Db } from '../db/client.js';
import type { FinalState } from '../domain/states.js';
import { processingQueue } from '../db/schema.js';

/** A claimed queue row, with whatever the claim was asked to bring along (`ClaimWith`). */
export type Job<X extends object = Record<never, never>> = typeof processingQueue.$inferSelect & X;

/**
 * Columns a claim also returns, read in the same statement: SQL expressions that may refer to the
 * claimed row as `llm_processing_queue`. The queue knows nothing of them; its users pass them in.
 */
export type ClaimWith<X extends object> = { [K in keyof X]: SQL<X[K]> };

/** Where a job ends. `queued` is not here: a job goes back to the queue through retry() or release(). */
export type { FinalState };

const q = processingQueue;
const leaseEnd = (leaseMs: number) => sql`now() + ${leaseMs} * interval '1 millisecond'`;

/** Where the last claim's walk over mailboxes ended: the next claim's walk starts after it. */
export interface ClaimCursor {
  priority: number;
  mailbox: string;
}

/**
 * Mailboxes a claim looks at, per window: `limit` times this many, after the cursor and from the
 * start. With 10,000 mailboxes waiting, walking all of them took 1.1 s per claim (npm run bench data).
 */
const WINDOW_PER_JOB = 2;

/**
 * The ids of up to `limit` runnable jobs, fairly chosen and locked: processing jobs whose lease
 * expired (their worker died) first, then queued due jobs by priority (api, push, sweep/backfill)
 * and, within a priority, in turns: every mailbox's oldest job before any mailbox's second, and
 * among those the mailbox served longest ago (its newest claim or end) first: round robin. A
 * mailbox with 1,000 queued messages therefore delays another mailbox's new one by about one job.
 *
 * The mailboxes looked at form a window that rotates: a loose index scan over
 * llm_processing_queue_fair_claim_idx takes up to `limit` x WINDOW_PER_JOB mailboxes with due work
 * after the cursor (where the previous claim's walk ended), and as many from the start (the wrap
 * around, and the lower priorities a cursor further on would miss). So a claim costs a few dozen
 * index probes however many mailboxes wait, and every mailbox comes into the window in turn. While
 * fewer mailboxes wait than the window holds, every one of them is looked at, as before.
 * SKIP LOCKED lets several instances claim side by side; a claimer whose candidates another one
 * holds gets fewer (or none) and claims again once the worker finds work still due.
 */
function fairRunnable(limit: number, after: ClaimCursor | undefined) {
  const window = limit * WINDOW_PER_JOB;
  const walk = (name: string, start: SQL) => sql`
    ${sql.raw(name)} as (
      (select priority, mailbox, 1 as n from llm_processing_queue
        where state = ${lit('queued')} and run_at <= now() and ${start}
        order by priority, mailbox limit 1)
      union all
      select m.priority, m.mailbox, b.n + 1 from ${sql.raw(name)} b cross join lateral (
        select priority, mailbox from llm_processing_queue
         where state = ${lit('queued')} and run_at <= now() and (priority, mailbox) > (b.priority, b.mailbox)
         order by priority, mailbox limit 1) m
       where b.n < ${window}
    )`;
  const from = after ? sql`(priority, mailbox) > (${after.priority}, ${after.mailbox})` : sql`false`;
  return sql`
    with recursive ${walk('onward', from)}, ${walk('wrapped', sql`true`)},
    boxes as (select priority, mailbox from onward union select priority, mailbox from wrapped),
    turns as materialized (
      -- Materialized: computed once. Inlined, a generic plan made while the queue was small (stale
      -- statistics: one row) looped over every queued row and recomputed the turns for each (608
      -- rows, 3,040 loops, 11 ms per claim, auto_explain in npm run bench campaign).
      -- With at least \`limit\` mailboxes of the first priority in the window, only their first turns can be chosen.
      select j.id, b.priority, j.turn, j.run_at, s.served from boxes b cross join lateral (
        select id, run_at, row_number() over (order by run_at, id) as turn from llm_processing_queue
         where state = ${lit('queued')} and run_at <= now() and priority = b.priority and mailbox = b.mailbox
         order by run_at, id
         limit (select case when count(*) >= ${limit} then 1 else ${limit} end from boxes where priority = (select min(priority) from boxes))) j
      left join lateral (
        select updated_at as served from llm_processing_queue
         where mailbox = b.mailbox and state <> ${lit('queued')}
         order by updated_at desc limit 1) s on true
    ), expired as (
      select id from llm_processing_queue
       where state = ${lit('processing')} and lease_until < now()
       order by lease_until limit ${limit}
       for update skip locked
    ), due as (
      select q.id from llm_processing_queue q join turns t on t.id = q.id
       where q.state = ${lit('queued')}
       order by t.priority, t.turn, t.served nulls first, t.run_at, t.id
       limit ${limit}
       for update of q skip locked
    )
    (select id from expired) union all (select id from due) limit ${limit}`;
}

/**
 * Where the walk of the claim that took `jobs` ended, for the next claim (`after`): the furthest
 * mailbox, in walk order, of the claimed jobs' first priority. Undefined when nothing was claimed.
 */
export function nextCursor(jobs: { priority: number; mailbox: string }[], after: ClaimCursor | undefined): ClaimCursor | undefined {
  if (jobs.length === 0) return after;
  const priority = Math.min(...jobs.map((j) => j.priority));
  const names = jobs.filter((j) => j.priority === priority).map((j) => j.mailbox).sort();
  const onward = after && after.priority === priority ? names.filter((m) => m > after.mailbox) : [];
  return { priority, mailbox: (onward.length ? onward : names).at(-1)! };
}

/**
 * Claims up to `limit` runnable jobs (see fairRunnable) in one statement; every claim counts as
 * an attempt, so a message that kills its worker cannot come back forever.
 */
export async function claim<X extends object = Record<never, never>>(
  db: Db,
  opts: { workerId: string; limit: number; leaseMs: number; with?: ClaimWith<X>; after?: ClaimCursor },
): Promise<Job<X>[]> {
  const rows = await db.orm
    .update(q)
    .set({
      state: 'processing',
      attempts: sql`${q.attempts} + 1`,
      leaseUntil: leaseEnd(opts.leaseMs),
      lockedBy: opts.workerId,
      updatedAt: sql`now()`,
    })
    .where(sql`${q.id} in (${fairRunnable(opts.limit, opts.after)})`)
    // Written out in full: drizzle renders a column in RETURNING unqualified, which inside these
    // subqueries would name the subquery's own table.
    .returning({ ...getTableColumns(q), ...(opts.with ?? {}) })
    // A named statement: Postgres plans it once per connection (a generic plan whose partition
    // pruning happens as it runs) instead of at every claim. Planning the claim with the pipeline's
    // context over 17 monthly partitions took 3.0 ms, its run 3.3 ms (EXPLAIN, a million analyses).
    .prepare('claim')
    .execute();
  return rows as Job<X>[];
}

/** Jobs `workerId` still holds: claimed by it and not taken over after an expired lease. */
const heldBy = (ids: number[], workerId: string) => and(inArray(q.id, ids), eq(q.lockedBy, workerId), eq(q.state, 'processing'));

export interface Ending<R = unknown> {
  job: Job<object>;
  state: FinalState;
  error: string | null;
  /** What the job's user records with its end (FinishWrites): only if this worker still held the job. */
  records?: R[];
}

/**
 * What finishing jobs also writes, in the same statement, passed in by the queue's user. Each is a
 * data-modifying statement run as a CTE, which may read `v` (the endings: id, state, error, mailbox,
 * folder, uidvalidity, uid), `ended` (the ids this worker still held) and `erased` (the endings
 * whose queue row is gone: erased with its mailbox while the job ran).
 */
export type FinishWrites<R = unknown> = (records: { jobId: number; record: R }[]) => SQL[];

/**
 * Ends many jobs in one statement (one round trip for a burst of finished jobs). Returns the ids
 * this worker still held; the others were taken over after their lease expired. `writes` adds the
 * user's own statements (see FinishWrites); run after the job's writes, so whichever transaction
 * comes first, nothing is left behind.
 */
export async function finishMany<R>(db: Db, workerId: string, endings: Ending<R>[], writes?: FinishWrites<R>): Promise<Set<number>> {
  if (endings.length === 0) return new Set();
  const values = JSON.stringify(
    endings.map((e) => ({
      id: e.job.id,
      state: e.state,
      error: e.error,
      mailbox: e.job.mailbox,
      folder: e.job.folder,
      uidvalidity: e.job.uidvalidity,
      uid: e.job.uid,
    })),
  );
  const extra = writes?.(endings.flatMap((e) => (e.records ?? []).map((record) => ({ jobId: e.job.id, record })))) ?? [];
  const rows = await db.rows<{ id: number }>(sql`
    with v as (
      select * from json_to_recordset(${values}::json)
        as v(id bigint, state text, error text, mailbox text, folder text, uidvalidity bigint, uid bigint)
    ), ended as (
      update llm_processing_queue q
         set state = v.state, last_error = v.error, lease_until = null, locked_by = null,
             finished_at = now(), updated_at = now()
        from v
       where q.id = v.id and q.locked_by = ${workerId} and q.state = ${lit('processing')}
      returning q.id
    ), erased as (
      select * from v where not exists (select 1 from llm_processing_queue q where q.id = v.id)
    )${sql.join(
      extra.map((w, i) => sql`, ${sql.raw(`w${i}`)} as (${w})`),
      sql``,
    )}
    select id from ended`);
  return new Set(rows.map((r) => Number(r.id)));
}

/**
 * Back to the queue after a transient failure, due again in `delayMs`. With `refund`, the claim does
 * not count as an attempt (an outage of a service the job needs is not the message's fault).
 */
export async function retry(db: Db, job: Job<object>, error: string, delayMs: number, opts: { refund?: boolean } = {}): Promise<boolean> {
  const rows = await db.orm
    .update(q)
    .set({
      state: 'queued',
      ...(opts.refund ? { attempts: sql`greatest(${q.attempts} - 1, 0)` } : {}),
      lastError: error,
      runAt: sql`now() + ${delayMs} * interval '1 millisecond'`,
      leaseUntil: null,
      lockedBy: null,
      updatedAt: sql`now()`,
    })
    .where(heldBy([job.id], job.lockedBy ?? ''))
    .returning({ id: q.id });
  return rows.length > 0;
}

/** Gives jobs back untouched on shutdown: due at once, and the claim does not count as an attempt. */
export async function release(db: Db, ids: number[], workerId: string): Promise<number> {
  if (ids.length === 0) return 0;
  const rows = await db.orm
    .update(q)
    .set({
      state: 'queued',
      attempts: sql`greatest(${q.attempts} - 1, 0)`,
      runAt: sql`now()`,
      leaseUntil: null,
      lockedBy: null,
      updatedAt: sql`now()`,
    })
    .where(heldBy(ids, workerId))
    .returning({ id: q.id });
  return rows.length;
}

/**
 * Jobs held by workers of this instance that are gone: a process killed (kill -9, OOM) on the
 * same host, or in the same container, leaves its claims behind until their leases expire. A
 * restarted instance gives them back at once. `isGone` decides per holder (workerId); the attempt
 * stays spent, so a message that kills its worker every time still ends `dead`.
 */
export async function releaseOrphans(db: Db, instancePrefix: string, isGone: (workerId: string) => boolean): Promise<number> {
  const holders = await db.rows<{ locked_by: string }>(sql`
    select distinct locked_by from llm_processing_queue
    where state = ${lit('processing')} and starts_with(locked_by, ${instancePrefix})`);
  const gone = holders.map((h) => h.locked_by).filter(isGone);
  if (gone.length === 0) return 0;
  const rows = await db.rows<{ id: number }>(sql`
    update llm_processing_queue
    set state = ${lit('queued')}, run_at = now(), lease_until = null, locked_by = null, updated_at = now()
    where state = ${lit('processing')} and locked_by in (${sql.join(gone.map((g) => sql`${g}`), sql`, `)})
    returning id`);
  return rows.length;
}

/** Renews the leases of the jobs this worker holds, so only a dead worker's jobs expire. */
export async function extendLeases(db: Db, ids: number[], workerId: string, leaseMs: number): Promise<void> {
  if (ids.length === 0) return;
  await db.orm
    .update(q)
    .set({ leaseUntil: leaseEnd(leaseMs) })
    .where(heldBy(ids, workerId));
}

/** When the next job becomes runnable (a retry falls due or a lease expires); null when none will. */
export async function nextDueAt(db: Db): Promise<Date | null> {
  const [row] = await db.rows<{ at: string | Date | null }>(sql`
    select least(
      (select min(run_at) from llm_processing_queue where state = ${lit('queued')}),
      (select min(lease_until) from llm_processing_queue where state = ${lit('processing')})
    ) as at`);
  return row?.at ? new Date(row.at) : null;
}
