import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { textArray } from '../db/values.js';
import { keyEquals, sameMessage, type MessageKey } from '../domain/message-key.js';
import { lit, type Verdict } from '../domain/states.js';
import type { ParsedMessage } from '../mail/parse.js';
import type { ContentProtection } from '../privacy/protection.js';
import { messageName, messageNameSql } from './senders.js';

/**
 * Campaign clean-up (retroactive protection): messages belong to one campaign when, within the
 * window (CAMPAIGN_WINDOW_HOURS), they share their content, or their sender and the set of hosts
 * their links point to. When one of them is judged phishing or scam (by the model or the signals'
 * floor), every other message of the campaign on the server that was judged legit or unknown gets
 * that verdict, with no LLM call: later ones as they arrive (pipeline.ts byCampaign), earlier ones
 * by a job each (source `campaign`, pipeline.ts raiseForCampaign), which runs the usual actions. A
 * verdict is only ever raised this way, and a message its user rescued is left alone. What crosses
 * mailboxes is the verdict only, through the campaign key: a hash, keyed with ENCRYPTION_KEY.
 */

/** Where the window of `hours` (CAMPAIGN_WINDOW_HOURS) starts, for raw SQL. */
const windowStart = (hours: number) => sql`now() - make_interval(hours => ${hours})`;

/** Shorter bodies ("Thanks!", "See attached") are shared by unrelated mail: no content key for them. */
export const MIN_CONTENT_CHARS = 64;

/** Verdicts that mark a campaign, most severe first; a campaign's verdict only rises. */
export const CAMPAIGN_VERDICTS = ['phishing', 'scam', 'spam'] as const satisfies readonly Verdict[];
const severity = (column: string) => sql.raw(`(case ${column} when 'phishing' then 3 when 'scam' then 2 when 'spam' then 1 else 0 end)`);

/** The http(s) hosts a message's links point to, lower case, each once, sorted. */
export function linkHosts(parsed: Pick<ParsedMessage, 'links'>): string[] {
  const hosts = new Set<string>();
  for (const l of parsed.links) {
    try {
      const u = new URL(l.href);
      if (u.protocol === 'http:' || u.protocol === 'https:') hosts.add(u.hostname.toLowerCase());
    } catch {
      // Not a URL: no host.
    }
  }
  return [...hosts].sort();
}

/**
 * A message's campaign keys: `c.` its content (body text, case and spacing ignored, at least
 * MIN_CONTENT_CHARS), `s.` its sender with the set of its link hosts (only with links). SHA-256, or
 * with ENCRYPTION_KEY an HMAC under the current key, so a stolen table cannot be matched against
 * guessed senders.
 */
export function campaignKeys(parsed: Pick<ParsedMessage, 'text' | 'links' | 'from'>, protection: ContentProtection): string[] {
  const hash = (kind: string, text: string) =>
    `${kind}.${protection.sealer ? protection.sealer.tags(text, `campaign ${kind}`)[0]! : createHash('sha256').update(text).digest('base64url').slice(0, 32)}`;
  const keys: string[] = [];
  const text = parsed.text.toLowerCase().replace(/\s+/g, ' ').trim();
  if (text.length >= MIN_CONTENT_CHARS) keys.push(hash('c', text));
  const sender = parsed.from?.address?.trim().toLowerCase();
  const hosts = linkHosts(parsed);
  if (sender && hosts.length > 0) keys.push(hash('s', `${sender}\n${hosts.join(' ')}`));
  return keys;
}

/** Records the message under its keys (again, after a re-analysis: the window counts from then). */
export async function joinCampaigns(db: Db, key: MessageKey, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  await db.rows(sql`
    insert into llm_campaign_members (campaign_key, mailbox, folder, uidvalidity, uid)
    select k, ${key.mailbox}, ${key.folder}, ${key.uidvalidity}, ${key.uid} from unnest(${textArray(keys)}) k
    on conflict (campaign_key, mailbox, folder, uidvalidity, uid) do update set at = now()
    returning 1`);
}

export interface CampaignVerdict {
  verdict: Verdict;
  confidence: number;
  /** The message that marked the campaign. */
  trigger: MessageKey;
}

type VerdictRow = { verdict: Verdict; confidence: number; mailbox: string; folder: string; uidvalidity: number; uid: number };
const toVerdict = (r: VerdictRow): CampaignVerdict => ({
  verdict: r.verdict,
  confidence: Number(r.confidence),
  trigger: { mailbox: r.mailbox, folder: r.folder, uidvalidity: Number(r.uidvalidity), uid: Number(r.uid) },
});

/**
 * The most severe verdict marked on any of these keys within the window by another message than
 * `self` (a retry of the message that marked it is judged on its own); null when none.
 */
export async function campaignVerdict(db: Db, self: MessageKey, keys: string[], windowHours: number): Promise<CampaignVerdict | null> {
  if (keys.length === 0) return null;
  const [row] = await db.rows<VerdictRow>(sql`
    select verdict, confidence, mailbox, folder, uidvalidity, uid from llm_campaigns c
     where campaign_key = any(${textArray(keys)}) and at > ${windowStart(windowHours)} and not ${keyEquals(self, 'c')}
     order by ${severity('verdict')} desc, at limit 1`);
  return row ? toVerdict(row) : null;
}

/**
 * Marks the campaign of the message at `trigger` with its verdict (raising an earlier, lesser one)
 * and queues a `campaign` job for each other member of the window whose verdict is legit or
 * unknown: those jobs raise it and act (pipeline.ts). Members not analysed yet need no job: their
 * analysis finds the campaign. Returns how many were queued.
 */
