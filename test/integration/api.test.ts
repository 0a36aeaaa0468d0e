import SwaggerParser from '@apidevtools/swagger-parser';
import { sql } from 'drizzle-orm';
import parsePrometheus from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, revokeApiKey } from '../../src/queries/keys.js';
import { API_PRIORITY_PER_MAILBOX } from '../../src/queries/request-analysis.js';
import { createApp } from '../../src/app.js';
import { auditLog, processingQueue } from '../../src/db/schema.js';
import { claim } from '../../src/queue/lifecycle.js';
import { enqueue, type MessageKey } from '../../src/queue/jobs.js';
import { purgeExpired } from '../../src/queue/retention.js';
import { seedAnalysis } from '../support/seed.js';
import { DRIVERS, describeWith, openTestDb, postgresAvailable, silentLogger, testConfig, type TestDb } from '../support/services.js';

const ADMIN = 'admin-key-for-tests-0123456789';
const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const UIDVALIDITY = 1700000000;
const json = (res: Response): Promise<any> => res.json();

type App = ReturnType<typeof createApp>;

async function call(app: App, method: string, path: string, key: string | null, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== null) headers['x-api-key'] = key;
  return app.request(path, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
}

const key = (mailbox: string, uid: number, folder = 'INBOX', uidvalidity = UIDVALIDITY): MessageKey => ({ mailbox, folder, uidvalidity, uid });

