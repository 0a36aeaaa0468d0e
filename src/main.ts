import { logDestination } from './log-format.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { DatabaseInUseError } from './db/client.js';
import { createLogger } from './logger.js';
import { KeyMismatchError } from './privacy/keys.js';
import { startService } from './service.js';

/** The process entry: config -> logger -> service; signals and fatal errors. */
async function main() {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mailsight: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel, logDestination(config.logFormat));
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled rejection; exiting so a supervisor restarts us');
    process.exit(1);
  });
  let service: Awaited<ReturnType<typeof startService>>;
  try {
    service = await startService(config, logger);
  } catch (err) {
    // A refusal we explain (wrong key, database in use) needs no stack trace.
    if (err instanceof KeyMismatchError || err instanceof DatabaseInUseError) logger.fatal(`start-up refused: ${err.message}`);
    else logger.fatal({ err }, 'start-up failed');
    process.exit(1);
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      service.stop().then(
        () => process.exit(0),
        (err) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    });
  }
}

void main();