export async function markCampaign(db: Db, trigger: MessageKey, keys: string[], d: { verdict: Verdict; confidence: number }, windowHours: number): Promise<number> {
  if (keys.length === 0) return 0;
  const window = windowStart(windowHours);
  const [row] = await db.rows<{ n: number }>(sql`
    with marked as (
      insert into llm_campaigns as c (campaign_key, verdict, confidence, mailbox, folder, uidvalidity, uid)
      select k, ${d.verdict}, ${d.confidence}, ${trigger.mailbox}, ${trigger.folder}, ${trigger.uidvalidity}, ${trigger.uid}
        from unnest(${textArray(keys)}) k
      on conflict (campaign_key) do update set
        verdict = excluded.verdict, confidence = excluded.confidence, mailbox = excluded.mailbox, folder = excluded.folder,
        uidvalidity = excluded.uidvalidity, uid = excluded.uid, at = now()
      where ${severity('excluded.verdict')} > ${severity('c.verdict')} or c.at <= ${window}
      returning 1
    ), siblings as (
      select distinct m.mailbox, m.folder, m.uidvalidity, m.uid from llm_campaign_members m
       where m.campaign_key = any(${textArray(keys)}) and m.at > ${window}
         and not (m.mailbox = ${trigger.mailbox} and m.folder = ${trigger.folder} and m.uidvalidity = ${trigger.uidvalidity} and m.uid = ${trigger.uid})
         and exists (select 1 from llm_email_analysis a
                      where a.mailbox = m.mailbox and a.folder = m.folder and a.uidvalidity = m.uidvalidity and a.uid = m.uid
                        and a.created_at > ${window} - interval '1 day' and coalesce(a.verdict, 'unknown') in (${lit('legit', 'unknown')}))
    ), queued as (
      update llm_processing_queue q
         set state = ${lit('queued')}, source = 'campaign', priority = 1, run_at = now(), attempts = 0,
             last_error = null, finished_at = null, lease_until = null, locked_by = null, force = false, updated_at = now()
        from siblings s
       where q.mailbox = s.mailbox and q.folder = s.folder and q.uidvalidity = s.uidvalidity and q.uid = s.uid
         and q.state not in (${lit('queued', 'processing')})
      returning 1
    )
    select (select count(*) from queued)::int as n, (select count(*) from marked)::int as marked`);
  return Number(row?.n ?? 0);
}

/**
 * What a `campaign` job needs: the campaign verdict over the message's keys, and the message's own
 * stored verdict, Message-ID, and whether its user rescued it (said legit). Null when the message is
 * in no marked campaign of the window, or has no analysis.
 */
export async function campaignTarget(db: Db, key: MessageKey, windowHours: number) {
  const [row] = await db.rows<VerdictRow & { current: Verdict | null; message_id: string | null; rescued: boolean }>(sql`
    with c as (
      select c.* from llm_campaign_members m join llm_campaigns c using (campaign_key)
       where ${keyEquals(key, 'm')} and c.at > ${windowStart(windowHours)}
       order by ${severity('c.verdict')} desc, c.at limit 1
    ), a as (
      select verdict, message_id from llm_email_analysis a where ${keyEquals(key, 'a')} limit 1
    )
    select c.verdict, c.confidence, c.mailbox, c.folder, c.uidvalidity, c.uid, a.verdict as current, a.message_id,
           exists (select 1 from llm_feedback f
                    where f.mailbox = ${key.mailbox} and f.said = 'legit'
                      and f.message = coalesce(a.message_id, ${messageName(key, null)})) as rescued
      from c cross join a`);
  if (!row) return null;
  return { campaign: toVerdict(row), current: row.current ?? 'unknown', messageId: row.message_id ?? undefined, rescued: row.rescued };
}

/** Junk from the users of this many mailboxes marks a campaign (as spam). */
export const JUNK_VOTES = 2;
/** The confidence of a campaign that users marked: above the usual junk threshold (0.8), so it is moved. */
export const JUNK_VOTES_CONFIDENCE = 0.9;

/**
 * The campaign keys of the message at `key` on whose messages the users of at least JUNK_VOTES
 * mailboxes said junk within the window (their latest word).
 */
export async function junkVotes(db: Db, key: MessageKey, windowHours: number): Promise<string[]> {
  const rows = await db.rows<{ campaign_key: string }>(sql`
    select m.campaign_key from llm_campaign_members m
      join llm_campaign_members mine on mine.campaign_key = m.campaign_key and ${keyEquals(key, 'mine')}
      join llm_email_analysis a on ${sameMessage('a', 'm')} and a.created_at > ${windowStart(windowHours)} - interval '1 day'
      join llm_feedback f on f.mailbox = m.mailbox and f.said = 'junk'
                         and f.message = ${messageNameSql('a', 'm')}
     where m.at > ${windowStart(windowHours)}
     group by m.campaign_key having count(distinct m.mailbox) >= ${JUNK_VOTES}`);
  return rows.map((r) => r.campaign_key);
}

/** Forgets what is past the window (the sweep, every round). */
export async function pruneCampaigns(db: Db, windowHours: number): Promise<void> {
  await db.rows(sql`
    with m as (delete from llm_campaign_members where at <= ${windowStart(windowHours)} returning 1),
         c as (delete from llm_campaigns where at <= ${windowStart(windowHours)} returning 1)
    select (select count(*) from m) + (select count(*) from c) as n`);
}
