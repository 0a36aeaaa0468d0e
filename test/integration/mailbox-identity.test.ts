import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, sql } from 'drizzle-orm';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApiKey } from '../../src/queries/keys.js';
import { createApp } from '../../src/app.js';
import { openPglite, openPostgres, type Db } from '../../src/db/client.js';
import { migrate, MIGRATIONS_DIR } from '../../src/db/migrate.js';
import { apiKeys, emailAnalysis, processingQueue, userPreferences } from '../../src/db/schema.js';
import { canonicalMailbox } from '../../src/mail/mailbox-name.js';
import { createTestDatabase, DRIVERS, describeWith, postgresAvailable, silentLogger, testConfig } from '../support/services.js';

/**
 * One mailbox, one identity: a hostile review turned `Alice@Example.org` and `aLICE@EXAMPLE.ORG`
 * into second and third mailboxes (the whole INBOX analysed again, every new message once per
 * spelling) and kept a key made for `Carol@Example.org` from seeing `carol@…`. The migration merges
 * what was stored under other spellings; every way in is canonicalised.
 */

const pgUp = await postgresAvailable();
const ADMIN = 'admin-key-for-identity-tests-0123';
const UIDVALIDITY = 1700000000;
const LAST_BEFORE = '0009_audit_message_index';

/** The migrations as they stood before mailbox names were canonical. */
function migrationsBefore(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mailsight-migrations-'));
  cpSync(MIGRATIONS_DIR, dir, { recursive: true });
  const journalFile = join(dir, 'meta/_journal.json');
  const journal = JSON.parse(readFileSync(journalFile, 'utf8'));
  journal.entries = journal.entries.slice(0, journal.entries.findIndex((e: { tag: string }) => e.tag === LAST_BEFORE) + 1);
  writeFileSync(journalFile, JSON.stringify(journal));
  return dir;
}

