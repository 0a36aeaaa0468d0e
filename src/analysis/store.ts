import { and, eq, getTableColumns, sql, type SQL } from 'drizzle-orm';
import { perDb, type Db } from '../db/client.js';
import { emailAnalysis } from '../db/schema.js';
import { keyEquals, type MessageKey } from '../domain/message-key.js';
import { lit } from '../domain/states.js';
import { textArray } from '../db/values.js';

/**
 * Writing and reading llm_email_analysis rows: the pipeline's write (under the message's key lock)
 * and its content-cache lookup (prepared once per database), the follow of an appended message,
 * and the record of mailbox actions.
 */

export type NewAnalysis = typeof emailAnalysis.$inferInsert;

const { id: _id, createdAt: _c, updatedAt: _u, ...WRITTEN } = getTableColumns(emailAnalysis);
type Written = keyof typeof WRITTEN;
const WRITTEN_KEYS = Object.keys(WRITTEN) as Written[];

/** Values for columns a row leaves out: a replaced row keeps nothing of the one before it. */
const DEFAULTS: Partial<Record<Written, unknown>> = {
  status: 'analyzed',
  tags: [],
  reasons: [],
  sensitive: [],
  signals: {},
  signalReasons: [],
  keywords: [],
  leftOut: [],
  parseWarnings: [],
  cacheHit: false,
};

function buildFindByHash(db: Db) {
  return db.orm
    .select()
    .from(emailAnalysis)
    .where(and(eq(emailAnalysis.contentHash, sql.placeholder('hash')), eq(emailAnalysis.status, 'analyzed')))
    .limit(1)
    .prepare('mailsight_find_by_content');
}

const findByHashStatement = perDb(buildFindByHash);

/** The columns the pipeline writes, by their names in the database, as a Postgres array literal (plain identifiers). */
const WRITTEN_COLUMNS = `{${WRITTEN_KEYS.map((k) => WRITTEN[k].name).join(',')}}`;

/**
 * Writes the analysis row; a retry or a forced re-analysis replaces the earlier one whole (keeping
 * its id and created_at). Through llm_write_analysis (drizzle/0015): llm_email_analysis is
 * partitioned by month and no unique index spans the partitions, so the function holds an advisory
 * lock on the message key while it looks for the row and writes it. One statement, no client-side
 * transaction: postgres.js 3.4.9 ends the process when a connection drops inside one (its own
 * ROLLBACK writes to the closed socket, porsager/postgres#1208).
 */
export async function upsertAnalysis(db: Db, row: NewAnalysis): Promise<void> {
  const values: Record<string, unknown> = {};
  for (const k of WRITTEN_KEYS) values[WRITTEN[k].name] = row[k] ?? DEFAULTS[k] ?? null;
  // Without a fetch, when it was processed.
  values.received_at = row.receivedAt ?? new Date();
  await db.rows(sql`select llm_write_analysis(${WRITTEN_COLUMNS}::text[], ${JSON.stringify(values)}::jsonb)`);
}

/** An analysed row with this content hash, if any (the content cache). */
export async function findByContentHash(db: Db, hash: string) {
  const [row] = await findByHashStatement(db).execute({ hash });
  return row;
}

/** Columns a followed copy takes from the analysis it follows: all but the key, the id, the move and the timestamps. */
const FOLLOWED = WRITTEN_KEYS.filter(
  (k) => !['mailbox', 'folder', 'uidvalidity', 'uid', 'movedToFolder', 'movedToUid', 'cacheHit', 'promptTokens', 'completionTokens', 'llmMs'].includes(k),
).map((k) => WRITTEN[k].name);
const FOLLOWED_LIST = sql.raw(FOLLOWED.map((c) => `"${c}"`).join(', '));

export type FollowOutcome =
  /** mailsight moved it here itself: nothing to do (the move is recorded on the source row). */
  | { kind: 'own-move'; from: { folder: string; uid: number } }
  /** The user moved or copied an analysed message here: the analysis was copied, no LLM call (`movedTo`: where mailsight had moved the source, if it had). */
  | { kind: 'followed'; from: { folder: string; uid: number }; movedTo: string | null }
  | { kind: 'none' };

/**
 * The analysis in `key`'s mailbox of the message with this Message-ID, elsewhere than `key`:
 * mailsight's own move to `key`'s folder first, then the newest.
 */
function sourceOf(key: MessageKey, messageId: string) {
  return sql`
      select * from llm_email_analysis
      where mailbox = ${key.mailbox} and message_id = ${messageId} and status in (${lit('analyzed', 'skipped')})
        and not ${keyEquals(key)}
      order by (moved_to_folder is not distinct from ${key.folder} and (moved_to_uid is null or moved_to_uid = ${key.uid})) desc, id desc
      limit 1`;
}

/** Where the analysis that `key` would follow (followMessage) says its message is: where mailsight moved it, else where it was analysed. */
export async function followedFrom(db: Db, key: MessageKey, messageId: string): Promise<{ folder: string; uid: number } | null> {
  const [row] = await db.rows<{ folder: string; uid: number | null }>(sql`
    select coalesce(moved_to_folder, folder) as folder, case when moved_to_folder is null then uid else moved_to_uid end as uid
      from (${sourceOf(key, messageId)}) src`);
  return row && row.uid != null ? { folder: row.folder, uid: Number(row.uid) } : null;
}

