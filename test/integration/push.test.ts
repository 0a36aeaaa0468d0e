import { createServer, type Server } from 'node:net';
import { request as httpRequest } from 'node:http';
import { count, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { createLogger } from '../../src/logger.js';
import { openPostgres } from '../../src/db/client.js';
import { processingQueue } from '../../src/db/schema.js';
import { startMailsight, type Mailsight } from '../support/mailsight.js';
import { waitFor } from '../support/wait.js';
import { DRIVERS, describeWith, openTestDb, postgresAvailable, silentLogger, testConfig, type TestDb } from '../support/services.js';

const PASSWORD = 'push-secret';
const json = (res: Response): Promise<any> => res.json();
const AUTH = `Basic ${Buffer.from(`dovecot:${PASSWORD}`).toString('base64')}`;

const ox = (uid: number, extra: Record<string, unknown> = {}) => ({
  user: 'alice@example.test',
  event: 'messageNew',
  folder: 'INBOX',
  'imap-uidvalidity': 1795249885,
  'imap-uid': uid,
  from: 'Sender <s@example.test>',
  subject: 'Hello',
  ...extra,
});

function appFor(db: TestDb['db'], overrides: Record<string, any> = {}) {
  const config = testConfig(overrides);
  const creds = config.push.auth === 'none' ? null : { username: 'dovecot', password: PASSWORD, generated: false };
  return createApp({ config, db, logger: silentLogger, pushCredentials: creds });
}

function push(app: ReturnType<typeof appFor>, body: unknown, init: { method?: string; auth?: string | null; raw?: string } = {}) {
  const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
  const auth = init.auth === undefined ? AUTH : init.auth;
  if (auth) headers.authorization = auth;
  return app.request('/push/dovecot', {
    method: init.method ?? 'PUT',
    headers,
    body: init.raw ?? JSON.stringify(body),
  });
}

const pgUp = await postgresAvailable();

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`push endpoint on ${driver}`, () => {
    let t: TestDb;
    let app: ReturnType<typeof appFor>;
    beforeAll(async () => {
      t = await openTestDb(driver);
      app = appFor(t.db);
    });
    afterAll(async () => t?.close());

    const rowCount = async () => (await t.db.orm.select({ n: count() }).from(processingQueue))[0]!.n;

    describe('auth', () => {
      it.each([
        ['no Authorization header', null, 401],
        ['a wrong password', `Basic ${Buffer.from('dovecot:nope').toString('base64')}`, 401],
        ['a wrong user', `Basic ${Buffer.from(`root:${PASSWORD}`).toString('base64')}`, 401],
        ['a password with a suffix', `Basic ${Buffer.from(`dovecot:${PASSWORD}x`).toString('base64')}`, 401],
        ['a Bearer token', `Bearer ${PASSWORD}`, 401],
        ['garbage', 'Basic %%%', 401],
        ['the right credentials', AUTH, 202],
      ])('%s', async (_name, auth, status) => {
        const res = await push(app, ox(9000 + status), { auth });
        expect(res.status).toBe(status);
        if (status === 401) {
          expect(res.headers.get('www-authenticate')).toContain('Basic');
          expect((await json(res)).error.code).toBe('UNAUTHORIZED');
        }
      });

      it('accepts anything with PUSH_AUTH=none', async () => {
        const open = appFor(t.db, { push: { auth: 'none' } });
        const res = await push(open, ox(9500), { auth: null });
        expect(res.status).toBe(202);
      });
    });

    it('queues a push with 202 and says it is new; a duplicate changes nothing', async () => {
      const first = await push(app, ox(1));
      expect(first.status).toBe(202);
      expect(await json(first)).toMatchObject({ status: 'queued', new: true });
      const before = await t.db.orm.select().from(processingQueue).where(eq(processingQueue.uid, 1));
      const second = await push(app, ox(1), { method: 'POST' });
      expect(second.status).toBe(202);
      expect(await json(second)).toMatchObject({ status: 'queued', new: false });
      const after = await t.db.orm.select().from(processingQueue).where(eq(processingQueue.uid, 1));
      expect(after).toEqual(before);
      expect(after[0]).toMatchObject({
        mailbox: 'alice@example.test',
        folder: 'INBOX',
        uidvalidity: 1795249885,
        uid: 1,
        state: 'queued',
        source: 'push',
        subject: 'Hello',
        attempts: 0,
      });
    });

    it('answers events it does not act on with 202 and a reason', async () => {
      const res = await push(app, { driver: 'lua', event: 'MailboxCreate', user: 'a@b', folder: 'INBOX', uidvalidity: 1, uid: 77 });
      expect(res.status).toBe(202);
      expect(await json(res)).toEqual({ status: 'ignored', reason: 'event MailboxCreate is not analysed' });
      // A flag event without a Junk keyword says nothing either.
      const flags = await push(app, { driver: 'lua', event: 'FlagsSet', user: 'a@b', folder: 'INBOX', uidvalidity: 1, uid: 77, keywords: ['$label1'] });
      expect(await json(flags)).toEqual({ status: 'ignored', reason: 'no junk keyword set or cleared by the user' });
      const rows = await t.db.orm.select().from(processingQueue).where(eq(processingQueue.uid, 77));
      expect(rows).toHaveLength(0);
    });

    it('marks a queued message gone when a MessageExpunge arrives first', async () => {
      const lua = { driver: 'lua', user: 'carol@example.test', folder: 'Work', uidvalidity: 5, uid: 3 };
      await push(app, { ...lua, event: 'MessageAppend' });
      const res = await push(app, { ...lua, event: 'MessageExpunge' });
      expect(await json(res)).toEqual({ status: 'expunged', dequeued: true, analysisRemoved: false });
      const [row] = await t.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, 'carol@example.test'));
      expect(row).toMatchObject({ state: 'gone', lastError: 'expunged' });
    });

    describe('bad input', () => {
      it.each([
        ['malformed JSON', { raw: '{"user": "alice",' }, 400, 'INVALID_JSON', 'not valid JSON'],
        ['an empty body', { raw: '' }, 400, 'INVALID_JSON', 'not valid JSON'],
        ['a JSON array', { raw: '[1,2]' }, 400, 'VALIDATION_FAILED', 'body must be a JSON object'],
        ['a missing uid', { body: { ...ox(1), 'imap-uid': undefined } }, 400, 'VALIDATION_FAILED', 'imap-uid is required'],
        ['a uid of the wrong type', { body: ox(true as any) }, 400, 'VALIDATION_FAILED', 'imap-uid must be a whole number'],
        ['a negative uidvalidity', { body: ox(1, { 'imap-uidvalidity': -1 }) }, 400, 'VALIDATION_FAILED', 'imap-uidvalidity must be at least 1'],
        ['a missing user', { body: { ...ox(1), user: undefined } }, 400, 'VALIDATION_FAILED', 'user is required'],
        ['a body over 64 KiB', { body: ox(1, { snippet: 'x'.repeat(70_000) }) }, 413, 'PAYLOAD_TOO_LARGE', '65536 bytes'],
      ])('%s', async (_name, input: any, status, code, message) => {
        const before = await rowCount();
        const res = await push(app, input.body, { raw: input.raw });
        expect(res.status).toBe(status);
        const body = await json(res);
        expect(body.error.code).toBe(code);
        expect(body.error.message).toContain(message);
        expect(await rowCount()).toBe(before);
      });

      it('GET gets 405 with Allow', async () => {
        const res = await app.request('/push/dovecot', { headers: { authorization: AUTH } });
        expect(res.status).toBe(405);
        expect(res.headers.get('allow')).toBe('PUT, POST');
      });
    });

    it('500 concurrent pushes of 250 distinct messages give exactly 250 rows', async () => {
      // This checks exactly-once under contention, not Dovecot's deadline (tested under 'database down'):
      // on a loaded 2-core CI machine 500 inserts at once can queue past the default 400 ms and get a 503.
      const patient = appFor(t.db, { push: { dbTimeoutMs: 10_000 } });
      const base = 100_000;
      const bodies = Array.from({ length: 500 }, (_, i) => ox(base + (i % 250), { user: 'load@example.test' }));
      const responses = await Promise.all(bodies.map((b, i) => push(patient, b, { method: i % 2 ? 'POST' : 'PUT' })));
      const results = await Promise.all(responses.map(json));
      const refused = responses.flatMap((r, i) => (r.status === 202 ? [] : [`${r.status} ${JSON.stringify(results[i])}`]));
      expect(refused).toEqual([]);
      expect(results.filter((r: any) => r.new).length).toBe(250);
      const [{ n }] = await t.db.orm
        .select({ n: count() })
        .from(processingQueue)
        .where(eq(processingQueue.mailbox, 'load@example.test')) as [{ n: number }];
      expect(n).toBe(250);
    });

    it('/health and /ready answer', async () => {
      expect((await app.request('/health')).status).toBe(200);
      const ready = await app.request('/ready');
      expect(ready.status).toBe(200);
      expect((await json(ready)).components.database.ok).toBe(true);
    });
  });
}

