import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveAnalysis } from '../../src/analysis/audit.js';
import { upsertAnalysis, type NewAnalysis } from '../../src/analysis/store.js';
import { listAnalyses } from '../../src/queries/analyses.js';
import { createApp } from '../../src/app.js';
import { checkKeys, KeyMismatchError, registeredKeyIds } from '../../src/privacy/keys.js';
import { ContentProtection } from '../../src/privacy/protection.js';
import { rotateKeys } from '../../src/privacy/rotate.js';
import { keyId, parseKey, SealError, Sealer } from '../../src/privacy/sealer.js';
import { expireContent } from '../../src/queue/retention.js';
import { startMailsight } from '../support/mailsight.js';
import { DRIVERS, describeWith, openTestDb, postgresAvailable, silentLogger, testConfig, type TestDb } from '../support/services.js';

const KEY_A = randomBytes(32);
const KEY_B = randomBytes(32);
const SECRET_SUBJECT = 'Merger talks with Globex, strictly confidential';
const SECRET_SUMMARY = 'The board discusses acquiring Globex for 40 million';
const SECRET_SENDER = 'ceo@initech.example';

const sealing = (current: Buffer, previous: Buffer[] = []) => new ContentProtection({ sealer: new Sealer(current, previous), keepHeaders: true });
const plaintext = new ContentProtection({ sealer: null, keepHeaders: true });

function analysis(mailbox: string, uid: number, over: Partial<NewAnalysis> = {}): NewAnalysis {
  return {
    mailbox,
    folder: 'INBOX',
    uidvalidity: 1,
    uid,
    status: 'analyzed',
    subject: `${SECRET_SUBJECT} #${uid}`,
    fromAddress: SECRET_SENDER,
    fromName: 'Bill Lumbergh',
    summary: `${SECRET_SUMMARY} (${uid})`,
    tags: ['merger', 'board'],
    reasons: ['internal sender'],
    priorityReason: 'board matter',
    replySuggestion: 'Noted.',
    category: 'work',
    verdict: 'legit',
    confidence: 0.9,
    priority: 8,
    ...over,
  };
}