/**
 * A message that appeared in `key` by IMAP (MessageAppend: a user's MOVE or COPY, an import, or
 * mailsight's own move to Junk), matched by Message-ID within the same mailbox to an analysis it
 * already has. mailsight's own move (the source row names this folder in moved_to_folder, set before
 * the MOVE) records the new UID; any other match is copied to the new place, so the analysis
 * follows the message. One statement: the copy is made only where the key has no row (and the
 * month's unique key stops a racing twin), with a finished queue row for the key, so that the sweep
 * never queues the message again as new mail. The Message-ID comes from Dovecot, and only the
 * mailbox's own IMAP session can append there.
 */
export async function followMessage(db: Db, key: MessageKey, messageId: string): Promise<FollowOutcome> {
  const [row] = await db.rows<{ src_folder: string | null; src_uid: number | null; src_moved_to: string | null; own: boolean; copied: boolean }>(sql`
    with src as (${sourceOf(key, messageId)}
    ), own as (
      update llm_email_analysis a set moved_to_uid = ${key.uid}, updated_at = now()
      from src
      where a.id = src.id and src.moved_to_folder = ${key.folder} and (src.moved_to_uid is null or src.moved_to_uid = ${key.uid})
      returning a.id
    ), copied as (
      insert into llm_email_analysis (mailbox, folder, uidvalidity, uid, cache_hit, prompt_tokens, completion_tokens, llm_ms, ${FOLLOWED_LIST})
      select mailbox, ${key.folder}, ${key.uidvalidity}, ${key.uid}, true, 0, 0, 0, ${FOLLOWED_LIST} from src
      where not exists (select 1 from own) and not exists (select 1 from llm_email_analysis a where ${keyEquals(key, 'a')})
      on conflict do nothing
      returning id
    ), queued as (
      insert into llm_processing_queue (mailbox, folder, uidvalidity, uid, state, source, event, message_id, finished_at, last_error)
      select ${key.mailbox}, ${key.folder}, ${key.uidvalidity}, ${key.uid}, ${lit('done')}, ${lit('push')}, 'MessageAppend', ${messageId}, now(),
             'followed the analysis of ' || (select folder from src) || ' UID ' || (select uid from src)
       where exists (select 1 from copied)
      on conflict do nothing
      returning 1
    )
    select (select folder from src) as src_folder, (select uid from src) as src_uid, (select moved_to_folder from src) as src_moved_to,
           exists (select 1 from own) as own, exists (select 1 from copied) as copied`);
  if (!row?.src_folder) return { kind: 'none' };
  const from = { folder: row.src_folder, uid: Number(row.src_uid) };
  if (row.own) return { kind: 'own-move', from };
  return row.copied ? { kind: 'followed', from, movedTo: row.src_moved_to } : { kind: 'none' };
}

/**
 * Where the message went and which keywords it got, on its analysis row. The UID in the new folder
 * comes from COPYUID, or else from the move's own push, which may have recorded it already.
 */
export async function recordActions(db: Db, key: MessageKey, keywords: string[], movedTo?: { folder: string; uid?: number }) {
  await db.rows(sql`
    update llm_email_analysis
       set keywords = ${textArray(keywords)},
           moved_to_folder = ${movedTo?.folder ?? null},
           moved_to_uid = case when ${movedTo?.folder ?? null}::text is null then null else coalesce(${movedTo?.uid ?? null}::bigint, moved_to_uid) end,
           updated_at = now()
     where ${keyEquals(key)}
    returning id`);
}

/**
 * Raises a stored verdict that is still legit or unknown to a campaign's (campaigns.ts); false when
 * it is no longer either (judged again meanwhile). The model's own verdict stays in model_verdict.
 */
export async function raiseVerdict(db: Db, key: MessageKey, d: { verdict: string; confidence: number; phishingScore: number; isSpam: boolean; isPhishing: boolean; verdictSource: string }): Promise<boolean> {
  const rows = await db.rows(sql`
    update llm_email_analysis
       set verdict = ${d.verdict}, confidence = ${d.confidence}, is_spam = ${d.isSpam}, is_phishing = ${d.isPhishing},
           phishing_score = greatest(coalesce(phishing_score, 0), ${d.phishingScore}), verdict_source = ${d.verdictSource}, updated_at = now()
     where ${keyEquals(key)} and coalesce(verdict, 'unknown') in (${lit('legit', 'unknown')})
    returning id`);
  return rows.length > 0;
}

/** The move about to be made (the UID there is not known yet). */
export async function recordMoving(db: Db, key: MessageKey, target: string) {
  await db.rows(sql`update llm_email_analysis set moved_to_folder = ${target}, moved_to_uid = null, updated_at = now() where ${keyEquals(key)} returning id`);
}

/** A move that did not happen: unless its push arrived (then it did), the row says the message stayed. */
export async function clearMoving(db: Db, key: MessageKey) {
  await db.rows(sql`update llm_email_analysis set moved_to_folder = null, updated_at = now() where ${keyEquals(key)} and moved_to_folder is not null and moved_to_uid is null returning id`);
}
