import { logDestination } from './log-format.js';
import { ConfigError, loadConfig } from './config.js';
import { DatabaseInUseError, openDb } from './db/client.js';
import { migrate } from './db/migrate.js';
import { createLogger } from './logger.js';
import { KeyMismatchError } from './privacy/keys.js';
import { analyzeCommand } from './cli/analyze.js';
import { apikeyCommand } from './cli/apikey.js';
import { backfillCommand } from './cli/backfill.js';
import { checkCommand } from './cli/check.js';
import { out, UsageError } from './cli/common.js';
import { dovecotConfigCommand } from './cli/dovecot-config.js';
import { rotateKeyCommand } from './cli/rotate-key.js';

/** `mailsight <command>`: dispatch; each command lives in src/cli/. */
const HELP = `usage: mailsight <command> [options]

commands:
  serve           run the service (HTTP push receiver + workers); same as \`npm start\`
  migrate         apply database migrations and exit (DATABASE_URL, or the embedded database in DATA_DIR)
  analyze         analyse one message file (or - for stdin) as the service would
  backfill        queue a mailbox's existing mail for analysis
  dovecot-config  print ready-to-paste Dovecot config for the push
  check           diagnose a deployment: configuration, database, IMAP, Ollama, push
  apikey          create, list and revoke per-mailbox API keys
  rotate-key      re-seal stored content with ENCRYPTION_KEY

\`mailsight <command> --help\` shows a command's options.

Configuration comes from the environment (see README.md).`;

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    out(HELP);
    return command ? 0 : 2;
  }
  switch (command) {
    case 'serve':
      if (rest.includes('--help')) break;
      await import('./main.js');
      return -1; // main.ts owns the process from here
    case 'migrate': {
      if (rest.includes('--help')) break;
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
    case 'apikey':
      return apikeyCommand(rest);
    case 'rotate-key':
      return rotateKeyCommand(rest);
    case 'dovecot-config':
      return dovecotConfigCommand(rest);
    case 'analyze':
      return analyzeCommand(rest);
    case 'backfill':
      return backfillCommand(rest);
    case 'check':
      return checkCommand(rest);
    default:
      throw new UsageError(`unknown command "${command}"\n\n${HELP}`);
  }
  out(HELP);
  return 0;
}

run(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err) => {
    const known = err instanceof ConfigError || err instanceof UsageError || err instanceof DatabaseInUseError || err instanceof KeyMismatchError;
    const code = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1;
    process.stderr.write(`mailsight: ${known || code === 2 ? (err as Error).message : ((err as Error).stack ?? err)}\n`);
    process.exit(code);
  },
);
