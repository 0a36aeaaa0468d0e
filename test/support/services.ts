import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { describe } from 'vitest';
import { configSchema, type Config } from '../../src/config.js';
import { openPglite, openPostgres, type Db } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';
import { createLogger } from '../../src/logger.js';

/** The Postgres server the tests create their databases on (postgres@127.0.0.1:5432, trust auth). */
export const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export const silentLogger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

let pgAvailable: boolean | undefined;
export async function postgresAvailable(): Promise<boolean> {
  if (pgAvailable !== undefined) return pgAvailable;
  const sql = postgres(ADMIN_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    pgAvailable = true;
  } catch {
    pgAvailable = false;
  } finally {
    await sql.end({ timeout: 1 });
  }
  return pgAvailable;
}

/**
 * describe() for tests that need a real service. In CI a missing service fails the run:
 * those tests must never be skipped there.
 */
export function describeWith(service: string, available: boolean) {
  if (available) return describe;
  if (process.env.CI) {
    throw new Error(`${service} is required in CI but is not available`);
  }
  return describe.skip;
}

/** A fresh database on the test server, migrated; drop() removes it. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `mailsight_t_${randomBytes(6).toString('hex')}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const a = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}

export interface TestDb {
  db: Db;
  url?: string;
  close: () => Promise<void>;
}

export const DRIVERS = ['postgres', 'pglite'] as const;
export type Driver = (typeof DRIVERS)[number];

/** A migrated database on the given driver: a fresh Postgres database, or an in-memory PGlite. */
export async function openTestDb(driver: Driver): Promise<TestDb> {
  if (driver === 'pglite') {
    const db = await openPglite(undefined);
    await migrate(db);
    return { db, close: () => db.close() };
  }
  const { url, drop } = await createTestDatabase();
  const db = openPostgres(url);
  await migrate(db, url);
  return {
    db,
    url,
    async close() {
      await db.close();
      await drop();
    },
  };
}

export function testConfig(overrides: Record<string, any> = {}): Config {
  const base = {
    port: 0,
    host: '127.0.0.1',
    dataDir: '/tmp/mailsight-test',
    push: { username: 'dovecot', password: 'push-secret' },
    // The auth matrices fail on purpose, many times from one address; the rate limit has its own tests.
    authMaxFailures: 100_000,
    // Likewise the per-key request limit: the API suites make hundreds of requests with one key.
    apiRateLimit: 1_000_000,
    imap: {},
    llm: {},
    processing: {},
    privacy: {},
    logLevel: 'silent',
  };
  const merged: Record<string, any> = { ...base, ...overrides };
  for (const k of ['push', 'imap', 'llm', 'processing', 'privacy'] as const)
    merged[k] = { ...(base as any)[k], ...(overrides[k] ?? {}) };
  return configSchema.parse(merged);
}