describe('Sealer', () => {
  it('round-trips, binds the mailbox, and refuses tampering or an unknown key', () => {
    const s = new Sealer(KEY_A);
    const sealed = s.seal({ summary: SECRET_SUMMARY }, 'alice@example.test');
    expect(sealed).toMatch(new RegExp(`^ms1\\.${keyId(KEY_A)}\\.`));
    expect(sealed).not.toContain('Globex');
    expect(s.open(sealed, 'alice@example.test')).toEqual({ summary: SECRET_SUMMARY });
    expect(() => s.open(sealed, 'bob@example.test')).toThrow(SealError);
    const tampered = sealed.slice(0, -4) + (sealed.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    expect(() => s.open(tampered, 'alice@example.test')).toThrow(SealError);
    expect(() => new Sealer(KEY_B).open(sealed, 'alice@example.test')).toThrow(/not configured/);
    expect(new Sealer(KEY_B, [KEY_A]).open(sealed, 'alice@example.test')).toEqual({ summary: SECRET_SUMMARY });
  });

  it('takes keys as 64 hex characters or base64, and refuses anything else', () => {
    expect(parseKey(KEY_A.toString('hex'))).toEqual(KEY_A);
    expect(parseKey(KEY_A.toString('base64'))).toEqual(KEY_A);
    for (const bad of ['', 'short', 'x'.repeat(64), KEY_A.toString('hex').slice(2)]) expect(() => parseKey(bad)).toThrow(SealError);
  });

  it('a bad ENCRYPTION_KEY is a configuration error that does not echo the key', () => {
    expect(() => testConfig({ privacy: { encryptionKey: 'not-a-key' } })).toThrow(/32 random bytes/);
  });
});

const pgUp = await postgresAvailable();

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`content at rest on ${driver}`, () => {
    let t: TestDb;
    beforeAll(async () => {
      t = await openTestDb(driver);
    });
    afterAll(async () => t?.close());

    const rawRows = async (table: string, mailbox: string) =>
      JSON.stringify(await t.db.rows(sql`select * from ${sql.identifier(table)} where mailbox = ${mailbox}`));

    it('sealed rows hold no readable content; the API reads it back with the key, filters still work', async () => {
      const mailbox = `sealed-${driver}@example.test`;
      const p = sealing(KEY_A);
      await upsertAnalysis(t.db, p.protectAnalysis(analysis(mailbox, 1)));
      await upsertAnalysis(t.db, p.protectAnalysis(analysis(mailbox, 2, { verdict: 'phishing', isPhishing: true, category: 'security' })));
      const raw = await rawRows('llm_email_analysis', mailbox);
      for (const secret of ['Globex', 'Initech', 'initech', 'Lumbergh', 'merger', 'board matter', 'Noted.']) expect(raw).not.toContain(secret);
      expect(raw).toContain(keyId(KEY_A));

      // A push through the real endpoint: From and Subject are sealed in the queue too.
      const app = createApp({
        config: testConfig({ apiKey: 'privacy-admin-key-000000', push: { auth: 'none' }, privacy: { encryptionKey: KEY_A.toString('hex') } }),
        db: t.db,
        logger: silentLogger,
        pushCredentials: null,
      });
      const res = await app.request('/push/dovecot', {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user: mailbox, folder: 'INBOX', 'imap-uidvalidity': 1, 'imap-uid': 3, from: `Bill <${SECRET_SENDER}>`, subject: SECRET_SUBJECT }),
      });
      expect(res.status).toBe(202);
      expect(await rawRows('llm_processing_queue', mailbox)).not.toMatch(/Globex|initech/);

      const page = (await (await app.request(`/api/v1/get/llm/analysis?mailbox=${mailbox}&verdict=phishing`, { headers: { 'x-api-key': 'privacy-admin-key-000000' } })).json()) as any;
      expect(page.items).toHaveLength(1);
      expect(page.items[0]).toMatchObject({ email_id: 2, subject: `${SECRET_SUBJECT} #2`, from_address: SECRET_SENDER, tags: ['merger', 'board'], summary: `${SECRET_SUMMARY} (2)` });

      // Without the key the rows cannot be read: a reader with another key gets no garbage, and the
      // list still answers, each row marked unreadable with the key it is sealed with.
      for (const reader of [sealing(KEY_B), plaintext]) {
        const unreadable = await listAnalyses(t.db, { mailbox, limit: 10 }, reader);
        expect(unreadable.items.length).toBeGreaterThan(0);
        for (const item of unreadable.items) {
          expect(item).toMatchObject({ unreadable_key_id: keyId(KEY_A), summary: null, subject: null, from_address: null, tags: [] });
          expect(item.verdict).not.toBeNull(); // metadata is never sealed: filters and verdicts still work
        }
      }
      // The strict reader (rotation's) still refuses: it must never re-seal emptied content.
      const [row] = (await t.db.rows(sql`select mailbox, sealed_headers as "sealedHeaders", sealed_content as "sealedContent" from llm_email_analysis where mailbox = ${mailbox} limit 1`)) as any[];
      expect(() => sealing(KEY_B).revealAnalysis(row)).toThrow(SealError);
    });

    it('start-up refuses a wrong key or a missing one once data is sealed, and accepts the right one', async () => {
      await checkKeys(t.db, new Sealer(KEY_A), silentLogger);
      expect(await registeredKeyIds(t.db)).toEqual([keyId(KEY_A)]);
      await expect(checkKeys(t.db, new Sealer(KEY_B), silentLogger)).rejects.toThrow(KeyMismatchError);
      await expect(checkKeys(t.db, null, silentLogger)).rejects.toThrow(/it is not set/);
      await checkKeys(t.db, new Sealer(KEY_A), silentLogger);
      await checkKeys(t.db, new Sealer(KEY_B, [KEY_A]), silentLogger); // a rotation about to start
      expect(await registeredKeyIds(t.db)).toEqual([keyId(KEY_A), keyId(KEY_B)]);
    });

    it('rotation of 1,000 rows, interrupted halfway and resumed: every row readable with the new key alone', async () => {
      const mailbox = `rotate-${driver}@example.test`;
      const old = sealing(KEY_A);
      for (let uid = 1; uid <= 1000; uid++) await upsertAnalysis(t.db, old.protectAnalysis(analysis(mailbox, uid)));
      // A replaced result archived in the audit trail, sealed with the old key, is re-sealed too.
      await archiveAnalysis(t.db, { mailbox, folder: 'INBOX', uidvalidity: 1, uid: 7 }, 'forced re-analysis');

      const both = sealing(KEY_B, [KEY_A]);
      const stop = new AbortController();
      let batches = 0;
      const first = await rotateKeys(t.db, both, {
        batchSize: 100,
        signal: stop.signal,
        onBatch: () => {
          if (++batches === 5) stop.abort();
        },
      });
      expect(first.complete).toBe(false);
      const counts = await t.db.rows<{ key_id: string; n: number }>(sql`
        select key_id, count(*)::int as n from llm_email_analysis where mailbox = ${mailbox} group by key_id order by key_id`);
      const byKey = Object.fromEntries(counts.map((c) => [c.key_id, Number(c.n)]));
      // Five batches of 100 re-sealed (a few of them other mailboxes' rows): about half of these.
      expect(byKey[keyId(KEY_B)]! + byKey[keyId(KEY_A)]!).toBe(1000);
      expect(byKey[keyId(KEY_B)]).toBeGreaterThanOrEqual(450);
      expect(byKey[keyId(KEY_A)]).toBeGreaterThanOrEqual(450);
      // Halfway, the service (with both keys) reads every row.
      const mid = await listAnalyses(t.db, { mailbox, limit: 200 }, both);
      expect(mid.items.every((i) => i.summary?.startsWith(SECRET_SUMMARY))).toBe(true);

      const rest = await rotateKeys(t.db, both, { batchSize: 100 });
      expect(rest.complete).toBe(true);
      expect(rest.analyses).toBeGreaterThanOrEqual(500);
      expect(await registeredKeyIds(t.db)).toEqual([keyId(KEY_B)]);

      const onlyNew = sealing(KEY_B);
      let cursor: string | undefined;
      let seen = 0;
      do {
        const page = await listAnalyses(t.db, { mailbox, limit: 200, cursor }, onlyNew);
        for (const i of page.items) expect(i.summary).toBe(`${SECRET_SUMMARY} (${i.email_id})`);
        seen += page.items.length;
        cursor = page.next_cursor ?? undefined;
      } while (cursor);
      expect(seen).toBe(1000);
      const [audit] = await t.db.rows<{ details: any; mailbox: string }>(sql`select mailbox, details from llm_audit_log where mailbox = ${mailbox}`);
      expect(onlyNew.revealAuditDetails(audit!.mailbox, audit!.details)).toMatchObject({ summary: `${SECRET_SUMMARY} (7)` });
      // The old key may go now.
      await checkKeys(t.db, new Sealer(KEY_B), silentLogger);
    });

    it('PRIVACY_KEEP_HEADERS=false stores no subject or sender, sealed or not', async () => {
      const mailbox = `noheaders-${driver}@example.test`;
      const p = new ContentProtection({ sealer: null, keepHeaders: false });
      await upsertAnalysis(t.db, p.protectAnalysis(analysis(mailbox, 1)));
      const raw = await rawRows('llm_email_analysis', mailbox);
      expect(raw).not.toContain(SECRET_SUBJECT);
      expect(raw).not.toContain(SECRET_SENDER);
      expect(raw).toContain(SECRET_SUMMARY); // content is kept; headers are not
      expect(p.protectQueueHeaders(mailbox, { fromHeader: SECRET_SENDER, subject: SECRET_SUBJECT })).toEqual({ fromHeader: null, subject: null, sealedHeaders: null, keyId: null });
    });

    it('PRIVACY_SUMMARY_DAYS strips content from older analyses and keeps their verdicts', async () => {
      const mailbox = `expire-${driver}@example.test`;
      for (const p of [plaintext, sealing(KEY_B)]) {
        await upsertAnalysis(t.db, p.protectAnalysis(analysis(mailbox, p === plaintext ? 1 : 2, { contentHash: `h-${driver}-${p === plaintext}` })));
      }
      await upsertAnalysis(t.db, plaintext.protectAnalysis(analysis(mailbox, 3)));
      await t.db.rows(sql`update llm_email_analysis set created_at = now() - interval '40 days' where mailbox = ${mailbox} and uid in (1, 2)`);
      expect(await expireContent(t.db, 30)).toBe(2);
      const rows = await t.db.rows<Record<string, any>>(sql`
        select uid, summary, reasons, tags, reply_suggestion, sealed_content, content_hash, verdict, category, priority
        from llm_email_analysis where mailbox = ${mailbox} order by uid`);
      for (const r of rows.slice(0, 2)) {
        expect(r).toMatchObject({ summary: null, reasons: [], tags: [], reply_suggestion: null, sealed_content: null, content_hash: null, verdict: 'legit', category: 'work', priority: 8 });
      }
      expect(rows[2]!.summary).toContain(SECRET_SUMMARY);
      expect(await expireContent(t.db, 30)).toBe(0);
    });
  });
}

