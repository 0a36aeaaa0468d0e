import { ConfigError, loadConfig } from './config.js';
import { openDb } from './db/client.js';
import { migrate } from './db/migrate.js';
import { createLogger } from './logger.js';

/** `mailsight <command>`: the commands that exist so far; later issues add analyze, backfill, ... */
const HELP = `usage: mailsight <command>

commands:
  serve     run the service (HTTP push receiver + workers); same as \`npm start\`
  migrate   apply database migrations and exit (DATABASE_URL, or the embedded database in DATA_DIR)

Configuration comes from the environment (see README.md).`;

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${HELP}\n`);
    return command ? 0 : 2;
  }
  if (rest.includes('--help')) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  switch (command) {
    case 'serve':
      await import('./main.js');
      return -1; // main.ts owns the process from here
    case 'migrate': {
      const config = loadConfig();
      const logger = createLogger(config.logLevel);
      const db = await openDb(config);
      try {
        await migrate(db, config.databaseUrl);
        logger.info({ driver: db.kind }, 'migrations applied');
      } finally {
        await db.close();
      }
      return 0;
    }
    default:
      process.stderr.write(`mailsight: unknown command "${command}"\n\n${HELP}\n`);
      return 2;
  }
}

run(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err) => {
    if (err instanceof ConfigError) process.stderr.write(`mailsight: ${err.message}\n`);
    else process.stderr.write(`mailsight: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
