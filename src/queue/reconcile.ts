import { and, eq, min, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { config as configTable, processingQueue } from '../db/schema.js';
import { errorText, type Logger } from '../logger.js';
import { enqueueMany } from './jobs.js';
import { expireContent, purgeExpired } from './retention.js';
import { ensurePartitions } from '../db/partitions.js';
import { pruneTimelineRollups } from '../db/rollups.js';
import { compactQueueCounts } from './queue-counts.js';

/** The sweep covers INBOX: the folder the OX driver pushes for and where new mail lands. */
const SWEPT_FOLDER = 'INBOX';
const LEADER_KEY = 'reconcile.leader';
const cursorKey = (mailbox: string) => `reconcile.cursor:${mailbox}`;

export interface UidSource {
  uidsAfter(
    mailbox: string,
    folder: string,
    after: (state: { uidValidity: number; uidNext: number }) => Promise<number>,
  ): Promise<{ uidValidity: number; uidNext: number; afterUid: number; uids: number[] } | null>;
}

export interface ReconcileDeps {
  db: Db;
  source: UidSource;
  logger: Logger;
  batchSize: number;
  /** Identifies this instance in the leader lease. */
  owner: string;
  /** The lease is held this long; the leader renews it every sweep. */
  leaderLeaseMs: number;
  onQueued?: () => void;
  /** LLM_RETENTION_DAYS: the sweep's leader also purges what is older (0: keep everything). */
  retentionDays?: number;
  /** PRIVACY_SUMMARY_DAYS: the leader also strips content from older analyses (0: keep). */
  summaryDays?: number;
  /** Upkeep the service adds to every round of the leader (campaign keys past their window). */
  upkeep?: () => Promise<unknown>;
}

export interface SweepReport {
  leader: boolean;
  mailboxes: number;
  enqueued: number;
  errors: number;
}

/**
 * One instance sweeps at a time: a lease row in llm_config, taken when free or expired and renewed
 * by its holder. Works the same on PGlite and across instances on Postgres.
 */
export async function takeLeadership(db: Db, owner: string, leaseMs: number): Promise<boolean> {
  const rows = await db.rows<{ key: string }>(sql`
    insert into llm_config (key, value, updated_at)
    values (${LEADER_KEY}, jsonb_build_object('owner', ${owner}::text, 'until', now() + ${leaseMs} * interval '1 millisecond'), now())
    on conflict (key) do update set value = excluded.value, updated_at = now()
    where (llm_config.value->>'until')::timestamptz < now() or llm_config.value->>'owner' = ${owner}
    returning key`);
  return rows.length > 0;
}

/** Gives the lease up (on shutdown), so a restarted or another instance sweeps without waiting for it to expire. */
export async function resignLeadership(db: Db, owner: string): Promise<void> {
  await db.rows(sql`
    update llm_config set value = jsonb_set(value, '{until}', to_jsonb(now() - interval '1 second')), updated_at = now()
    where key = ${LEADER_KEY} and value->>'owner' = ${owner}
    returning key`);
}

interface Cursor {
  uidvalidity: number;
  uid: number;
}

async function readCursor(db: Db, mailbox: string): Promise<Cursor | null> {
  const [row] = await db.orm.select({ value: configTable.value }).from(configTable).where(eq(configTable.key, cursorKey(mailbox)));
  return (row?.value as Cursor | undefined) ?? null;
}

async function writeCursor(db: Db, mailbox: string, cursor: Cursor) {
  await db.orm
    .insert(configTable)
    .values({ key: cursorKey(mailbox), value: cursor })
    .onConflictDoUpdate({ target: configTable.key, set: { value: cursor, updatedAt: sql`now()` } });
}

/** Mailboxes mailsight knows: seen in a push (or any job) or with preferences. */
export async function knownMailboxes(db: Db): Promise<string[]> {
  // From the registry the queue's insert trigger keeps (llm_mailboxes). A loose index scan over the
  // queue's key, one probe per mailbox, grew with the queue's index: 76 -> 93..133 ms p95 for
  // 10,000 mailboxes at 100,000 -> 1,000,000 queued jobs (npm run bench data).
  const rows = await db.rows<{ mailbox: string }>(sql`
    select mailbox from llm_mailboxes
    union
    select username as mailbox from llm_user_preferences
    order by mailbox`);
  return rows.map((r) => r.mailbox);
}

/**
 * Where the sweep starts in a mailbox it has no cursor for (or whose UIDVALIDITY changed): just
 * below the lowest UID queued under the current UIDVALIDITY, else at the current end of the folder.
 * Old mail is never swept in: that is what backfill is for.
 */
async function startingPoint(db: Db, mailbox: string, uidValidity: number, uidNext: number): Promise<number> {
  const [row] = await db.orm
    .select({ low: min(processingQueue.uid) })
    .from(processingQueue)
    .where(and(eq(processingQueue.mailbox, mailbox), eq(processingQueue.folder, SWEPT_FOLDER), eq(processingQueue.uidvalidity, uidValidity)));
  return row?.low != null ? Number(row.low) - 1 : uidNext - 1;
}

/** Compares each known mailbox's INBOX with the queue and queues what is missing (source `reconcile`). */
export async function reconcileOnce(deps: ReconcileDeps): Promise<SweepReport> {
  const { db, source, logger, batchSize } = deps;
  const report: SweepReport = { leader: false, mailboxes: 0, enqueued: 0, errors: 0 };
  if (!(await takeLeadership(db, deps.owner, deps.leaderLeaseMs))) return report;
  report.leader = true;
  for (const mailbox of await knownMailboxes(db)) {
    report.mailboxes++;
    try {
      const cursor = await readCursor(db, mailbox);
      const view = await source.uidsAfter(mailbox, SWEPT_FOLDER, async ({ uidValidity, uidNext }) =>
        cursor && cursor.uidvalidity === uidValidity ? cursor.uid : startingPoint(db, mailbox, uidValidity, uidNext),
      );
      if (!view) continue;
      let last = view.afterUid;
      for (let i = 0; i < view.uids.length; i += batchSize) {
        const chunk = view.uids.slice(i, i + batchSize);
        const created = await enqueueMany(
          db,
          chunk.map((uid) => ({ mailbox, folder: SWEPT_FOLDER, uidvalidity: view.uidValidity, uid, source: 'reconcile' as const })),
        );
        report.enqueued += created.length;
        if (created.length) deps.onQueued?.();
        last = chunk[chunk.length - 1]!;
        // Saved per batch: a sweep cut short resumes where it stopped.
        await writeCursor(db, mailbox, { uidvalidity: view.uidValidity, uid: last });
      }
      if (!cursor || cursor.uidvalidity !== view.uidValidity || cursor.uid !== last) {
        await writeCursor(db, mailbox, { uidvalidity: view.uidValidity, uid: last });
      }
    } catch (err) {
      // One mailbox's trouble (login refused, server hiccup) never stops the sweep of the others.
      report.errors++;
      logger.warn({ mailbox, err: errorText(err) }, 'reconcile: mailbox skipped this round');
    }
  }
  if (report.enqueued > 0 || report.errors > 0) logger.info(report, 'reconcile sweep');
  const made = await ensurePartitions(db);
  if (made.length) logger.info({ partitions: made }, 'monthly partitions made');
  await pruneTimelineRollups(db);
  await deps.upkeep?.();
  if (deps.retentionDays) {
    const purged = await purgeExpired(db, deps.retentionDays);
    if (purged.analyses + purged.queue + purged.audit > 0) logger.info({ purged, retentionDays: deps.retentionDays }, 'retention purge');
  }
  if (deps.summaryDays) {
    const stripped = await expireContent(db, deps.summaryDays);
    if (stripped > 0) logger.info({ stripped, summaryDays: deps.summaryDays }, 'content of older analyses deleted');
  }
  await compactQueueCounts(db);
  return report;
}

/** Runs reconcileOnce every `intervalMs`, one sweep at a time; the first one soon after start. */
export class Reconciler {
  private timer?: NodeJS.Timeout;
  private current: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly deps: ReconcileDeps,
    private readonly intervalMs: number,
    private readonly firstDelayMs = 1_000,
  ) {}

  start() {
    this.schedule(this.firstDelayMs);
  }

  private schedule(ms: number) {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.current = reconcileOnce(this.deps)
        .catch((err) => this.deps.logger.warn({ err: errorText(err) }, 'reconcile sweep failed'))
        .finally(() => this.schedule(this.intervalMs));
    }, ms);
    this.timer.unref();
  }

  async stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.current;
    await resignLeadership(this.deps.db, this.deps.owner).catch((err) =>
      this.deps.logger.warn({ err: errorText(err) }, 'could not give up the sweep lease; it expires by itself'),
    );
  }
}
