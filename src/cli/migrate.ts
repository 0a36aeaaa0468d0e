import { loadConfig } from '../config.js';
import { openDb } from '../db/client.js';
import { migrate } from '../db/migrate.js';
import { logDestination } from '../log-format.js';
import { createLogger } from '../logger.js';

/** `mailsight migrate`: apply the migrations to the configured database and exit. */
export async function migrateCommand(): Promise<number> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel, logDestination(config.logFormat));
  const db = await openDb(config);
  try {
    await migrate(db, config.databaseUrl);
    logger.info({ driver: db.kind }, 'migrations applied');
  } finally {
    await db.close();
  }
  return 0;
}
