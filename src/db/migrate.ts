import { fileURLToPath } from 'node:url';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import type { Db } from './client.js';
import { ensurePartitions } from './partitions.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../drizzle', import.meta.url));
/** Arbitrary, fixed: instances starting together take turns migrating. */
const MIGRATION_LOCK_KEY = 0x6d61696c; // "mail"

/**
 * Applies drizzle/ migrations, then makes the months' partitions. On Postgres the migrations run
 * under an advisory lock on a connection of their own, so several instances starting at once do not
 * race each other.
 */
export async function migrate(db: Db, databaseUrl?: string): Promise<void> {
  if (db.kind === 'pglite') {
    await migratePglite(db.orm as any, { migrationsFolder: MIGRATIONS_DIR });
  } else {
    await migratePostgresLocked(databaseUrl);
  }
  // This month's partitions and the next ones (the sweep keeps them made while the service runs).
  await ensurePartitions(db);
}

async function migratePostgresLocked(databaseUrl: string | undefined) {
  if (!databaseUrl) throw new Error('migrate: Postgres needs its URL');
  // fetch_types off as in openPostgres: a connection cut during that query would end the process.
  const client = postgres(databaseUrl, { max: 1, onnotice: () => {}, connect_timeout: 10, fetch_types: false });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    try {
      await migratePostgres(drizzlePostgres(client), { migrationsFolder: MIGRATIONS_DIR });
    } finally {
      await client`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
    }
  } finally {
    await client.end({ timeout: 5 });
  }
}