describeWith('PostgreSQL', pgUp)('database down', () => {
  let blackhole: Server;
  let blackholePort: number;
  const sockets = new Set<import('node:net').Socket>();
  beforeAll(async () => {
    // Accepts TCP connections and never answers: a hung database.
    blackhole = createServer((s) => sockets.add(s));
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
    blackholePort = (blackhole.address() as { port: number }).port;
  });
  afterAll(() => {
    hangUp();
    blackhole.close();
  });
  const hangUp = () => sockets.forEach((s) => s.destroy());

  it.each([
    ['refuses connections', () => 'postgres://postgres@127.0.0.1:1/none'],
    ['hangs', () => `postgres://postgres@127.0.0.1:${blackholePort}/none`],
  ])('a database that %s gives 503 within the deadline (400 ms here), and the process lives on', async (_name, url) => {
    const db = openPostgres(url());
    try {
      // The deadline set short, as an operator may: the answer comes by it (default 1500 ms, under Dovecot's 2 s).
      const app = appFor(db, { push: { dbTimeoutMs: 400 } });
      const started = performance.now();
      const res = await push(app, ox(1));
      const ms = performance.now() - started;
      expect(res.status).toBe(503);
      expect((await json(res)).error.code).toBe('DATABASE_UNAVAILABLE');
      expect(ms).toBeLessThan(500);
      const ready = await app.request('/ready');
      expect(ready.status).toBe(503);
      expect((await json(ready)).components.database.ok).toBe(false);
    } finally {
      hangUp();
      // A client stuck on a hung server does not close gracefully; don't wait for it.
      await Promise.race([db.close().catch(() => {}), new Promise((r) => setTimeout(r, 200))]);
    }
  });
});

