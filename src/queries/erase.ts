import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';

/**
 * Erases everything stored about a mailbox (GDPR): queue, analyses, audit trail, feedback, learned
 * senders, preferences, API keys and the sweep's cursor, in one statement. Returns what was deleted, by table.
 */
export async function eraseMailbox(db: Db, mailbox: string, opts: { keepAccess?: boolean } = {}) {
  // keepAccess (an opt-out): the mail data goes, the user's keys and switches stay.
  const access = opts.keepAccess ? null : mailbox;
  const [row] = await db.rows<Record<string, number>>(sql`
    with
      q as (delete from llm_processing_queue where mailbox = ${mailbox} returning 1),
      a as (delete from llm_email_analysis where mailbox = ${mailbox} returning 1),
      l as (delete from llm_audit_log where mailbox = ${mailbox} returning 1),
      f as (delete from llm_feedback where mailbox = ${mailbox} returning 1),
      s as (delete from llm_learned_senders where mailbox = ${mailbox} returning 1),
      m as (delete from llm_mailboxes where mailbox = ${mailbox} returning 1),
      cm as (delete from llm_campaign_members where mailbox = ${mailbox} returning 1),
      cs as (delete from llm_campaigns where mailbox = ${mailbox} returning 1),
      p as (delete from llm_user_preferences where username = ${access} returning 1),
      k as (delete from llm_api_keys where mailbox = ${access} returning 1),
      c as (delete from llm_config where key = ${`reconcile.cursor:${mailbox}`} returning 1)
    select (select count(*) from q)::int as queue, (select count(*) from a)::int as analyses,
      (select count(*) from l)::int as audit, (select count(*) from f)::int as feedback, (select count(*) from s)::int as learned_senders, (select count(*) from p)::int as preferences,
      (select count(*) from k)::int as api_keys, (select count(*) from c)::int as cursor`);
  const deleted = Object.fromEntries(Object.entries(row ?? {}).map(([k, v]) => [k, Number(v)]));
  return { mailbox, deleted };
}

/** What an opt-out would erase: the mailbox's rows in the queue, the analyses and the audit trail. */
export async function storedAbout(db: Db, mailbox: string): Promise<{ queue: number; analyses: number; audit: number }> {
  const [row] = await db.rows<{ queue: number; analyses: number; audit: number }>(sql`
    select (select count(*) from llm_processing_queue where mailbox = ${mailbox})::int as queue,
           (select count(*) from llm_email_analysis where mailbox = ${mailbox})::int as analyses,
           (select count(*) from llm_audit_log where mailbox = ${mailbox})::int as audit`);
  return { queue: Number(row?.queue ?? 0), analyses: Number(row?.analyses ?? 0), audit: Number(row?.audit ?? 0) };
}
