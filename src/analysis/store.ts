import { and, eq, getTableColumns, sql } from 'drizzle-orm';
import { perDb, type Db } from '../db/client.js';
import { emailAnalysis } from '../db/schema.js';

/** Writing and reading llm_email_analysis rows: the pipeline's two hot statements, prepared once per database. */

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

function buildUpsert(db: Db) {
  // A placeholder in values() goes through its column's encoder, and the timestamp encoder cannot
  // take null: the one nullable timestamp is passed as text and cast by the database.
  const values = Object.fromEntries(
    WRITTEN_KEYS.map((k) => [k, k === 'sentAt' ? sql`${sql.placeholder(k)}::timestamptz` : sql.placeholder(k)]),
  );
  const set = Object.fromEntries(
    WRITTEN_KEYS.filter((k) => !['mailbox', 'folder', 'uidvalidity', 'uid'].includes(k)).map((k) => [k, sql.raw(`excluded.${WRITTEN[k].name}`)]),
  );
  return db.orm
    .insert(emailAnalysis)
    .values(values as unknown as NewAnalysis)
    .onConflictDoUpdate({
      target: [emailAnalysis.mailbox, emailAnalysis.folder, emailAnalysis.uidvalidity, emailAnalysis.uid],
      set: { ...set, updatedAt: sql`now()` },
    })
    .prepare('mailsight_upsert_analysis');
}

function buildFindByHash(db: Db) {
  return db.orm
    .select()
    .from(emailAnalysis)
    .where(and(eq(emailAnalysis.contentHash, sql.placeholder('hash')), eq(emailAnalysis.status, 'analyzed')))
    .limit(1)
    .prepare('mailsight_find_by_content');
}

const upsertStatement = perDb(buildUpsert);
const findByHashStatement = perDb(buildFindByHash);

/** Writes the analysis row; a retry or a forced re-analysis replaces the earlier one whole. */
export async function upsertAnalysis(db: Db, row: NewAnalysis): Promise<void> {
  const params: Record<string, unknown> = {};
  for (const k of WRITTEN_KEYS) params[k] = row[k] ?? DEFAULTS[k] ?? null;
  params.sentAt = row.sentAt ? row.sentAt.toISOString() : null;
  await upsertStatement(db).execute(params);
}

/** An analysed row with this content hash, if any (the content cache). */
export async function findByContentHash(db: Db, hash: string) {
  const [row] = await findByHashStatement(db).execute({ hash });
  return row;
}
