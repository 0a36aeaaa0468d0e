import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { processingQueue } from '../db/schema.js';

export const JOB_SOURCES = ['api', 'push', 'reconcile', 'backfill'] as const;
export type JobSource = (typeof JOB_SOURCES)[number];

/** Lower runs first: what a person asked for, then live mail, then catch-up work. */
export const SOURCE_PRIORITY: Record<JobSource, number> = { api: 0, push: 1, reconcile: 2, backfill: 2 };

export interface MessageKey {
  mailbox: string;
  folder: string;
  uidvalidity: number;
  uid: number;
}

export interface NewJob extends MessageKey {
  source: JobSource;
  event?: string;
  messageId?: string;
  fromHeader?: string;
  subject?: string;
}

/**
 * Records a message in the queue unless it is there already. One statement; a duplicate push
 * (Dovecot resends on timeouts) changes nothing.
 */
export async function enqueue(db: Db, job: NewJob): Promise<{ id: number | null; created: boolean }> {
  const rows = await db.orm
    .insert(processingQueue)
    .values({ ...job, priority: SOURCE_PRIORITY[job.source] })
    .onConflictDoNothing({
      target: [processingQueue.mailbox, processingQueue.folder, processingQueue.uidvalidity, processingQueue.uid],
    })
    .returning({ id: processingQueue.id });
  return rows[0] ? { id: rows[0].id, created: true } : { id: null, created: false };
}

/** The message left its folder before we got to it: a queued job becomes `gone`. */
export async function markExpunged(db: Db, key: MessageKey): Promise<boolean> {
  const rows = await db.orm
    .update(processingQueue)
    .set({
      state: 'gone',
      lastError: 'expunged before processing',
      finishedAt: sql`now()`,
      updatedAt: sql`now()`,
    })
    .where(
      and(
        eq(processingQueue.mailbox, key.mailbox),
        eq(processingQueue.folder, key.folder),
        eq(processingQueue.uidvalidity, key.uidvalidity),
        eq(processingQueue.uid, key.uid),
        eq(processingQueue.state, 'queued'),
      ),
    )
    .returning({ id: processingQueue.id });
  return rows.length > 0;
}