const pgUp = await postgresAvailable();

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`API on ${driver}`, () => {
    let t: TestDb;
    let app: App;
    let aliceKey: string;
    let bobKey: string;
    let revokedKey: string;
    let woken = 0;

    beforeAll(async () => {
      t = await openTestDb(driver);
      app = createApp({
        config: testConfig({ apiKey: ADMIN }),
        db: t.db,
        logger: silentLogger,
        pushCredentials: null,
        onQueued: () => woken++,
      });
      aliceKey = (await createApiKey(t.db, ALICE, 'alice laptop')).key;
      bobKey = (await createApiKey(t.db, BOB)).key;
      const revoked = await createApiKey(t.db, ALICE, 'old');
      await revokeApiKey(t.db, revoked.id);
      revokedKey = revoked.key;

      await seedAnalysis(t.db, key(ALICE, 1));
      await seedAnalysis(t.db, key(ALICE, 2), { verdict: 'phishing', isPhishing: true, category: 'security', priority: 9, sensitive: ['credentials'] });
      await seedAnalysis(t.db, key(ALICE, 3), { status: 'skipped', skipReason: 'auto_analysis is off for this mailbox', verdict: null, category: null });
      await seedAnalysis(t.db, key(ALICE, 4), { status: 'failed', error: 'LLM_BAD_OUTPUT: no JSON', verdict: null, category: null });
      await seedAnalysis(t.db, key(ALICE, 5), { cacheHit: true, promptTokens: 0, completionTokens: 0, llmMs: 0 });
      await seedAnalysis(t.db, key(BOB, 1));
      await enqueue(t.db, { ...key(ALICE, 10), source: 'push', subject: 'waiting' });
      await enqueue(t.db, { ...key(ALICE, 11), source: 'push' });
      await claim(t.db, { workerId: 'test-worker', limit: 10, leaseMs: 60_000 }); // 10 and 11 are processing now
      await enqueue(t.db, { ...key(ALICE, 12), source: 'push' });
      await enqueue(t.db, { ...key(ALICE, 13), source: 'push' });
      await t.db.rows(sql`update llm_processing_queue set state = 'gone', last_error = 'message no longer in the folder' where uid = 13`);
    });
    afterAll(async () => t?.close());

    describe('keys', () => {
      // Every route, asked about alice's mailbox.
      const ROUTES: [string, string, unknown?][] = [
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&email_id=1`],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}`],
        ['POST', '/api/v1/add/llm/analyze', { mailbox: ALICE, email_id: 1 }],
        ['GET', `/api/v1/get/llm/stats?mailbox=${ALICE}`],
        ['GET', `/api/v1/get/llm/preferences?username=${ALICE}`],
        ['POST', '/api/v1/edit/llm/preferences', { username: ALICE, summary_language: 'de' }],
        ['GET', '/api/v1/get/llm/health'],
        ['GET', `/api/v1/get/llm/apikeys?mailbox=${ALICE}`],
        ['POST', '/api/v1/add/llm/apikey', { mailbox: ALICE, name: 'made in a test' }],
      ];
      // Erasing is tested on its own mailbox below; here only who is refused.
      const ERASE: [string, string, unknown] = ['POST', '/api/v1/delete/llm/mailbox', { mailbox: ALICE }];
      const who = () => ({ admin: ADMIN, own: aliceKey, other: bobKey, revoked: revokedKey, wrong: 'not-a-key-at-all-0000', forged: `${aliceKey.slice(0, -2)}xx` });

      it.each(ROUTES)('%s %s: admin key and own mailbox key are let in', async (method, path, body) => {
        for (const k of [ADMIN, aliceKey]) {
          const res = await call(app, method, path, k, body);
          expect(res.status, `${method} ${path}`).toBeLessThan(300);
        }
      });

      it.each([...ROUTES.filter(([, p]) => !p.includes('health')), ERASE])(
        "%s %s: another mailbox's key gets 403",
        async (method, path, body) => {
          const res = await call(app, method, path, who().other, body);
          expect(res.status).toBe(403);
          expect((await json(res)).error.code).toBe('FORBIDDEN');
        },
      );

      it.each([...ROUTES, ERASE])('%s %s: no key, a wrong, forged or revoked key get 401', async (method, path, body) => {
        const w = who();
        for (const k of [null, w.wrong, w.forged, w.revoked]) {
          const res = await call(app, method, path, k, body);
          expect(res.status, `key ${k}`).toBe(401);
          expect((await json(res)).error.code).toBe('UNAUTHORIZED');
        }
      });

      it("an error body carries the answer's request id, which a report can quote; an unknown route too", async () => {
        for (const res of [await call(app, 'GET', '/api/v1/get/llm/stats', null), await app.request('/api/v1/no/such/route')]) {
          const id = res.headers.get('x-request-id');
          expect(id).toMatch(/^[\w-]{8,}$/);
          expect((await json(res)).error.request_id).toBe(id);
        }
      });

      it('a mailbox key asking for stats without a mailbox gets its own', async () => {
        const body = await json(await call(app, 'GET', '/api/v1/get/llm/stats', bobKey));
        expect(body.mailbox).toBe(BOB);
        expect(body.analyses.by_status).toEqual({ analyzed: 1 });
      });

      it('records when a mailbox key was last used, and revocation works at once', async () => {
        const k = await createApiKey(t.db, ALICE);
        expect((await call(app, 'GET', `/api/v1/get/llm/preferences?username=${ALICE}`, k.key)).status).toBe(200);
        const [row] = await t.db.rows<{ last_used_at: unknown }>(sql`select last_used_at from llm_api_keys where id = ${k.id}`);
        expect(row!.last_used_at).not.toBeNull();
        await revokeApiKey(t.db, k.key);
        expect((await call(app, 'GET', `/api/v1/get/llm/preferences?username=${ALICE}`, k.key)).status).toBe(401);
      });

      it("keys over the API: a mailbox key makes, lists and revokes its own mailbox's keys, never another's", async () => {
        const made = await json(await call(app, 'POST', '/api/v1/add/llm/apikey', aliceKey, { mailbox: 'Alice@Example.test', name: 'phone' }));
        expect(made).toMatchObject({ mailbox: ALICE, name: 'phone', key: expect.stringMatching(/^msk_[0-9a-f]{12}_/) });
        expect((await call(app, 'GET', `/api/v1/get/llm/preferences?username=${ALICE}`, made.key)).status).toBe(200);

        const own = await json(await call(app, 'GET', '/api/v1/get/llm/apikeys', aliceKey));
        expect(own.items.length).toBeGreaterThan(1);
        expect(own.items.every((k: any) => k.mailbox === ALICE)).toBe(true);
        expect(JSON.stringify(own)).not.toContain(made.key.slice(-20));
        expect(own.items.find((k: any) => k.id === made.id)).toMatchObject({ name: 'phone', revoked_at: null, last_used_at: expect.any(String) });
        const all = await json(await call(app, 'GET', '/api/v1/get/llm/apikeys', ADMIN));
        expect(new Set(all.items.map((k: any) => k.mailbox))).toEqual(new Set([ALICE, BOB]));

        // Bob's key id is no business of alice's key: refused as if it did not exist.
        const bobId = bobKey.split('_')[1]!;
        const refused = await call(app, 'POST', '/api/v1/delete/llm/apikey', aliceKey, { id: bobId });
        expect(refused.status).toBe(404);
        expect((await call(app, 'GET', `/api/v1/get/llm/stats`, bobKey)).status).toBe(200);

        expect(await json(await call(app, 'POST', '/api/v1/delete/llm/apikey', aliceKey, { id: made.id }))).toEqual({ id: made.id, revoked: true });
        expect((await call(app, 'GET', `/api/v1/get/llm/preferences?username=${ALICE}`, made.key)).status).toBe(401);
        expect((await call(app, 'POST', '/api/v1/delete/llm/apikey', ADMIN, { id: made.id })).status).toBe(404);

        const bad = await call(app, 'POST', '/api/v1/add/llm/apikey', ADMIN, { mailbox: ALICE, name: 'tab\there' });
        expect(bad.status).toBe(400);
        expect((await json(bad)).error.message).toMatch(/name/);
        expect((await call(app, 'POST', '/api/v1/delete/llm/apikey', ADMIN, { id: 'nope' })).status).toBe(400);
      });

      it('stores only a hash of the key', async () => {
        const rows = await t.db.rows<{ hash: string }>(sql`select hash from llm_api_keys`);
        const all = JSON.stringify(rows);
        // The secret is everything after msk_<id>_ (base64url may itself contain '_').
        expect(all).not.toContain(aliceKey.slice('msk_'.length + 12 + 1));
        expect(rows.every((r) => /^[0-9a-f]{64}$/.test(r.hash))).toBe(true);
      });
    });

    describe('bad parameters: 400 naming the parameter', () => {
      it.each([
        ['GET', '/api/v1/get/llm/analysis', undefined, 'mailbox: is required'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&email_id=abc`, undefined, 'email_id'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&email_id=0`, undefined, 'email_id'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&email_id=4294967296`, undefined, 'email_id'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&limit=201`, undefined, 'limit'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&limit=0`, undefined, 'limit'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&limit=ten`, undefined, 'limit'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&verdict=evil`, undefined, 'verdict'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&category=nope`, undefined, 'category'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&is_phishing=maybe`, undefined, 'is_phishing'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&min_priority=11`, undefined, 'min_priority'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&sensitive=yes`, undefined, 'sensitive'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&since=yesterday`, undefined, 'since'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&until=2026-13-45`, undefined, 'until'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&cursor=garbage`, undefined, 'cursor'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&mailbx=x`, undefined, 'mailbx'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&email_id=1&verdict=spam`, undefined, 'verdict'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&uidvalidity=5`, undefined, 'uidvalidity'],
        ['GET', `/api/v1/get/llm/analysis?mailbox=%01x`, undefined, 'mailbox'],
        ['POST', '/api/v1/add/llm/analyze', { email_id: 1 }, 'mailbox'],
        ['POST', '/api/v1/add/llm/analyze', { mailbox: ALICE }, 'email_id'],
        ['POST', '/api/v1/add/llm/analyze', { mailbox: ALICE, email_id: -1 }, 'email_id'],
        ['POST', '/api/v1/add/llm/analyze', { mailbox: ALICE, email_id: 1, force: 'perhaps' }, 'force'],
        ['POST', '/api/v1/add/llm/analyze', { mailbox: ALICE, email_id: 1, folder: '' }, 'folder'],
        ['POST', '/api/v1/add/llm/analyze', { mailbox: ALICE, email_id: 1, extra: 1 }, 'extra'],
        ['GET', '/api/v1/get/llm/stats?since=soon', undefined, 'since'],
        ['GET', '/api/v1/get/llm/preferences', undefined, 'username'],
        ['POST', '/api/v1/edit/llm/preferences', { username: ALICE }, 'preference'],
        ['POST', '/api/v1/edit/llm/preferences', { username: ALICE, auto_analysis: 'sometimes' }, 'auto_analysis'],
        ['POST', '/api/v1/edit/llm/preferences', { username: ALICE, summary_language: '<script>' }, 'summary_language'],
        ['POST', '/api/v1/edit/llm/preferences', { username: ALICE, colour: 'red' }, 'colour'],
        ['POST', '/api/v1/delete/llm/mailbox', {}, 'mailbox'],
      ])('%s %s %j', async (method, path, body, named) => {
        const res = await call(app, method, path, ADMIN, body);
        expect(res.status).toBe(400);
        const err = (await json(res)).error;
        expect(err.code).toBe('VALIDATION_FAILED');
        expect(err.message).toContain(named);
      });

      it('malformed JSON is INVALID_JSON', async () => {
        const res = await call(app, 'POST', '/api/v1/add/llm/analyze', ADMIN, '{"mailbox":');
        expect(res.status).toBe(400);
        expect((await json(res)).error.code).toBe('INVALID_JSON');
      });

      it('a body over 64 KiB is 413', async () => {
        const res = await call(app, 'POST', '/api/v1/edit/llm/preferences', ADMIN, { username: ALICE, pad: 'x'.repeat(70_000) });
        expect(res.status).toBe(413);
      });
    });

    describe('GET one message', () => {
      const one = async (uid: number, k = ADMIN, extra = '') =>
        call(app, 'GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}&email_id=${uid}${extra}`, k);

      it('an analysed message: its analysis and state', async () => {
        const body = await json(await one(2));
        expect(body).toMatchObject({ mailbox: ALICE, folder: 'INBOX', uidvalidity: UIDVALIDITY, email_id: 2, state: 'analyzed' });
        expect(body.analysis).toMatchObject({ verdict: 'phishing', is_phishing: true, category: 'security', priority: 9, sensitive: ['credentials'], model: 'stand-in' });
      });

      it.each([
        [3, 'skipped', 'auto_analysis is off for this mailbox'],
        [4, 'failed', 'LLM_BAD_OUTPUT: no JSON'],
      ])('UID %i: %s with its reason', async (uid, state, reason) => {
        const body = await json(await one(uid));
        expect(body.state).toBe(state);
        expect(body.analysis.skip_reason ?? body.analysis.error).toBe(reason);
      });

      it.each([
        [10, 'processing'],
        [12, 'queued'],
        [13, 'gone'],
      ])('UID %i: %s, from the queue', async (uid, state) => {
        const body = await json(await one(uid));
        expect(body.state).toBe(state);
        expect(body.analysis).toBeNull();
        expect(body.queue.state).toBe(state);
        if (state === 'gone') expect(body.queue.last_error).toBe('message no longer in the folder');
      });

      it('404 for a message mailsight never heard of', async () => {
        const res = await one(999);
        expect(res.status).toBe(404);
        expect((await json(res)).error.code).toBe('NOT_FOUND');
        expect((await one(1, ADMIN, '&folder=Drafts')).status).toBe(404);
      });

      it("uses the folder's current (highest) UIDVALIDITY, or the one asked for", async () => {
        await seedAnalysis(t.db, key(ALICE, 1, 'Archive', UIDVALIDITY), { summary: 'before UIDVALIDITY changed' });
        await seedAnalysis(t.db, key(ALICE, 2, 'Archive', UIDVALIDITY + 1), { summary: 'after UIDVALIDITY changed' });
        const archived = (uid: number, extra = '') => one(uid, ADMIN, `&folder=Archive${extra}`);
        expect((await json(await archived(2))).analysis.summary).toBe('after UIDVALIDITY changed');
        // UID 1 belongs to the old UIDVALIDITY: under the current one mailsight knows nothing of it.
        expect((await archived(1)).status).toBe(404);
        expect((await json(await archived(1, `&uidvalidity=${UIDVALIDITY}`))).analysis.summary).toBe('before UIDVALIDITY changed');
      });
    });

    describe('GET a page of analyses', () => {
      const list = async (q: string, k = ADMIN) => json(await call(app, 'GET', `/api/v1/get/llm/analysis?mailbox=${ALICE}${q}`, k));
      const uids = (body: any) => body.items.map((i: any) => i.email_id);

      it('newest first, only this mailbox', async () => {
        const body = await list('&folder=INBOX');
        expect(body.items.every((i: any) => i.mailbox === ALICE)).toBe(true);
        const ids = body.items.map((i: any) => i.id);
        expect(ids).toEqual([...ids].sort((a, b) => b - a));
      });

      it.each([
        ['&verdict=phishing', [2]],
        ['&is_phishing=true', [2]],
        ['&category=security', [2]],
        ['&min_priority=9', [2]],
        ['&sensitive=true', [2]],
        ['&sensitive=false&verdict=legit', [1, 1, 2, 5]],
        ['&sensitive=false&verdict=legit&folder=INBOX', [1, 5]],
        ['&folder=Spam', []],
      ])('filter %s', async (q, expected) => {
        expect(uids(await list(q)).sort()).toEqual(expected.sort());
      });

      it('since and until select by the time of analysis', async () => {
        const future = new Date(Date.now() + 3600_000).toISOString();
        expect(uids(await list(`&since=${future}`))).toEqual([]);
        expect(uids(await list(`&until=${future}`)).length).toBeGreaterThan(0);
        expect(uids(await list('&until=2000-01-01'))).toEqual([]);
      });

      it('every row exactly once while rows are inserted concurrently', async () => {
        const mailbox = `pager-${driver}@example.test`;
        for (let uid = 1; uid <= 300; uid++) await seedAnalysis(t.db, key(mailbox, uid));
        const seen: number[] = [];
        let cursor: string | null = null;
        let extra = 1000;
        let pages = 0;
        do {
          const q: string = `/api/v1/get/llm/analysis?mailbox=${mailbox}&limit=37${cursor ? `&cursor=${cursor}` : ''}`;
          // New mail arrives between pages, while this page is read too.
          const [res] = await Promise.all([
            call(app, 'GET', q, ADMIN),
            (async () => {
              for (let i = 0; i < 5; i++) await seedAnalysis(t.db, key(mailbox, extra++));
            })(),
          ]);
          const body = await json(res);
          expect(body.items.length).toBeLessThanOrEqual(37);
          seen.push(...body.items.map((i: any) => i.email_id));
          cursor = body.next_cursor;
          pages++;
        } while (cursor);
        const original = seen.filter((u) => u <= 300);
        expect(original.sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
        expect(new Set(seen).size).toBe(seen.length);
        expect(pages).toBeGreaterThanOrEqual(9);
      });

      it('limit caps the page; the default is 50', async () => {
        const mailbox = `pager-${driver}@example.test`;
        const q = (extra: string) => call(app, 'GET', `/api/v1/get/llm/analysis?mailbox=${mailbox}${extra}`, ADMIN).then(json);
        expect((await q('')).items).toHaveLength(50);
        expect((await q('&limit=200')).items).toHaveLength(200);
        expect((await q('&limit=3')).items).toHaveLength(3);
      });
    });

    describe('POST analyze', () => {
      const analyze = (body: Record<string, unknown>, k = ADMIN) => call(app, 'POST', '/api/v1/add/llm/analyze', k, { mailbox: ALICE, ...body });
      const queueRow = async (uid: number) =>
        (await t.db.orm.select().from(processingQueue).where(sql`mailbox = ${ALICE} and uid = ${uid} and uidvalidity = ${UIDVALIDITY}`))[0];

      it('an analysed message is left alone without force', async () => {
        const res = await analyze({ email_id: 2 });
        expect(res.status).toBe(202);
        expect(await json(res)).toMatchObject({ state: 'analyzed', queued: false });
        expect(await queueRow(2)).toBeUndefined();
      });

      it('force queues it ahead of push work, and wakes the workers', async () => {
        const before = woken;
        const res = await analyze({ email_id: 2, force: true }, aliceKey);
        expect(res.status).toBe(202);
        expect(await json(res)).toMatchObject({ state: 'queued', queued: true, force: true, uidvalidity: UIDVALIDITY, email_id: 2 });
        expect(await queueRow(2)).toMatchObject({ state: 'queued', source: 'api', priority: 0, force: true });
        expect(woken).toBe(before + 1);
        // Claimed before the push job that waited longer.
        const [first] = await claim(t.db, { workerId: 'w2', limit: 1, leaseMs: 60_000 });
        expect(first!.uid).toBe(2);
        const audit = await t.db.orm.select().from(auditLog).where(sql`uid = 2 and mailbox = ${ALICE}`);
        expect(audit.map((a) => [a.action, a.reason])).toContainEqual(['reanalysis_requested', expect.stringMatching(/^by key:/)]);
      });

      it('a job being processed is left alone', async () => {
        expect(await json(await analyze({ email_id: 11 }))).toMatchObject({ state: 'processing', queued: false });
      });

      it('a failed, gone or skipped message is queued again with fresh attempts', async () => {
        for (const uid of [3, 4, 13]) {
          // Alice has API jobs queued or running already: past API_PRIORITY_PER_MAILBOX they queue at push priority.
          const [{ n } = { n: 0 }] = await t.db.rows<{ n: number }>(sql`
            select count(*)::int as n from llm_processing_queue where mailbox = ${ALICE} and state in ('queued', 'processing') and priority = 0`);
          const body = await json(await analyze({ email_id: uid }));
          expect(body, `uid ${uid}`).toMatchObject({ state: 'queued', queued: true });
          expect(await queueRow(uid)).toMatchObject({ state: 'queued', attempts: 0, lastError: null, priority: Number(n) < API_PRIORITY_PER_MAILBOX ? 0 : 1 });
        }
      });

      it("without IMAP, a new UID is queued under the folder's UIDVALIDITY on record; an unknown folder is 503", async () => {
        expect(await json(await analyze({ email_id: 4242 }))).toMatchObject({ state: 'queued', uidvalidity: UIDVALIDITY });
        const res = await analyze({ email_id: 4242, folder: 'Never' });
        expect(res.status).toBe(503);
        expect((await json(res)).error.code).toBe('IMAP_UNAVAILABLE');
      });
    });

    describe('stats', () => {
      it('counts by state, verdict and category; percentiles; cache savings; tokens', async () => {
        const s = await json(await call(app, 'GET', `/api/v1/get/llm/stats?mailbox=${BOB}`, ADMIN));
        expect(s).toMatchObject({
          mailbox: BOB,
          queue: { by_state: {}, depth: 0, oldest_age_sec: null },
          analyses: { by_status: { analyzed: 1 }, by_verdict: { legit: 1 }, by_category: { work: 1 } },
          timings_ms: { processing: { p50: 60, p95: 60 }, llm: { p50: 50, p95: 50 } },
          content_cache: { llm_calls_saved: 0 },
          tokens: { prompt: 100, completion: 20, total: 120 },
        });
        const all = await json(await call(app, 'GET', '/api/v1/get/llm/stats', ADMIN));
        expect(all.mailbox).toBeNull();
        expect(all.content_cache.llm_calls_saved).toBeGreaterThanOrEqual(1);
        expect(all.queue.depth).toBeGreaterThanOrEqual(2);
        expect(all.queue.oldest_age_sec).toBeGreaterThanOrEqual(0);
        expect(all.queue.by_state.processing).toBeGreaterThanOrEqual(1);
        expect(all.analyses.by_verdict.phishing).toBe(1);
      });

      it('since limits the analyses counted', async () => {
        const s = await json(await call(app, 'GET', `/api/v1/get/llm/stats?mailbox=${BOB}&since=2999-01-01`, ADMIN));
        expect(s.analyses.by_status).toEqual({});
        expect(s.tokens.total).toBe(0);
      });
    });

    describe('preferences', () => {
      const get = (u: string) => call(app, 'GET', `/api/v1/get/llm/preferences?username=${u}`, ADMIN).then(json);
      const edit = (body: Record<string, unknown>) => call(app, 'POST', '/api/v1/edit/llm/preferences', ADMIN, body);

      it('defaults for a user who never changed any', async () => {
        expect(await get('carol@example.test')).toMatchObject({
          auto_analysis: true,
          auto_categorize: true,
          phishing_alerts: true,
          summary_enabled: true,
          reply_suggestions: false,
          summary_language: null,
          stored: false,
        });
      });

      it('partial updates change only what is sent; 1/0 and strings are accepted', async () => {
        expect((await edit({ username: 'carol@example.test', summary_enabled: 0, summary_language: 'German' })).status).toBe(200);
        expect((await edit({ username: 'carol@example.test', reply_suggestions: 'true' })).status).toBe(200);
        expect(await get('carol@example.test')).toMatchObject({
          summary_enabled: false,
          summary_language: 'German',
          reply_suggestions: true,
          auto_analysis: true,
          stored: true,
        });
        expect((await edit({ username: 'carol@example.test', summary_language: null })).status).toBe(200);
        expect((await get('carol@example.test')).summary_language).toBeNull();
      });
    });

    describe('health', () => {
      it('lists each component with its state', async () => {
        const body = await json(await call(app, 'GET', '/api/v1/get/llm/health', bobKey));
        expect(body.status).toBe('ok');
        expect(body.components.database).toMatchObject({ ok: true });
      });
    });

    describe('erasing a mailbox', () => {
      it("deletes everything about it, and nothing of anyone else's", async () => {
        const mailbox = `erase-${driver}@example.test`;
        const k = await createApiKey(t.db, mailbox);
        await seedAnalysis(t.db, key(mailbox, 1));
        await enqueue(t.db, { ...key(mailbox, 2), source: 'push' });
        await call(app, 'POST', '/api/v1/edit/llm/preferences', k.key, { username: mailbox, auto_analysis: false });
        await call(app, 'POST', '/api/v1/add/llm/analyze', k.key, { mailbox, email_id: 1, force: true });
        const before = await json(await call(app, 'GET', '/api/v1/get/llm/stats', ADMIN));

        const res = await call(app, 'POST', '/api/v1/delete/llm/mailbox', k.key, { mailbox });
        expect(res.status).toBe(200);
        expect((await json(res)).deleted).toMatchObject({ queue: 2, analyses: 1, preferences: 1, api_keys: 1, audit: 1 });
        for (const table of ['llm_processing_queue', 'llm_email_analysis', 'llm_audit_log', 'llm_api_keys']) {
          const [row] = await t.db.rows<{ n: number }>(sql`select count(*)::int as n from ${sql.identifier(table)} where mailbox = ${mailbox}`);
          expect(Number(row!.n), table).toBe(0);
        }
        // The erased mailbox's key is gone with it; other mailboxes are untouched.
        expect((await call(app, 'GET', `/api/v1/get/llm/preferences?username=${mailbox}`, k.key)).status).toBe(401);
        const after = await json(await call(app, 'GET', '/api/v1/get/llm/stats', ADMIN));
        expect(after.analyses.by_status.analyzed).toBe(before.analyses.by_status.analyzed - 1);
        expect((await call(app, 'GET', `/api/v1/get/llm/analysis?mailbox=${BOB}&email_id=1`, bobKey)).status).toBe(200);
      });
    });

    describe('retention', () => {
      it('purges analyses, finished jobs and audit entries older than the limit, and nothing newer or pending', async () => {
        const mailbox = `old-${driver}@example.test`;
        await seedAnalysis(t.db, key(mailbox, 1));
        await seedAnalysis(t.db, key(mailbox, 2));
        await enqueue(t.db, { ...key(mailbox, 1), source: 'push' });
        await enqueue(t.db, { ...key(mailbox, 3), source: 'push' });
        await t.db.rows(sql`update llm_processing_queue set state = 'done', finished_at = now() - interval '40 days' where mailbox = ${mailbox} and uid = 1`);
        await t.db.rows(sql`update llm_processing_queue set created_at = now() - interval '40 days' where mailbox = ${mailbox} and uid = 3`);
        await t.db.rows(sql`update llm_email_analysis set created_at = now() - interval '40 days' where mailbox = ${mailbox} and uid = 1`);
        await t.db.orm.insert(auditLog).values({ ...key(mailbox, 1), action: 'test', at: new Date(Date.now() - 40 * 86400_000) });

        const purged = await purgeExpired(t.db, 30);
        expect(purged).toEqual({ analyses: 1, queue: 1, audit: 1, feedback: 0, partitions: 0 });
        const left = await t.db.rows<{ uid: number }>(sql`select uid from llm_email_analysis where mailbox = ${mailbox}`);
        expect(left.map((r) => Number(r.uid))).toEqual([2]);
        const queued = await t.db.rows<{ uid: number }>(sql`select uid from llm_processing_queue where mailbox = ${mailbox}`);
        expect(queued.map((r) => Number(r.uid))).toEqual([3]); // still waiting: never purged
        expect(await purgeExpired(t.db, 0)).toEqual({ analyses: 0, queue: 0, audit: 0, feedback: 0, partitions: 0 });
      });
    });

    describe('an expunge push', () => {
      it("removes that message's analysis", async () => {
        const open = createApp({ config: testConfig({ apiKey: ADMIN, push: { auth: 'none' } }), db: t.db, logger: silentLogger, pushCredentials: null });
        const mailbox = `expunge-${driver}@example.test`;
        await seedAnalysis(t.db, key(mailbox, 7));
        const res = await open.request('/push/dovecot', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ driver: 'lua', event: 'MessageExpunge', user: mailbox, folder: 'INBOX', uidvalidity: UIDVALIDITY, uid: 7 }),
        });
        expect(await json(res)).toMatchObject({ status: 'expunged', analysisRemoved: true });
        expect((await call(open, 'GET', `/api/v1/get/llm/analysis?mailbox=${mailbox}&email_id=7`, ADMIN)).status).toBe(404);
      });
    });
  });
}

