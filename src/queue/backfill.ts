import type { Db } from '../db/client.js';
import { enqueueMany } from './jobs.js';

/** `mailsight backfill`: existing mail queued for analysis (source `backfill`, after live mail). */

export interface BackfillSource {
  uidsSince(mailbox: string, folder: string, since?: Date): Promise<{ uidValidity: number; uids: number[] } | null>;
}

export interface BackfillProgress {
  mailbox: string;
  /** UIDs looked at in this mailbox so far, of `total`. */
  done: number;
  total: number;
  /** Newly queued (not queued before) in this mailbox so far. */
  queued: number;
}

export interface BackfillOptions {
  folder: string;
  since?: Date;
  batchSize: number;
  signal?: AbortSignal;
  onProgress?: (p: BackfillProgress) => void;
  /** After each batch that queued something (wakes the workers of a running service). */
  onQueued?: () => void;
}

/**
 * Queues one mailbox's existing mail in batches. Safe to interrupt and run again: a message already
 * in the queue (by push, sweep or an earlier run) is not queued twice, so a rerun only adds the rest.
 */
export async function backfillMailbox(db: Db, source: BackfillSource, mailbox: string, o: BackfillOptions) {
  const found = await source.uidsSince(mailbox, o.folder, o.since);
  if (!found) return { mailbox, total: 0, queued: 0, missingFolder: true, interrupted: false };
  const { uidValidity, uids } = found;
  let queued = 0;
  let done = 0;
  for (let i = 0; i < uids.length; i += o.batchSize) {
    if (o.signal?.aborted) return { mailbox, total: uids.length, queued, missingFolder: false, interrupted: true };
    const chunk = uids.slice(i, i + o.batchSize);
    const created = await enqueueMany(
      db,
      chunk.map((uid) => ({ mailbox, folder: o.folder, uidvalidity: uidValidity, uid, source: 'backfill' as const })),
    );
    queued += created.length;
    done += chunk.length;
    if (created.length) o.onQueued?.();
    o.onProgress?.({ mailbox, done, total: uids.length, queued });
  }
  return { mailbox, total: uids.length, queued, missingFolder: false, interrupted: false };
}

/** `30d`, `12h`, `2w` or an ISO date: the start of what to backfill. */
export function parseSince(text: string, now = Date.now()): Date {
  const m = /^(\d+)\s*([hdw])$/i.exec(text.trim());
  if (m) {
    const hours = { h: 1, d: 24, w: 24 * 7 }[m[2]!.toLowerCase() as 'h' | 'd' | 'w'];
    return new Date(now - Number(m[1]) * hours * 3_600_000);
  }
  const d = new Date(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(d.getTime())) return d;
  throw new Error(`--since must be like 30d, 12h, 2w or an ISO date, not ${text}`);
}