describeWith('PostgreSQL', pgUp)('rotate-key and start-up with the real processes', () => {
  const BIN = new URL('../../bin/mailsight.js', import.meta.url).pathname;
  let t: TestDb;
  beforeAll(async () => {
    t = await openTestDb('postgres');
  });
  afterAll(async () => t?.close());

  it('killed with SIGKILL mid-rotation, run again: completes, every row readable with the new key', async () => {
    const mailbox = 'cli-rotate@example.test';
    const old = sealing(KEY_A);
    await checkKeys(t.db, new Sealer(KEY_A), silentLogger);
    for (let uid = 1; uid <= 1000; uid++) await upsertAnalysis(t.db, old.protectAnalysis(analysis(mailbox, uid)));
    const env = { ...process.env, DATABASE_URL: t.url!, ENCRYPTION_KEY: KEY_B.toString('hex'), ENCRYPTION_KEY_PREVIOUS: KEY_A.toString('hex'), LOG_LEVEL: 'warn' };

    const child = spawn(process.execPath, [BIN, 'rotate-key', '--batch-size', '50'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        if ((out.match(/re-sealed/g) ?? []).length >= 3) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', () => resolve());
    });
    await new Promise((r) => child.once('exit', r).once('close', r));
    const [{ n: left } = { n: 0 }] = await t.db.rows<{ n: number }>(sql`
      select count(*)::int as n from llm_email_analysis where mailbox = ${mailbox} and key_id = ${keyId(KEY_A)}`);
    expect(Number(left)).toBeGreaterThan(0);
    expect(Number(left)).toBeLessThan(1000);

    const again = await promisify(execFile)(process.execPath, [BIN, 'rotate-key', '--batch-size', '50'], { env });
    expect(again.stdout).toMatch(/^done: \d+ analyses/m);
    const page = await listAnalyses(t.db, { mailbox, limit: 200 }, sealing(KEY_B));
    expect(page.items.every((i) => i.summary === `${SECRET_SUMMARY} (${i.email_id})`)).toBe(true);
    const [{ n } = { n: 0 }] = await t.db.rows<{ n: number }>(sql`
      select count(*)::int as n from llm_email_analysis where mailbox = ${mailbox} and key_id = ${keyId(KEY_B)}`);
    expect(Number(n)).toBe(1000);
  });

  it('the service refuses to start with a wrong key, and names the fix', async () => {
    await expect(startMailsight({ databaseUrl: t.url, privacy: { encryptionKey: randomBytes(32).toString('hex') } })).rejects.toThrow(
      /sealed with key .* ENCRYPTION_KEY_PREVIOUS/,
    );
    await expect(startMailsight({ databaseUrl: t.url })).rejects.toThrow(/it is not set/);
    const ok = await startMailsight({ databaseUrl: t.url, privacy: { encryptionKey: KEY_B.toString('hex') } });
    await ok.stopOnly();
  });
});