describe('OpenAPI, docs and metrics', async () => {
  let t: TestDb;
  let app: App;
  beforeAll(async () => {
    t = await openTestDb('pglite');
    app = createApp({ config: testConfig({ apiKey: ADMIN, push: { auth: 'none' } }), db: t.db, logger: silentLogger, pushCredentials: null });
  });
  afterAll(async () => t?.close());

  it('/openapi.json is a valid OpenAPI 3.1 document listing every route', async () => {
    const doc = await json(await app.request('/openapi.json'));
    expect(doc.openapi).toBe('3.1.0');
    await SwaggerParser.validate(structuredClone(doc));
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries<any>(doc.paths)) for (const m of Object.keys(ops)) documented.add(`${m.toUpperCase()} ${path}`);
    // The dashboard's HTML pages (and the redirect of / to it) are a browser UI, not part of the API.
    const routes = app.routes
      .filter((r) => r.method !== 'ALL' && !r.path.includes('*') && !r.path.includes(':'))
      .filter((r) => r.path !== '/' && !r.path.startsWith('/dashboard'))
      .map((r) => `${r.method} ${r.path}`);
    expect(routes.length).toBeGreaterThanOrEqual(12);
    for (const r of routes) expect(documented, r).toContain(r);
    expect(doc.components.securitySchemes.ApiKey).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-API-Key' });
    // The request schemas are the validators' own: the same enums and bounds.
    const params = doc.paths['/api/v1/get/llm/analysis'].get.parameters.map((p: any) => p.name);
    expect(params).toEqual(expect.arrayContaining(['mailbox', 'email_id', 'folder', 'verdict', 'limit', 'cursor', 'since']));
  });

  it('/docs serves Swagger UI from the package, with a CSP that allows no inline script', async () => {
    const page = await app.request('/docs');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).not.toMatch(/<script>[^<]/);
    for (const src of [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)) {
      expect(src.startsWith('/docs/assets/'), src).toBe(true);
      const asset = await app.request(src);
      expect(asset.status, src).toBe(200);
      expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(10);
    }
    expect((await app.request('/docs/assets/../../package.json')).status).toBe(404);
  });

  it('/metrics parses as Prometheus text and counts what happened', async () => {
    const push = (body: unknown) => app.request('/push/dovecot', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const ox = { user: ALICE, event: 'messageNew', folder: 'INBOX', 'imap-uidvalidity': UIDVALIDITY, 'imap-uid': 77 };
    await push(ox);
    await push(ox);
    await push({ ...ox, 'imap-uid': 'x' });
    const res = await app.request('/metrics');
    expect(res.headers.get('content-type')).toContain('text/plain');
    const families = parsePrometheus(await res.text());
    const family = (name: string) => families.find((f: any) => f.name === name);
    const value = (name: string, labels: Record<string, string>) =>
      Number(family(name)?.metrics.find((m: any) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value);
    expect(value('mailsight_pushes_total', { outcome: 'queued' })).toBe(1);
    expect(value('mailsight_pushes_total', { outcome: 'duplicate' })).toBe(1);
    expect(value('mailsight_pushes_total', { outcome: 'rejected' })).toBe(1);
    expect(value('mailsight_queue_jobs', { state: 'queued' })).toBe(1);
    for (const name of [
      'mailsight_jobs_total',
      'mailsight_llm_request_seconds',
      'mailsight_llm_tokens_total',
      'mailsight_imap_fetch_seconds',
      'mailsight_content_cache_total',
      'mailsight_queue_oldest_age_seconds',
      'mailsight_process_cpu_seconds_total',
      'mailsight_nodejs_heap_size_used_bytes',
    ]) {
      expect(family(name), name).toBeDefined();
    }
  });

  it('/metrics asks for METRICS_TOKEN as a bearer token when it is set', async () => {
    const token = 'metrics-token-0123456789';
    const guarded = createApp({ config: testConfig({ metricsToken: token, push: { auth: 'none' } }), db: t.db, logger: silentLogger, pushCredentials: null });
    for (const authorization of [undefined, `Bearer ${token}x`, `Basic ${token}`, token]) {
      const res = await guarded.request('/metrics', { headers: authorization ? { authorization } : {} });
      expect(res.status, authorization).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('Bearer');
      expect((await json(res)).error.code).toBe('UNAUTHORIZED');
    }
    const ok = await guarded.request('/metrics', { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('mailsight_pushes_total');
  });
});