async function oldDatabase(driver: (typeof DRIVERS)[number]) {
  const folder = migrationsBefore();
  try {
    if (driver === 'pglite') {
      const db = await openPglite(undefined);
      await migratePglite(db.orm as any, { migrationsFolder: folder });
      return { db, url: undefined, close: () => db.close() };
    }
    const { url, drop } = await createTestDatabase();
    const db = openPostgres(url);
    await migratePostgres(db.orm as any, { migrationsFolder: folder });
    return { db, url, close: async () => (await db.close(), await drop()) };
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

const key = (mailbox: string, uid: number) => ({ mailbox, folder: 'INBOX', uidvalidity: UIDVALIDITY, uid });

/** An analysis row as the code of that time wrote it (today's store writes columns added later). */
const oldAnalysis = (db: Db, k: ReturnType<typeof key>, summary = `summary of ${k.uid}`) =>
  db.rows(sql`insert into llm_email_analysis (mailbox, folder, uidvalidity, uid, status, summary, verdict, category, model, prompt_version)
    values (${k.mailbox}, ${k.folder}, ${k.uidvalidity}, ${k.uid}, 'analyzed', ${summary}, 'legit', 'work', 'stand-in', 'test')`);

it('canonical names: ASCII lower case as Dovecot\'s %Lu; the Kelvin sign, spaces and controls have none', () => {
  expect(canonicalMailbox('Alice@Example.ORG')).toBe('alice@example.org');
  expect(canonicalMailbox(' bob@example.org ')).toBe('bob@example.org');
  for (const bad of ['\u212Aaren@example.org', 'jos\u00e9@example.org', 'a b@example.org', 'a\u0000@example.org', '']) {
    expect(() => canonicalMailbox(bad)).toThrow();
  }
});

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`one identity per mailbox on ${driver}`, () => {
    let t: Awaited<ReturnType<typeof oldDatabase>>;
    let db: Db;
    let app: ReturnType<typeof createApp>;
    let carolKey: string;
    let aliceKey: string;

    beforeAll(async () => {
      t = await oldDatabase(driver);
      db = t.db;
      // What the old code stored after the attack: rows under three spellings of alice, a key for Carol@.
      await oldAnalysis(db, key('alice@example.org', 1));
      await oldAnalysis(db, key('Alice@Example.org', 1), 'second analysis of the same message');
      await oldAnalysis(db, key('aLICE@EXAMPLE.ORG', 2));
      await oldAnalysis(db, key('carol@example.org', 1), "carol's own");
      await db.rows(sql`insert into llm_processing_queue (mailbox, folder, uidvalidity, uid, state, source) values
        ('alice@example.org', 'INBOX', ${UIDVALIDITY}, 1, 'done', 'push'),
        ('Alice@Example.org', 'INBOX', ${UIDVALIDITY}, 1, 'queued', 'api'),
        ('aLICE@EXAMPLE.ORG', 'INBOX', ${UIDVALIDITY}, 2, 'done', 'push')`);
      await db.rows(sql`insert into llm_user_preferences (username, auto_analysis, updated_at) values
        ('alice@example.org', true, now() - interval '1 day'), ('aLICE@EXAMPLE.ORG', false, now())`);
      await db.rows(sql`insert into llm_audit_log (mailbox, action) values ('Alice@Example.org', 'analyzed')`);
      await db.rows(sql`insert into llm_config (key, value, updated_at) values
        ('reconcile.cursor:alice@example.org', '{"uidvalidity":1700000000,"uid":1}', now() - interval '1 hour'),
        ('reconcile.cursor:Alice@Example.org', '{"uidvalidity":1700000000,"uid":2}', now())`);
      carolKey = (await createApiKey(db, 'Carol@Example.org')).key;
      await migrate(db, t.url);
      aliceKey = (await createApiKey(db, canonicalMailbox('alice@example.org'))).key;
      app = createApp({ config: testConfig({ apiKey: ADMIN }), db, logger: silentLogger, pushCredentials: null });
    });
    afterAll(async () => t?.close());

    it('the migration merges every spelling into one mailbox, one row per message', async () => {
      const queue = await db.orm.select().from(processingQueue).orderBy(processingQueue.uid);
      expect(queue.map((q) => [q.mailbox, q.uid, q.state])).toEqual([
        ['alice@example.org', 1, 'done'],
        ['alice@example.org', 2, 'done'],
      ]);
      const analyses = await db.orm.select().from(emailAnalysis).orderBy(emailAnalysis.mailbox, emailAnalysis.uid);
      expect(analyses.map((a) => [a.mailbox, a.uid])).toEqual([
        ['alice@example.org', 1],
        ['alice@example.org', 2],
        ['carol@example.org', 1],
      ]);
      expect(analyses[0]!.summary).not.toBe('second analysis of the same message');
      const prefs = await db.orm.select().from(userPreferences);
      expect(prefs.map((p) => [p.username, p.autoAnalysis])).toEqual([['alice@example.org', false]]);
      expect((await db.orm.select().from(apiKeys).where(eq(apiKeys.mailbox, 'carol@example.org'))).length).toBe(1);
      const cursors = await db.rows<{ key: string; uid: string }>(sql`select key, value->>'uid' as uid from llm_config where key like 'reconcile.cursor:%'`);
      expect(cursors).toEqual([{ key: 'reconcile.cursor:alice@example.org', uid: '2' }]);
      const audit = await db.rows<{ mailbox: string }>(sql`select mailbox from llm_audit_log`);
      expect(audit).toEqual([{ mailbox: 'alice@example.org' }]);
    });

    const call = (method: string, path: string, apiKey: string, body?: unknown) =>
      app.request(path, { method, headers: { 'content-type': 'application/json', 'x-api-key': apiKey }, body: body === undefined ? undefined : JSON.stringify(body) });

    // The hostile inputs of the review, as a table: request, key, expected status, and what must hold after.
    it.each([
      ['a key made for Carol@Example.org sees carol@', 'GET', '/api/v1/get/llm/analysis?mailbox=carol@example.org&email_id=1', 'carol', 200],
      ['and by any spelling of it', 'GET', '/api/v1/get/llm/analysis?mailbox=CAROL@example.org&email_id=1', 'carol', 200],
      ["but not alice's", 'GET', '/api/v1/get/llm/analysis?mailbox=Alice@example.org&email_id=1', 'carol', 403],
      ['the Kelvin sign is no k', 'GET', `/api/v1/get/llm/analysis?mailbox=${encodeURIComponent('\u212Aarol@example.org')}&email_id=1`, 'carol', 400],
      ['a NUL is refused', 'GET', '/api/v1/get/llm/analysis?mailbox=carol%00@example.org&email_id=1', 'carol', 400],
    ])('%s', async (_what, method, path, who, status) => {
      const res = await call(method, path, who === 'carol' ? carolKey : aliceKey);
      expect(res.status).toBe(status);
      if (status === 200) expect((await res.json()).mailbox).toBe('carol@example.org');
    });

    it('asking for an analysed message under another spelling queues nothing and calls no model', async () => {
      const before = await db.orm.select().from(processingQueue);
      const res = await call('POST', '/api/v1/add/llm/analyze', aliceKey, { mailbox: 'Alice@Example.org', email_id: 1 });
      expect(res.status).toBe(202);
      expect(await res.json()).toMatchObject({ queued: false });
      expect(await db.orm.select().from(processingQueue)).toHaveLength(before.length);
    });

    it('a push under another spelling lands in the canonical mailbox; one without a canonical form is a 400', async () => {
      const push = (user: string, uid: number) =>
        app.request('/push/dovecot', {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ user, event: 'messageNew', folder: 'INBOX', 'imap-uidvalidity': UIDVALIDITY, 'imap-uid': uid }),
        });
      expect((await push('ALICE@example.org', 3)).status).toBe(202);
      expect((await push('alice@example.org', 3)).status).toBe(202);
      const rows = await db.orm.select().from(processingQueue).where(eq(processingQueue.uid, 3));
      expect(rows.map((r) => r.mailbox)).toEqual(['alice@example.org']);
      const refused = await push('\u212Aarol@example.org', 4);
      expect(refused.status).toBe(400);
      expect((await refused.json()).error.message).toMatch(/user must be printable ASCII/);
    });

    it('preferences set under another spelling are the mailbox\'s own', async () => {
      const res = await call('POST', '/api/v1/edit/llm/preferences', aliceKey, { username: 'aLICE@EXAMPLE.ORG', auto_analysis: true });
      expect(res.status).toBe(200);
      const prefs = await db.orm.select().from(userPreferences);
      expect(prefs.map((p) => [p.username, p.autoAnalysis])).toEqual([['alice@example.org', true]]);
    });
  });
}
