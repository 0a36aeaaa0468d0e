import { sql } from 'drizzle-orm';
import { txRows, type Db } from '../db/client.js';
import { liveInstances, type InstanceBeat } from './instances.js';
import { setRegisteredKeyIds } from './keys.js';
import type { ContentProtection } from './protection.js';
import { textArray } from '../db/values.js';

/**
 * `mailsight rotate-key`: re-seals every row not sealed with the current key (rows under an earlier
 * key, and plaintext rows from before a key was set) in batches, each its own transaction. Stopping
 * it at any point loses nothing: a row is either still readable with the old key or already
 * re-sealed, and the next run picks up what is left. When nothing is left, only the current key is
 * recorded as in use, so the old one can be dropped from ENCRYPTION_KEY_PREVIOUS.
 */

export interface RotationProgress {
  table: string;
  done: number;
}

export interface RotateOptions {
  batchSize: number;
  onBatch?: (p: RotationProgress) => void;
  /** Stops after the current batch (SIGINT); the run can be resumed. */
  signal?: AbortSignal;
}

export interface RotationReport {
  analyses: number;
  queue: number;
  audit: number;
  senders: number;
  complete: boolean;
  /** Live instances that still seal with another key: the rotation is not done while they run. */
  stillSealingWithOld: InstanceBeat[];
}

type Row = Record<string, any>;

interface Step {
  table: 'analyses' | 'queue' | 'audit' | 'senders';
  /** Rows still to re-seal, locked against a concurrent run. */
  select: (kid: string, limit: number) => ReturnType<typeof sql>;
  reseal: (row: Row, p: ContentProtection) => ReturnType<typeof sql>;
}

