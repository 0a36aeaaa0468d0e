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
  const shutdown = () =>
    service.stop().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, shutdown);
  stopWithNpm(logger, shutdown);
}

/** How often a service started by npm looks whether npm is still there. */
const PARENT_CHECK_MS = 1_000;

/**
 * `npx mailsight serve` (npm exec) runs us under `sh -c`: npm passes SIGTERM to that shell, which
 * dies without passing it on, and we would live on as an orphan. Started by npm (npm_command is
 * set), the service stops when its parent is gone. Started any other way (systemd, nohup, a
 * container), a changed parent means nothing.
 */
function stopWithNpm(logger: ReturnType<typeof createLogger>, shutdown: () => void) {
  if (!process.env.npm_command) return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    logger.info({ npmCommand: process.env.npm_command }, 'npm, which started this service, is gone (stopped by a signal): stopping');
    shutdown();
  }, PARENT_CHECK_MS);
  timer.unref();
}

void main();
