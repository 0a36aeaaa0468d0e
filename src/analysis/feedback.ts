import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { keyEquals, type MessageKey } from '../domain/message-key.js';
import { JUNK_VERDICTS, type FeedbackHow, type FeedbackSaid, type Verdict } from '../domain/states.js';
import type { ContentProtection } from '../privacy/protection.js';
import { isJunkFolder } from '../mail/folders.js';
import { writeAudit } from './audit.js';
import { learnSender, messageName } from './senders.js';
import { JUNK_VOTES_CONFIDENCE, junkVotes, markCampaign } from './campaigns.js';
import { textArray } from '../db/values.js';

/**
 * What users say of mailsight's verdicts (llm_feedback): their clients' Junk / Not junk buttons,
 * their moves into and out of the Junk folder, the dashboard and the API. mailsight's own keywords
 * and moves never count: its keywords are on the analysis row before its STORE (act.ts), its moves
 * are recognised by the row's moved_to_folder (push/receive.ts).
 */

/** Keywords clients set for "Junk" (Thunderbird, Apple Mail, Roundcube's markasjunk; RFC 5788's registry). IMAP keywords compare without case. */
export const JUNK_KEYWORDS = ['$junk', 'junk'];
/** And for "Not junk". */
export const NOT_JUNK_KEYWORDS = ['$notjunk', 'notjunk', 'nonjunk'];

const inList = (list: string[]) => (keyword: string) => list.includes(keyword.toLowerCase());

/** How a user's word compares with mailsight's verdict. */
export type FeedbackOutcome = 'agree' | 'false_junk' | 'missed_junk' | 'no_verdict';

export function feedbackOutcome(verdict: Verdict | null | undefined, said: FeedbackSaid): FeedbackOutcome {
  if (!verdict) return 'no_verdict';
  const junk = (JUNK_VERDICTS as readonly string[]).includes(verdict);
  if (said === 'junk') return junk ? 'agree' : 'missed_junk';
  return junk ? 'false_junk' : 'agree';
}

export interface Feedback {
  said: FeedbackSaid;
  how: FeedbackHow;
  verdict: Verdict | null;
  outcome: FeedbackOutcome;
  /** Whether the word was also learned for the message's sender in this mailbox (senders.ts). */
  senderLearned: boolean;
}

/** The context of a word from a service's parts (the push's, the API's and the dashboard's deps). */
export const feedbackContext = (deps: Omit<FeedbackContext, 'messageId'>): FeedbackContext => ({
  protection: deps.protection,
  campaignWindowHours: deps.campaignWindowHours,
  onQueued: deps.onQueued,
});

/** What a word on a message needs besides the message. */
export interface FeedbackContext {
  /** To read the message's sender (it may be sealed) and store it as learned. */
  protection: ContentProtection;
  /** The Message-ID the push carried (a moved message's). */
  messageId?: string;
  /** CAMPAIGN_WINDOW_HOURS when campaign clean-up is on: junk from two mailboxes marks the campaign. */
  campaignWindowHours?: number;
  /** Called when that queued jobs (to raise the campaign's other messages), so workers wake. */
  onQueued?: () => void;
}

/**
 * The analysis a message's feedback is about: the row of its key, or the row of the message that
 * mailsight moved there (its key is the INBOX one; the row names the folder and UID it moved to).
 */
function analysisOf(key: MessageKey) {
  return sql`(
    (select * from llm_email_analysis a where ${keyEquals(key, 'a')})
    union all
    (select * from llm_email_analysis a
      where a.mailbox = ${key.mailbox} and a.moved_to_folder = ${key.folder} and a.moved_to_uid = ${key.uid})
    limit 1)`;
}

/**
 * Records (or replaces: the latest word counts) what the user said of the message at `key`, with
 * mailsight's verdict, its source, model and prompt version at this moment, and puts it on the
 * audit trail. One row per message: its Message-ID, or its key when it has none. The word is also
 * learned for the message's sender in this mailbox (senders.ts).
 */
export async function recordFeedback(db: Db, key: MessageKey, said: FeedbackSaid, how: FeedbackHow, ctx: FeedbackContext): Promise<Feedback> {
  const [row] = await db.rows<{ verdict: Verdict | null; message_id: string | null; message: string; from_address: string | null; sealed_headers: string | null; analysed: boolean }>(sql`
    with a as ${analysisOf(key)}
    insert into llm_feedback as f (mailbox, message, folder, uidvalidity, uid, said, how, verdict, verdict_source, model, prompt_version, sender)
    select ${key.mailbox}, coalesce(${ctx.messageId ?? null}::text, (select message_id from a), ${messageName(key, null)}),
           ${key.folder}, ${key.uidvalidity}, ${key.uid}, ${said}, ${how},
           (select verdict from a), (select verdict_source from a), (select model from a), (select prompt_version from a), (select from_address from a)
    on conflict (mailbox, message) do update set
      folder = excluded.folder, uidvalidity = excluded.uidvalidity, uid = excluded.uid, said = excluded.said, how = excluded.how,
      verdict = excluded.verdict, verdict_source = excluded.verdict_source, model = excluded.model,
      prompt_version = excluded.prompt_version, sender = excluded.sender, at = now()
    returning f.verdict, f.message, (select message_id from a) as message_id, (select from_address from a) as from_address,
              (select sealed_headers from a) as sealed_headers, exists (select 1 from a) as analysed`);
  const verdict = row?.verdict ?? null;
  const outcome = feedbackOutcome(verdict, said);
  const learned = row?.analysed
    ? await learnSender(db, ctx.protection, { mailbox: key.mailbox, fromAddress: row.from_address, sealedHeaders: row.sealed_headers }, { said, how, message: row.message })
    : null;
  await writeAudit(db, {
    ...key,
    messageId: ctx.messageId ?? row?.message_id ?? undefined,
    verdict: verdict ?? undefined,
    action: 'feedback',
    reason: `the user said ${said} (${how})${verdict ? `; mailsight had said ${verdict}` : ''}${learned ? '; learned for its sender in this mailbox' : ''}`,
  });
  if (said === 'junk' && ctx.campaignWindowHours) await junkCampaign(db, key, ctx.campaignWindowHours, ctx.onQueued);
  return { said, how, verdict, outcome, senderLearned: learned !== null };
}

