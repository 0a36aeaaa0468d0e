import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import type { MessageKey } from '../domain/message-key.js';
import type { FeedbackHow, FeedbackSaid } from '../domain/states.js';
import type { ContentProtection } from '../privacy/protection.js';
import { textArray } from '../db/values.js';

/**
 * Per-mailbox learning (llm_learned_senders): the user's latest word on a message (Junk / Not junk,
 * by keyword, move, dashboard or API) is also their word on its sender, in that mailbox only. The
 * pipeline then floors that sender's next verdicts (verdict.ts applyLearned). Nothing is learned
 * when the mailbox's `learn_senders` is off, or with PRIVACY_KEEP_HEADERS=false, where no sender is
 * stored in any form.
 */

export interface LearnedSender {
  said: FeedbackSaid;
  how: FeedbackHow;
  at: Date;
}

/** What the mailbox's user taught about this sender; null when nothing (or its learning is off). */
export async function learnedAbout(db: Db, protection: ContentProtection, mailbox: string, address: string | undefined): Promise<LearnedSender | null> {
  if (!address || !protection.keepsHeaders) return null;
  const [row] = await db.rows<{ said: FeedbackSaid; how: FeedbackHow; at: Date | string }>(sql`
    select said, how, at from llm_learned_senders
     where mailbox = ${mailbox} and sender_key = any(${textArray(protection.senderKeys(mailbox, address))})
     order by at desc limit 1`);
  return row ? { said: row.said, how: row.how, at: new Date(row.at) } : null;
}

/**
 * Learns the user's word on the message whose analysis is `analysis` (its sender as stored there:
 * plain, or sealed). Returns the sender learned, or null when there was none to learn.
 */
export async function learnSender(
  db: Db,
  protection: ContentProtection,
  analysis: { mailbox: string; fromAddress: string | null; sealedHeaders: string | null } | undefined,
  word: { said: FeedbackSaid; how: FeedbackHow; message: string },
): Promise<string | null> {
  if (!analysis || !protection.keepsHeaders) return null;
  let address = analysis.fromAddress;
  if (!address && analysis.sealedHeaders) {
    try {
      address = protection.revealAnalysis({ ...analysis, sealedContent: null }).fromAddress ?? null;
    } catch {
      // Sealed with a key that is not configured: nothing can be learned from it.
      return null;
    }
  }
  if (!address) return null;
  const mailbox = analysis.mailbox;
  const s = protection.protectSender(mailbox, address);
  const [row] = await db.rows<{ learned: boolean }>(sql`
    with learning as (
      select coalesce((select learn_senders from llm_user_preferences where username = ${mailbox}), true) as enabled
    ), earlier as (
      -- The same sender under an earlier key (a rotation under way): the new word replaces it.
      delete from llm_learned_senders
       where mailbox = ${mailbox} and sender_key = any(${textArray(protection.senderKeys(mailbox, address).slice(1))})
         and (select enabled from learning)
      returning 1
    ), learned as (
      insert into llm_learned_senders (mailbox, sender_key, sender, sealed_sender, key_id, said, how, message)
      select ${mailbox}, ${s.senderKey}, ${s.sender}, ${s.sealedSender}, ${s.keyId}, ${word.said}, ${word.how}, ${word.message}
       where (select enabled from learning)
      on conflict (mailbox, sender_key) do update set
        said = excluded.said, how = excluded.how, message = excluded.message, sender = excluded.sender,
        sealed_sender = excluded.sealed_sender, key_id = excluded.key_id, at = now()
      returning 1
    )
    select exists (select 1 from learned) as learned`);
  return row?.learned ? address.trim().toLowerCase() : null;
}

export interface LearnedSenderView {
  /** The address; null when sealed under a key that is not configured. */
  sender: string | null;
  /** Opaque: what forgetSenders takes. */
  id: string;
  said: FeedbackSaid;
  how: FeedbackHow;
  at: string;
}

/** What a mailbox has learned, newest first (preferences: API and dashboard). */
export async function listLearned(db: Db, protection: ContentProtection, mailbox: string): Promise<LearnedSenderView[]> {
  const rows = await db.rows<{ sender_key: string; sender: string | null; sealed_sender: string | null; said: FeedbackSaid; how: FeedbackHow; at: Date | string }>(sql`
    select sender_key, sender, sealed_sender, said, how, at from llm_learned_senders where mailbox = ${mailbox} order by at desc, sender_key`);
  return rows.map((r) => ({
    sender: protection.revealSender({ mailbox, sender: r.sender, sealedSender: r.sealed_sender }),
    id: r.sender_key,
    said: r.said,
    how: r.how,
    at: new Date(r.at).toISOString(),
  }));
}

/**
 * Forgets learned senders of one mailbox, named by address (API) or by id (the dashboard's
 * buttons, which also work for a sender that cannot be shown). Returns how many went.
 */
export async function forgetSenders(db: Db, protection: ContentProtection, mailbox: string, which: { addresses?: string[]; ids?: string[] }): Promise<number> {
  const keys = [...(which.ids ?? []), ...(which.addresses ?? []).flatMap((a) => protection.senderKeys(mailbox, a))];
  if (keys.length === 0) return 0;
  const [row] = await db.rows<{ n: number }>(sql`
    with d as (delete from llm_learned_senders where mailbox = ${mailbox} and sender_key = any(${textArray(keys)}) returning 1)
    select count(*)::int as n from d`);
  return Number(row?.n ?? 0);
}

/** A message as llm_feedback names it: its Message-ID, or for one without, its key. */
export const messageName = (key: MessageKey, messageId: string | null | undefined) => messageId ?? `key:${key.folder}/${key.uidvalidity}/${key.uid}`;

/** The same name in SQL: `analysis`'s Message-ID, else the key of `keyed` (aliases). */
export const messageNameSql = (analysis: string, keyed: string) =>
  sql.raw(`coalesce(${analysis}.message_id, 'key:' || ${keyed}.folder || '/' || ${keyed}.uidvalidity || '/' || ${keyed}.uid)`);
