import { and, eq, sql, type SQL } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';

/**
 * A message, as mailsight names it everywhere (queue, analyses, audit trail, API): the mailbox, the
 * folder, the folder's UIDVALIDITY and the UID. A UID means nothing without its UIDVALIDITY.
 */
export interface MessageKey {
  mailbox: string;
  folder: string;
  uidvalidity: number;
  uid: number;
}

/** Just the key of a row or job (no other fields ride along into a query or a log line). */
export function keyOf(x: MessageKey): MessageKey {
  return { mailbox: x.mailbox, folder: x.folder, uidvalidity: x.uidvalidity, uid: x.uid };
}

/** `mailbox = … and folder = … and uidvalidity = … and uid = …` for raw SQL; `alias` qualifies the columns. */
export function keyEquals(key: MessageKey, alias?: string): SQL {
  const col = (name: string) => sql.raw(alias ? `${alias}.${name}` : name);
  // In parentheses: `not ${keyEquals(…)}` must negate the whole key.
  return sql`(${col('mailbox')} = ${key.mailbox} and ${col('folder')} = ${key.folder} and ${col('uidvalidity')} = ${key.uidvalidity} and ${col('uid')} = ${key.uid})`;
}

/** The same message in two tables (or aliases): a join or correlation condition. */
export function sameMessage(a: string, b: string): SQL {
  return sql.raw(`(${a}.mailbox = ${b}.mailbox and ${a}.folder = ${b}.folder and ${a}.uidvalidity = ${b}.uidvalidity and ${a}.uid = ${b}.uid)`);
}

/** The drizzle condition for a table that has the four key columns. */
export function keyMatches(t: Record<keyof MessageKey, PgColumn>, key: MessageKey): SQL {
  return and(eq(t.mailbox, key.mailbox), eq(t.folder, key.folder), eq(t.uidvalidity, key.uidvalidity), eq(t.uid, key.uid))!;
}