describeWith('PostgreSQL', pgUp)('rotate-key while an instance still seals with the old key', () => {
  const BIN = new URL('../../bin/mailsight.js', import.meta.url).pathname;
  let t: TestDb;
  beforeAll(async () => {
    t = await openTestDb('postgres');
  });
  afterAll(async () => t?.close());

  it('is not reported done, and start-up without the old key refuses, naming it; done once the instance runs the new key', async () => {
    const mailbox = 'live-rotate@example.test';
    const pushHeaders = async (ms: Awaited<ReturnType<typeof startMailsight>>, uid: number) => {
      const res = await fetch(ms.pushUrl, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('dovecot:push-secret').toString('base64')}` },
        body: JSON.stringify({ user: mailbox, folder: 'INBOX', 'imap-uidvalidity': 1, 'imap-uid': uid, subject: `${SECRET_SUBJECT} ${uid}` }),
      });
      expect(res.status).toBe(202);
    };
    const env = { ...process.env, DATABASE_URL: t.url!, ENCRYPTION_KEY: KEY_B.toString('hex'), ENCRYPTION_KEY_PREVIOUS: KEY_A.toString('hex'), LOG_LEVEL: 'warn' };
    const rotate = () => promisify(execFile)(process.execPath, [BIN, 'rotate-key'], { env }).then((r) => ({ code: 0, stdout: r.stdout }), (e) => ({ code: e.code as number, stdout: e.stdout as string }));

    // An instance running with the old key.
    const old = await startMailsight({ databaseUrl: t.url, privacy: { encryptionKey: KEY_A.toString('hex') }, processing: { workers: false } });
    try {
      await pushHeaders(old, 1);
      const first = await rotate();
      expect(first.code).toBe(4);
      expect(first.stdout).toMatch(/not done: .*\n {2}\S+: key [0-9a-f]+, last seen/);
      expect(first.stdout).toContain(keyId(KEY_A));
      // It goes on sealing with the old key after the rotation...
      await pushHeaders(old, 2);
      // ...so a start with only the new key refuses, naming the old one.
      await expect(startMailsight({ databaseUrl: t.url, privacy: { encryptionKey: KEY_B.toString('hex') } })).rejects.toThrow(new RegExp(`sealed with key ${keyId(KEY_A)}`));
    } finally {
      await old.stopOnly();
    }
    // The instance restarted with the new key (and the old one to read): now the rotation completes.
    const renewed = await startMailsight({ databaseUrl: t.url, privacy: { encryptionKey: KEY_B.toString('hex'), previousKeys: KEY_A.toString('hex') }, processing: { workers: false } });
    try {
      const second = await rotate();
      expect(second.code).toBe(0);
      expect(second.stdout).toMatch(/^done: /m);
    } finally {
      await renewed.stopOnly();
    }
    const ok = await startMailsight({ databaseUrl: t.url, privacy: { encryptionKey: KEY_B.toString('hex') }, processing: { workers: false } });
    await ok.stopOnly();
  });
});
