import { serve } from '@hono/node-server';
import { createApp } from './app.js';
import type { Config } from './config.js';
import { openDb } from './db/client.js';
import { migrate } from './db/migrate.js';
import { createLogger, type Logger } from './logger.js';
import { localBaseUrl, oxDriverLine, resolvePushCredentials } from './push/credentials.js';

/** How long in-flight requests and jobs get to finish on SIGTERM before we close anyway. */
const SHUTDOWN_GRACE_MS = 10_000;

/** Database, HTTP listener and (later) workers, wired together; returns a stop() that drains them. */
export async function startService(config: Config, logger: Logger) {
  const db = await openDb(config);
  await migrate(db, config.databaseUrl);
  logger.info({ driver: db.kind, dataDir: db.kind === 'pglite' ? config.dataDir : undefined }, 'database ready');

  const pushCredentials = resolvePushCredentials(config);
  if (!pushCredentials) {
    logger.warn('PUSH_AUTH=none: the push endpoint accepts requests without credentials');
  } else if (pushCredentials.generated) {
    logger.info(
      { file: pushCredentials.file },
      `generated a push password; put this line in Dovecot's plugin { } block:\n  ${oxDriverLine(localBaseUrl(config), pushCredentials)}`,
    );
  } else if (pushCredentials.file) {
    logger.info({ file: pushCredentials.file }, 'push password read from file (print it with: cat <file>)');
  }

  const app = createApp({ config, db, logger, pushCredentials });
  const server = serve({ fetch: app.fetch, port: config.port, hostname: config.host });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address();
  logger.info({ address }, 'listening');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      logger.info('shutting down');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Dovecot keeps connections alive: idle ones would hold close() open forever.
      (server as import('node:http').Server).closeIdleConnections?.();
      await Promise.race([closed, new Promise((r) => setTimeout(r, SHUTDOWN_GRACE_MS).unref())]);
      await db.close();
      logger.info('stopped');
    })());
  return { server, db, app, stop, address };
}

