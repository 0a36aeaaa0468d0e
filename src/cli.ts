/**
 * `mailsight <command>`: dispatch; each command lives in src/cli/ and is imported only when it runs,
 * so `--help` and quick commands do not pay for the database drivers, the IMAP client and the model
 * client (measured: `mailsight --help` 0.6 s with every command imported up front).
 */
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

const out = (text: string) => process.stdout.write(`${text}\n`);

/** Each command's module and its entry; `-1` means the command owns the process from now on. */
const COMMANDS: Record<string, () => Promise<(argv: string[]) => number | Promise<number>>> = {
  serve: async () => async () => {
    await import('./main.js');
    return -1;
  },
  migrate: async () => (await import('./cli/migrate.js')).migrateCommand,
  apikey: async () => (await import('./cli/apikey.js')).apikeyCommand,
  'rotate-key': async () => (await import('./cli/rotate-key.js')).rotateKeyCommand,
  'dovecot-config': async () => (await import('./cli/dovecot-config.js')).dovecotConfigCommand,
  analyze: async () => (await import('./cli/analyze.js')).analyzeCommand,
  backfill: async () => (await import('./cli/backfill.js')).backfillCommand,
  check: async () => (await import('./cli/check.js')).checkCommand,
};

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    out(HELP);
    return command ? 0 : 2;
  }
  const load = COMMANDS[command];
  if (!load) {
    const { UsageError } = await import('./cli/common.js');
    throw new UsageError(`unknown command "${command}"\n\n${HELP}`);
  }
  if ((command === 'serve' || command === 'migrate') && rest.includes('--help')) {
    out(HELP);
    return 0;
  }
  return (await load())(rest);
}

/** Errors we explain (configuration, usage, a database in use, a key mismatch) print their message only. */
async function report(err: unknown): Promise<number> {
  const [{ ConfigError }, { UsageError }, { DatabaseInUseError }, { KeyMismatchError }] = await Promise.all([
    import('./config.js'),
    import('./cli/common.js'),
    import('./db/client.js'),
    import('./privacy/keys.js'),
  ]);
  const known = err instanceof ConfigError || err instanceof UsageError || err instanceof DatabaseInUseError || err instanceof KeyMismatchError;
  const code = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1;
  process.stderr.write(`mailsight: ${known || code === 2 ? (err as Error).message : ((err as Error).stack ?? err)}\n`);
  return code;
}

run(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err) => report(err).then((code) => process.exit(code)),
);
