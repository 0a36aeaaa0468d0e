import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { recordFlagging } from '../../src/analysis/feedback.js';
import { recordMoving } from '../../src/analysis/store.js';
import { createApp } from '../../src/app.js';
import { createApiKey } from '../../src/queries/keys.js';
import { eraseMailbox } from '../../src/queries/erase.js';
import { Browser } from '../support/browser.js';
import { seedAnalysis } from '../support/seed.js';
import { DRIVERS, describeWith, openTestDb, postgresAvailable, silentLogger, testConfig, type TestDb } from '../support/services.js';

/**
 * Users' word on verdicts: the Lua driver's FlagsSet / FlagsClear of Junk keywords, moves into and
 * out of Junk, and the API; mailsight's own keywords and moves never count; /stats and /metrics show
 * how verdicts compare.
 */

const pgUp = await postgresAvailable();
const ADMIN = 'feedback-admin-key-0123456789';
const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const UV = 41;
const key = (mailbox: string, uid: number, folder = 'INBOX') => ({ mailbox, folder, uidvalidity: UV, uid });

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`feedback on ${driver}`, () => {
    let t: TestDb;
    let app: ReturnType<typeof createApp>;
    let aliceKey: string;
    beforeAll(async () => {
      t = await openTestDb(driver);
      app = createApp({ config: testConfig({ apiKey: ADMIN, push: { auth: 'none' } }), db: t.db, logger: silentLogger, pushCredentials: null });
      aliceKey = (await createApiKey(t.db, ALICE)).key;
    });
    afterAll(async () => t?.close());

    const push = async (body: Record<string, unknown>) => {
      const res = await app.request('/push/dovecot', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ driver: 'lua', user: ALICE, ...body }) });
      expect(res.status).toBe(202);
      return res.json() as Promise<any>;
    };
    const flags = (event: 'FlagsSet' | 'FlagsClear', uid: number, keywords: string[], folder = 'INBOX') => push({ event, folder, uidvalidity: UV, uid, keywords });
    const api = (path: string, k: string, body?: unknown) =>
      app.request(`/api/v1${path}`, { method: body ? 'POST' : 'GET', headers: { 'x-api-key': k, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
    const stored = () => t.db.rows<{ message: string; said: string; how: string; verdict: string | null; folder: string; uid: number }>(sql`
      select message, said, how, verdict, folder, uid from llm_feedback where mailbox = ${ALICE} order by id`);
    const quality = async () => (await (await api('/get/llm/stats', ADMIN)).json()).quality;

    it("a Junk keyword set on a message judged legit is one missed junk; mailsight's own is none; other keywords say nothing", async () => {
      await seedAnalysis(t.db, key(ALICE, 1), { messageId: '<m1@example.net>', verdict: 'legit', verdictSource: 'model' });
      await seedAnalysis(t.db, key(ALICE, 2), { messageId: '<m2@example.net>', verdict: 'spam', isSpam: true, verdictSource: 'signals' });
      const out = await flags('FlagsSet', 1, ['$Junk']);
      expect(out).toMatchObject({ status: 'feedback', feedback: { said: 'junk', how: 'keyword', verdict: 'legit', outcome: 'missed_junk' } });
      // mailsight's own STORE: the keywords are on its row before the STORE, so their push is not the user's.
      await recordFlagging(t.db, key(ALICE, 2), ['$Junk']);
      expect(await flags('FlagsSet', 2, ['$Junk'])).toMatchObject({ status: 'ignored' });
      expect(await flags('FlagsSet', 1, ['$label1'])).toMatchObject({ status: 'ignored' });
      expect(await stored()).toEqual([{ message: '<m1@example.net>', said: 'junk', how: 'keyword', verdict: 'legit', folder: 'INBOX', uid: 1 }]);
      expect(await quality()).toMatchObject({ feedback: 1, missed_junk: 1, false_junk: 0, agree: 0, agreement: 0, by_source: { model: { missed_junk: 1 } } });
    });

    it('clearing the Junk keyword (Not junk) is a false junk, and the latest word per message counts; setting it again counts again', async () => {
      const out = await flags('FlagsClear', 2, ['$Junk']);
      expect(out).toMatchObject({ status: 'feedback', feedback: { said: 'legit', outcome: 'false_junk' } });
      const [row] = await t.db.rows<{ keywords: string[] }>(sql`select keywords from llm_email_analysis where mailbox = ${ALICE} and uid = 2`);
      expect(row!.keywords).not.toContain('$Junk');
      expect(await flags('FlagsSet', 2, ['$NotJunk'])).toMatchObject({ feedback: { said: 'legit' } });
      expect((await stored()).filter((r) => r.message === '<m2@example.net>')).toHaveLength(1);
      expect(await flags('FlagsSet', 2, ['$Junk'])).toMatchObject({ feedback: { said: 'junk', outcome: 'agree' } });
      expect(await quality()).toMatchObject({ feedback: 2, agree: 1, missed_junk: 1, by_source: { signals: { agree: 1 } } });
    });

    it("a user's move into Junk says junk; dragging a message mailsight moved to Junk back says legit; mailsight's own move says nothing", async () => {
      await seedAnalysis(t.db, key(ALICE, 3), { messageId: '<m3@example.net>', verdict: 'legit' });
      expect(await push({ event: 'MessageAppend', folder: 'Junk', uidvalidity: UV, uid: 30, message_id: '<m3@example.net>' })).toMatchObject({
        status: 'followed',
        feedback: { said: 'junk', how: 'move', outcome: 'missed_junk' },
      });
      await seedAnalysis(t.db, key(ALICE, 4), { messageId: '<m4@example.net>', verdict: 'phishing', isPhishing: true });
      await recordMoving(t.db, key(ALICE, 4), 'Junk');
      const own = await push({ event: 'MessageAppend', folder: 'Junk', uidvalidity: UV, uid: 40, message_id: '<m4@example.net>' });
      expect(own).toMatchObject({ status: 'ignored' });
      expect(own.feedback).toBeUndefined();
      const rescued = await push({ event: 'MessageAppend', folder: 'INBOX', uidvalidity: UV, uid: 41, message_id: '<m4@example.net>' });
      expect(rescued).toMatchObject({ status: 'followed', feedback: { said: 'legit', how: 'move', verdict: 'phishing', outcome: 'false_junk' } });
      // A move between other folders says nothing.
      await seedAnalysis(t.db, key(ALICE, 5), { messageId: '<m5@example.net>', verdict: 'legit' });
      expect((await push({ event: 'MessageAppend', folder: 'Projects', uidvalidity: UV, uid: 50, message_id: '<m5@example.net>' })).feedback).toBeUndefined();
      expect(await quality()).toMatchObject({ feedback: 4, false_junk: 1, missed_junk: 2, agree: 1 });
    });

    it('the API takes feedback for the key\'s own mailbox only, and counts it in /metrics', async () => {
      await seedAnalysis(t.db, key(ALICE, 6), { messageId: '<m6@example.net>', verdict: 'spam', isSpam: true });
      await seedAnalysis(t.db, key(BOB, 1), { messageId: '<b1@example.net>', verdict: 'legit' });
      const res = await api('/add/llm/feedback', aliceKey, { mailbox: ALICE, email_id: 6, said: 'junk' });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ mailbox: ALICE, folder: 'INBOX', uidvalidity: UV, email_id: 6, said: 'junk', how: 'api', verdict: 'spam', outcome: 'agree', sender_learned: true });
      expect((await api('/add/llm/feedback', aliceKey, { mailbox: BOB, email_id: 1, said: 'junk' })).status).toBe(403);
      expect((await api('/add/llm/feedback', aliceKey, { mailbox: ALICE, email_id: 6, said: 'maybe' })).status).toBe(400);
      expect((await api('/add/llm/feedback', aliceKey, { mailbox: ALICE, email_id: 6, folder: 'Nowhere', said: 'junk' })).status).toBe(404);
      // A mailbox's quality is its own.
      const own = (await (await api(`/get/llm/stats?mailbox=${ALICE}`, aliceKey)).json()).quality;
      expect(own.feedback).toBe(5);
      const metrics = await (await app.request('/metrics')).text();
      expect(metrics).toMatch(/mailsight_feedback_total\{said="junk",how="api",outcome="agree"\} 1/);
      expect(metrics).toMatch(/mailsight_feedback_total\{said="junk",how="keyword",outcome="missed_junk"\} 1/);
    });

    it("the dashboard's message page takes the owner's word (CSRF-checked), and the overview shows the quality beside the verdicts", async () => {
      await seedAnalysis(t.db, key(ALICE, 7), { messageId: '<m7@example.net>', verdict: 'legit', verdictSource: 'model' });
      const b = new Browser(app);
      await b.signIn(aliceKey);
      const path = `/dashboard/mailbox/${encodeURIComponent(ALICE)}/message/INBOX/${UV}/7`;
      expect(await (await b.get(path)).text()).toContain('Nothing said yet');
      expect((await b.post(`${path}/feedback`, { _csrf: 'guess', said: 'junk' })).status).toBe(403);
      expect((await b.post(`${path}/feedback`, { _csrf: await b.csrf(path), said: 'maybe' })).status).toBe(400);
      const res = await b.post(`${path}/feedback`, { _csrf: await b.csrf(path), said: 'junk' });
      expect(res.status).toBe(303);
      const page = await (await b.get(res.headers.get('location')!)).text();
      expect(page).toContain('your word is recorded');
      expect(page).toMatch(/data-testid="user-word">Said <strong>junk<\/strong> \(dashboard\)/);
      // Bob's messages are not Alice's to judge.
      await seedAnalysis(t.db, key(BOB, 2), { messageId: '<b2@example.net>', verdict: 'legit' });
      expect((await b.post(`/dashboard/mailbox/${encodeURIComponent(BOB)}/message/INBOX/${UV}/2/feedback`, { _csrf: await b.csrf(path), said: 'junk' })).status).toBe(403);
      const admin = new Browser(app);
      await admin.signIn(ADMIN);
      const overview = await (await admin.get('/dashboard')).text();
      expect(overview).toContain('Verdicts against what users said');
      expect(overview).toMatch(/data-testid="missed-junk">3</);
    });

    it('goes with the mailbox when it is erased', async () => {
      const { deleted } = await eraseMailbox(t.db, ALICE);
      expect(deleted.feedback).toBe(6);
      expect(await stored()).toEqual([]);
    });
  });
}
