import { freePort, startDovecot, type Dovecot, type DovecotOptions } from './dovecot.js';
import { PUSH_PASSWORD, startMailsight, type Mailsight } from './mailsight.js';
import { startOllamaStandIn, type OllamaStandIn } from './ollama-stand-in.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPostgres, type Db } from '../../src/db/client.js';
import { createTestDatabase } from './services.js';

export interface StackOptions {
  driver?: 'ox' | 'lua';
  users?: string[];
  /** Give mailsight the IMAP master login and the Ollama stand-in, so its workers analyse (default true). */
  analyse?: boolean;
  /** mailsight's database: a fresh Postgres database (default) or the embedded PGlite in its data directory. */
  database?: 'postgres' | 'pglite';
  /** Config overrides for mailsight (merged over fast test settings). */
  mailsight?: Record<string, any>;
  /** Dovecot's TLS, listen address or a configuration of its own (the Mailcow shape). */
  dovecot?: Omit<DovecotOptions, 'users' | 'push'>;
}

/**
 * The push deadline in these stacks. At the default 400 ms, on a loaded 2-core CI machine, the
 * counter test once saw 2 of 3 pushes counted as queued while all 3 messages were analysed: one push
 * passed the deadline (503) and its row was written after all. The deadline has its own tests
 * (test/integration/push.test.ts); this stays below Dovecot's 2 s timeout.
 */
const STACK_PUSH_DB_TIMEOUT_MS = 1_500;

/** Retries and leases sized for tests: seconds, not minutes. */
const FAST_PROCESSING = { retryBaseMs: 100, retryMaxMs: 1_000, leaseSec: 30, intervalSec: 3600, concurrentJobs: 4 };

/**
 * A private Dovecot pushing to mailsight, mailsight's workers fetching from that Dovecot with the
 * master user and asking the Ollama stand-in: the whole path, with nothing mocked but the model.
 * mailsight's port is picked first, so Dovecot's driver line can name it and a restart keeps it.
 */
export async function startStack(opts: StackOptions = {}) {
  const analyse = opts.analyse ?? true;
  const ollama: OllamaStandIn | undefined = analyse ? await startOllamaStandIn() : undefined;
  const port = await freePort();
  const pglite = opts.database === 'pglite';
  const db = pglite ? undefined : await createTestDatabase();
  // PGlite lives in DATA_DIR, so a restart must find the same one.
  const dataDir = pglite ? mkdtempSync(join(tmpdir(), 'mailsight-pglite-')) : undefined;
  const dc: Dovecot = await startDovecot({
    ...opts.dovecot,
    users: opts.users,
    push: { driver: opts.driver ?? 'ox', url: `http://127.0.0.1:${port}/push/dovecot`, username: 'dovecot', password: PUSH_PASSWORD },
  });
  /** Fast test settings, then the stack's overrides, then a restart's: nested sections merge. */
  const overrides = (extra: Record<string, any> = {}) => {
    const merged: Record<string, any> = {
      port,
      ...(db ? { databaseUrl: db.url } : { dataDir, keepDataDir: true }),
      ...opts.mailsight,
      ...extra,
    };
    merged.push = { dbTimeoutMs: STACK_PUSH_DB_TIMEOUT_MS, ...opts.mailsight?.push, ...extra.push };
    if (analyse) {
      const base: Record<string, any> = {
        imap: { host: dc.host, port: dc.imapPort, masterUser: dc.masterUser, masterPassword: dc.masterPassword },
        llm: { host: ollama!.url, timeoutMs: 2_000, hostRestMaxSec: 1 },
        processing: FAST_PROCESSING,
      };
      for (const k of ['imap', 'llm', 'processing']) merged[k] = { ...base[k], ...opts.mailsight?.[k], ...extra[k] };
    }
    return merged;
  };
  const ownDb = db ? openPostgres(db.url, { max: 2 }) : undefined;
  const stack = {
    dc,
    ollama,
    /**
     * The test's view of mailsight's database: its own connection on Postgres (it outlives mailsight's
     * stops and restarts); mailsight's own handle on PGlite (one process owns an embedded database).
     */
    get db(): Db {
      return ownDb ?? stack.ms.db;
    },
    ms: undefined as unknown as Mailsight,
    databaseUrl: db?.url,
    port,
    /**
     * The environment for another mailsight process (the CLI, `npm start`) on this stack: its
     * database, the Dovecot master login, the Ollama stand-in and the push password.
     */
    env(): Record<string, string> {
      return {
        ...(process.env as Record<string, string>),
        ...(db ? { DATABASE_URL: db.url } : {}),
        IMAP_HOST: dc.host,
        IMAP_PORT: String(dc.imapPort),
        IMAP_MASTER_USER: dc.masterUser,
        IMAP_MASTER_PASSWORD: dc.masterPassword,
        ...(ollama ? { OLLAMA_HOST: ollama.url } : {}),
        PUSH_PASSWORD,
        LOG_LEVEL: 'warn',
      };
    },
    /** Stops mailsight (not Dovecot) and starts it again on the same database and port. */
    async restart(extra: Record<string, any> = {}) {
      await stack.ms.stopOnly();
      stack.ms = await startMailsight(overrides(extra));
    },
    /** mailsight down: Dovecot's pushes are refused and lost, as in production. */
    async stopMailsight() {
      await stack.ms.stopOnly();
    },
    async startMailsight(extra: Record<string, any> = {}) {
      stack.ms = await startMailsight(overrides(extra));
    },
    async close() {
      await stack.ms?.stopOnly().catch(() => {});
      await dc.stop();
      await ollama?.close();
      await ownDb?.close();
      await db?.drop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  stack.ms = await startMailsight(overrides());
  return stack;
}
export type Stack = Awaited<ReturnType<typeof startStack>>;