const STEPS: Step[] = [
  {
    table: 'analyses',
    select: (kid, limit) => sql`
      select id, mailbox, subject, from_address, from_name, summary, tags, reasons, priority_reason, reply_suggestion,
             sealed_headers, sealed_content
      from llm_email_analysis where key_id is distinct from ${kid} order by id limit ${limit} for update skip locked`,
    reseal: (r, p) => {
      const open = p.revealAnalysis({
        mailbox: r.mailbox,
        sealedHeaders: r.sealed_headers,
        sealedContent: r.sealed_content,
        subject: r.subject,
        fromAddress: r.from_address,
        fromName: r.from_name,
        summary: r.summary,
        tags: r.tags,
        reasons: r.reasons,
        priorityReason: r.priority_reason,
        replySuggestion: r.reply_suggestion,
      });
      const s = p.protectAnalysis({ ...open, folder: '', uidvalidity: 0, uid: 0 });
      return sql`
        update llm_email_analysis set subject = ${s.subject ?? null}, from_address = ${s.fromAddress ?? null}, from_name = ${s.fromName ?? null},
          summary = ${s.summary ?? null}, tags = ${textArray(s.tags ?? [])}, reasons = ${JSON.stringify(s.reasons ?? [])}::jsonb,
          priority_reason = ${s.priorityReason ?? null}, reply_suggestion = ${s.replySuggestion ?? null},
          sealed_headers = ${s.sealedHeaders ?? null}, sealed_content = ${s.sealedContent ?? null}, key_id = ${s.keyId ?? null}
        where id = ${r.id}`;
    },
  },
  {
    table: 'queue',
    select: (kid, limit) => sql`
      select id, mailbox, from_header, subject, sealed_headers from llm_processing_queue
      where key_id is distinct from ${kid} and (from_header is not null or subject is not null or sealed_headers is not null)
      order by id limit ${limit} for update skip locked`,
    reseal: (r, p) => {
      const open = p.revealQueueHeaders({ mailbox: r.mailbox, fromHeader: r.from_header, subject: r.subject, sealedHeaders: r.sealed_headers });
      const s = p.protectQueueHeaders(r.mailbox, open);
      return sql`
        update llm_processing_queue set from_header = ${s.fromHeader}, subject = ${s.subject}, sealed_headers = ${s.sealedHeaders}, key_id = ${s.keyId}
        where id = ${r.id}`;
    },
  },
  {
    table: 'audit',
    // Replaced analyses archived in the trail carry their sealed parts (or plaintext summary) in details.
    select: (kid, limit) => sql`
      select id, mailbox, details from llm_audit_log
      where action = 'analysis_replaced' and coalesce(details->>'key_id', '') <> ${kid}
      order by id limit ${limit} for update skip locked`,
    reseal: (r, p) => {
      const d = (r.details ?? {}) as Row;
      const open = p.revealAnalysis({
        mailbox: r.mailbox,
        sealedHeaders: d.sealed_headers ?? null,
        sealedContent: d.sealed_content ?? null,
        summary: d.summary ?? null,
        tags: d.tags ?? [],
        reasons: d.reasons ?? [],
      });
      const s = p.protectAnalysis({ ...open, folder: '', uidvalidity: 0, uid: 0 });
      const details = {
        ...d,
        summary: s.summary ?? null,
        tags: s.tags ?? [],
        reasons: s.reasons ?? [],
        sealed_headers: s.sealedHeaders ?? null,
        sealed_content: s.sealedContent ?? null,
        key_id: s.keyId ?? null,
      };
      return sql`update llm_audit_log set details = ${JSON.stringify(details)}::jsonb where id = ${r.id}`;
    },
  },
  {
    table: 'senders',
    // A learned sender is looked up by a keyed hash of its address: under the new key it gets a new
    // hash, so the row moves to it. A word learned meanwhile under the new key is newer and stays.
    select: (kid, limit) => sql`
      select mailbox, sender_key, sender, sealed_sender from llm_learned_senders
      where key_id is distinct from ${kid} order by mailbox, sender_key limit ${limit} for update skip locked`,
    reseal: (r, p) => {
      const address = p.revealSender({ mailbox: r.mailbox, sender: r.sender, sealedSender: r.sealed_sender });
      if (address === null) throw new Error(`a learned sender of ${r.mailbox} does not open with any configured key`);
      const s = p.protectSender(r.mailbox, address);
      return sql`
        with moved as (
          insert into llm_learned_senders (mailbox, sender_key, sender, sealed_sender, key_id, said, how, message, at)
          select mailbox, ${s.senderKey}, ${s.sender}, ${s.sealedSender}, ${s.keyId}, said, how, message, at
            from llm_learned_senders where mailbox = ${r.mailbox} and sender_key = ${r.sender_key}
          on conflict (mailbox, sender_key) do nothing
          returning 1)
        delete from llm_learned_senders where mailbox = ${r.mailbox} and sender_key = ${r.sender_key}`;
    },
  },
];

export async function rotateKeys(db: Db, protection: ContentProtection, opts: RotateOptions): Promise<RotationReport> {
  const sealer = protection.sealer;
  if (!sealer) throw new Error('rotate-key needs ENCRYPTION_KEY (the new key); the old one goes in ENCRYPTION_KEY_PREVIOUS');
  const report: RotationReport = { analyses: 0, queue: 0, audit: 0, senders: 0, complete: false, stillSealingWithOld: [] };
  for (const step of STEPS) {
    for (;;) {
      if (opts.signal?.aborted) return report;
      const n = await db.orm.transaction(async (tx) => {
        const rows = await txRows<Row>(tx, step.select(sealer.currentId, opts.batchSize));
        for (const r of rows) await tx.execute(step.reseal(r, protection));
        return rows.length;
      });
      report[step.table] += n;
      opts.onBatch?.({ table: step.table, done: report[step.table] });
      if (n < opts.batchSize) break;
    }
  }
  // Every row is re-sealed; but an instance still running with the old key writes new rows with it.
  report.stillSealingWithOld = (await liveInstances(db)).filter((i) => i.keyId !== sealer.currentId);
  if (report.stillSealingWithOld.length > 0) return report;
  report.complete = true;
  await setRegisteredKeyIds(db, [sealer.currentId]);
  return report;
}