/** Users of JUNK_VOTES mailboxes said junk of this message's campaign: it is marked (spam), and reaches its other messages. */
async function junkCampaign(db: Db, key: MessageKey, windowHours: number, onQueued?: () => void) {
  const keys = await junkVotes(db, key, windowHours);
  if (keys.length === 0) return;
  const queued = await markCampaign(db, key, keys, { verdict: 'spam', confidence: JUNK_VOTES_CONFIDENCE }, windowHours);
  if (queued > 0) onQueued?.();
}

/**
 * A client set or cleared keywords (the Lua driver's FlagsSet / FlagsClear). Setting a junk keyword
 * says junk, unless the analysis row already holds it (mailsight's own STORE, recorded before it was
 * made); setting a not-junk keyword, or clearing a junk one, says legit. A cleared junk keyword also
 * leaves the row's keywords, so that setting it again later counts. Other keywords say nothing.
 */
export async function keywordFeedback(db: Db, key: MessageKey, change: 'set' | 'clear', keywords: string[], ctx: FeedbackContext): Promise<Feedback | null> {
  const junk = keywords.filter(inList(JUNK_KEYWORDS));
  const notJunk = keywords.filter(inList(NOT_JUNK_KEYWORDS));
  if (change === 'clear') {
    if (junk.length === 0) return null;
    await db.rows(sql`
      update llm_email_analysis a set keywords = array(select k from unnest(a.keywords) k where lower(k) <> all(${textArray(junk.map((k) => k.toLowerCase()))}))
        where a.id = (select id from ${analysisOf(key)} x) returning a.id`);
    return recordFeedback(db, key, 'legit', 'keyword', ctx);
  }
  if (junk.length > 0) {
    const [own] = await db.rows<{ own: boolean }>(sql`
      select coalesce((select lower(${junk[0]!}) = any(array(select lower(k) from unnest(keywords) k)) from ${analysisOf(key)} x), false) as own`);
    if (own?.own) return null;
    return recordFeedback(db, key, 'junk', 'keyword', ctx);
  }
  return notJunk.length > 0 ? recordFeedback(db, key, 'legit', 'keyword', ctx) : null;
}

/**
 * A user's move, seen as the analysis followed the message: into the Junk folder says junk; out of
 * it (from where the analysis was, or from where mailsight had moved it) says legit. mailsight's own
 * moves never get here (store.ts followMessage's own-move). For the Lua driver's MessageAppend
 * (push/receive.ts), and for the sweep's view of a move that the OX driver does not push (pipeline.ts).
 */
export async function moveFeedback(db: Db, key: MessageKey, ctx: FeedbackContext, followed: { from: { folder: string }; movedTo: string | null }, junkFolder: string) {
  const junk = (folder: string | null) => folder !== null && isJunkFolder(folder, junkFolder);
  if (junk(key.folder)) return junk(followed.from.folder) ? null : recordFeedback(db, key, 'junk', 'move', ctx);
  if (junk(followed.from.folder) || junk(followed.movedTo)) return recordFeedback(db, key, 'legit', 'move', ctx);
  return null;
}

/** The latest word on the message at `key` (its Message-ID's row, else its key's), for the dashboard. */
export async function feedbackOn(db: Db, key: MessageKey, messageId: string | null): Promise<{ said: FeedbackSaid; how: FeedbackHow; at: Date } | null> {
  const [row] = await db.rows<{ said: FeedbackSaid; how: FeedbackHow; at: Date | string }>(sql`
    select said, how, at from llm_feedback
     where mailbox = ${key.mailbox} and message = ${messageName(key, messageId)}`);
  return row ? { said: row.said, how: row.how, at: new Date(row.at) } : null;
}

/** Keywords mailsight is about to set on a message (before the STORE: its FlagsSet push may come first). */
export async function recordFlagging(db: Db, key: MessageKey, keywords: string[]): Promise<void> {
  if (keywords.length === 0) return;
  await db.rows(sql`
    update llm_email_analysis
       set keywords = array(select distinct k from unnest(keywords || ${textArray(keywords)}) k),
           updated_at = now()
     where ${keyEquals(key)} returning id`);
}
