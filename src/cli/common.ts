import { readFileSync } from 'node:fs';
import { loadConfig } from '../config.js';
import { openDb, type Db } from '../db/client.js';
import { migrate } from '../db/migrate.js';
import { canonicalMailbox, MailboxNameError } from '../mail/mailbox-name.js';

/** What every `mailsight` command shares: output, usage errors, the database, input files. */

/** A mistake in how the command was called: exit code 2, the message without a stack. */
export class UsageError extends Error {}

export const out = (text: string) => process.stdout.write(`${text}\n`);

/** Runs `fn` against the configured database, migrated, and closes it. */
export async function withDatabase<T>(fn: (db: Db) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const db = await openDb(config);
  try {
    await migrate(db, config.databaseUrl);
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** A mailbox named on the command line, in its canonical form; a name that has none is a usage error. */
export function cliMailbox(name: string): string {
  try {
    return canonicalMailbox(name);
  } catch (err) {
    if (err instanceof MailboxNameError) throw new UsageError(`mailbox ${JSON.stringify(name)}: ${err.message}`);
    throw err;
  }
}

export const when = (d: Date | null) => (d ? d.toISOString().replace(/\.\d+Z$/, 'Z') : '-');

/** A file's bytes, or standard input for `-`. */
export async function readInput(path: string): Promise<Buffer> {
  if (path !== '-') {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new UsageError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
