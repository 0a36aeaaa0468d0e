import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { startService } from '../../src/service.js';
import { createTestDatabase, silentLogger, testConfig } from './services.js';

export const PUSH_PASSWORD = 'push-secret';

/**
 * The real service (startService, as main.ts runs it) on a free port and a fresh Postgres database;
 * or on `databaseUrl` when given (a restart: close() leaves the database alone); or on PGlite in
 * `dataDir` when that is given with `keepDataDir` (the caller owns and removes the directory).
 * `logger` replaces the silent one (tests that read the logs).
 */
export async function startMailsight(overrides: Record<string, any> = {}) {
  const { keepDataDir, logger, ...rest } = overrides;
  const embedded = Boolean(keepDataDir);
  const own = overrides.databaseUrl || embedded ? undefined : await createTestDatabase();
  const url: string | undefined = embedded ? undefined : (overrides.databaseUrl ?? own!.url);
  const dataDir: string = embedded ? overrides.dataDir : mkdtempSync(join(tmpdir(), 'mailsight-'));
  const removeDataDir = () => (embedded ? undefined : rmSync(dataDir, { recursive: true, force: true }));
  const config = testConfig({ databaseUrl: url, dataDir, push: { password: PUSH_PASSWORD }, ...rest });
  const service = await startService(config, logger ?? silentLogger);
  const port = (service.address as AddressInfo).port;
  const baseUrl = `http://127.0.0.1:${port}`;
  return {
    ...service,
    config,
    databaseUrl: url,
    baseUrl,
    pushUrl: `${baseUrl}/push/dovecot`,
    /** Stops the service; keeps the database (for a restart on it). */
    async stopOnly() {
      await service.stop();
      removeDataDir();
    },
    async close() {
      await service.stop();
      await own?.drop();
      removeDataDir();
    },
  };
}
export type Mailsight = Awaited<ReturnType<typeof startMailsight>>;