describe('request log lines', () => {
  it('a push success is a debug line, a refusal an info line; other routes carry a request id', async () => {
    const t = await openTestDb('pglite');
    try {
      const lines: any[] = [];
      const logger = createLogger('debug', { write: (s: string) => void lines.push(JSON.parse(s)) });
      const config = testConfig();
      const app = createApp({ config, db: t.db, logger, pushCredentials: { username: 'dovecot', password: PASSWORD, generated: false } });
      const requests = () => lines.filter((l) => l.msg === 'request');
      expect((await push(app, ox(1))).status).toBe(202);
      expect((await push(app, ox(2), { auth: null })).status).toBe(401);
      const health = await app.request('/health');
      expect(health.headers.get('x-request-id')).toBeTruthy();
      expect(requests().map((l) => [l.level, l.path, l.status])).toEqual([
        [20, '/push/dovecot', 202],
        [30, '/push/dovecot', 401],
        [30, '/health', 200],
      ]);
      expect(requests()[2].requestId).toBe(health.headers.get('x-request-id'));
    } finally {
      await t.close();
    }
  });
});

describe('embedded database closed under the service', () => {
  it('answers 503, not a crash', async () => {
    const t = await openTestDb('pglite');
    const app = appFor(t.db);
    await t.close();
    const res = await push(app, ox(1));
    expect(res.status).toBe(503);
    expect((await json(res)).error.code).toBe('DATABASE_UNAVAILABLE');
  });
});

describeWith('PostgreSQL', pgUp)('the running service, over a real socket', () => {
  let ms: Mailsight;
  beforeAll(async () => {
    ms = await startMailsight();
  });
  afterAll(async () => {
    await ms?.close();
  });

  const raw = (body: string, headers: Record<string, string>) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(ms.pushUrl, { method: 'PUT', headers: { authorization: `Basic ${Buffer.from('dovecot:push-secret').toString('base64')}`, ...headers } }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });

  it('queues a push read straight from the socket', async () => {
    const res = await raw(JSON.stringify(ox(7)), { 'content-type': 'application/json' });
    expect(res.status).toBe(202);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'queued', new: true });
  });

  it('refuses a body over 64 KiB with 413, by Content-Length and when chunked', async () => {
    const big = JSON.stringify(ox(8, { subject: 'x'.repeat(70 * 1024) }));
    const variants: Record<string, string>[] = [{ 'content-length': String(Buffer.byteLength(big)) }, { 'transfer-encoding': 'chunked' }];
    for (const headers of variants) {
      const res = await raw(big, { 'content-type': 'application/json', ...headers });
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body).error.code).toBe('PAYLOAD_TOO_LARGE');
    }
    const [row] = await ms.db.orm.select({ n: count() }).from(processingQueue).where(eq(processingQueue.uid, 8));
    expect(row!.n).toBe(0);
  });

  it('a client that goes away mid-body queues nothing, its request ends (counted as refused), and the next push is served', async () => {
    const refused = async () => {
      const text = await (await fetch(`${ms.baseUrl}/metrics`)).text();
      return Number(/^mailsight_pushes_total\{outcome="rejected"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    const before = await refused();
    const url = new URL(ms.pushUrl);
    const body = JSON.stringify(ox(9));
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(url, { method: 'PUT', headers: { authorization: `Basic ${Buffer.from('dovecot:push-secret').toString('base64')}`, 'content-type': 'application/json', 'content-length': String(body.length) } });
      req.on('error', () => resolve()); // our own abort
      req.write(body.slice(0, 20), () => setTimeout(() => (req.destroy(), resolve()), 50));
      req.on('response', () => reject(new Error('answered a request whose body never came')));
    });
    // The cut request's handler ended (refused, its answer unread) rather than waiting forever.
    await waitFor(refused, (n) => n === before + 1, 5_000);
    const res = await raw(JSON.stringify(ox(10)), { 'content-type': 'application/json' });
    expect(res.status).toBe(202);
    const rows = await ms.db.orm.select({ uid: processingQueue.uid }).from(processingQueue).where(sql`${processingQueue.uid} in (9, 10)`);
    expect(rows.map((r) => r.uid)).toEqual([10]);
  });

  it('pushes run on their own pool, with synchronous_commit off unless PUSH_SYNCHRONOUS_COMMIT=true', async () => {
    for (const [setting, expected] of [[false, 'off'], [true, 'on']] as const) {
      const db = openPostgres(ms.databaseUrl!, { max: 1, synchronousCommit: setting });
      try {
        const [row] = await db.rows<{ synchronous_commit: string }>(sql`show synchronous_commit`);
        expect(row!.synchronous_commit).toBe(expected);
      } finally {
        await db.close();
      }
    }
    expect(testConfig().push.synchronousCommit).toBe(false);
    const [active] = await ms.db.rows<{ n: number }>(sql`select count(*)::int as n from pg_stat_activity where application_name = 'mailsight-push'`);
    expect(active!.n).toBeGreaterThan(0);
  });
});
