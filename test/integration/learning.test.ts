import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { beforeAll, expect, it } from 'vitest';
import { learnedAbout } from '../../src/analysis/senders.js';
import { upsertAnalysis } from '../../src/analysis/store.js';
import { createApp } from '../../src/app.js';
import type { MessageKey } from '../../src/domain/message-key.js';
import { ContentProtection } from '../../src/privacy/protection.js';
import { rotateKeys } from '../../src/privacy/rotate.js';
import { Sealer } from '../../src/privacy/sealer.js';
import { eraseMailbox } from '../../src/queries/erase.js';
import { createApiKey } from '../../src/queries/keys.js';
import { Browser } from '../support/browser.js';
import { jobRunner, message, pipelineTestbed, UIDVALIDITY } from '../support/pipeline-harness.js';
import { DRIVERS, describeWith, postgresAvailable, silentLogger, testConfig } from '../support/services.js';

/**
 * Per-mailbox learning (issue 22, part 3): a user's Junk / Not junk is also their word on the
 * sender, in their mailbox only. The pipeline runs job by job on a fake mailbox with the stand-in
 * model; the words come through the API and the Lua driver's pushes, as in production.
 */

const pgUp = await postgresAvailable();
const ADMIN = 'learning-admin-key-0123456789';
const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const PROMO = 'Deals <Deals@Shop.example>';
const FRIEND = 'Friend <friend@pals.example>';
// Three of the stand-in's spam phrases: it calls this spam.
const SPAMMY = 'Act now: limited time, click here for the lowest rates.';
const PLAIN = 'Shall we have lunch on Friday at noon?';

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`learning senders on ${driver}`, () => {
    const bed = pipelineTestbed(driver);
    let app: ReturnType<typeof createApp>;
    let uid = 0;
    beforeAll(() => {
      app = createApp({ config: testConfig({ apiKey: ADMIN, push: { auth: 'none' } }), db: bed.t.db, logger: silentLogger, pushCredentials: null });
    });

    const runJob = jobRunner(bed);
    /** A new message in INBOX of `mb` (`body`, or a whole `raw` message), analysed; returns its key and its stored verdict. */
    const deliver = async (mb: string, from: string, body: string, raw?: string) => {
      const key: MessageKey = { mailbox: mb, folder: 'INBOX', uidvalidity: UIDVALIDITY, uid: ++uid };
      bed.mailbox.put(key, raw ?? message(`l-${uid}`, 'A message', body, from));
      const out = await runJob(key);
      const [row] = await bed.t.db.rows<{ verdict: string; verdict_source: string }>(sql`
        select verdict, verdict_source from llm_email_analysis where mailbox = ${mb} and uid = ${key.uid}`);
      const [decision] = await bed.t.db.rows<{ reason: string }>(sql`
        select reason from llm_audit_log where mailbox = ${mb} and uid = ${key.uid} and action = 'analyzed'`);
      return { key, out, verdict: row!.verdict, source: row!.verdict_source, reason: decision!.reason };
    };
    const api = (path: string, body?: unknown, key = ADMIN) =>
      app.request(`/api/v1${path}`, { method: body ? 'POST' : 'GET', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
    const feedback = async (key: MessageKey, said: 'junk' | 'legit') => {
      const res = await api('/add/llm/feedback', { mailbox: key.mailbox, email_id: key.uid, said });
      expect(res.status).toBe(200);
      return res.json() as Promise<any>;
    };
    const learned = async (mb: string) => (await (await api(`/get/llm/preferences?username=${encodeURIComponent(mb)}`)).json()).learned_senders;

    it("a sender the user rescued is not junked again in that mailbox, and still is in another", async () => {
      const first = await deliver(ALICE, PROMO, SPAMMY);
      expect(first).toMatchObject({ verdict: 'spam', source: 'model' });
      expect(await feedback(first.key, 'legit')).toMatchObject({ outcome: 'false_junk', sender_learned: true });
      expect(await learned(ALICE)).toEqual([{ sender: 'deals@shop.example', id: 'deals@shop.example', said: 'legit', how: 'api', at: expect.any(String) }]);

      const calls = bed.ollama.state.chats.length;
      const next = await deliver(ALICE, PROMO, `${SPAMMY} Again.`);
      expect(next).toMatchObject({ verdict: 'legit', source: 'user' });
      expect(next.reason).toMatch(/^verdict by user: the user said mail from this sender is not junk \(api, \d{4}-\d\d-\d\d\); model had said spam$/);
      // The model is still asked (summary, category): the user's word settles only the verdict.
      expect(bed.ollama.state.chats.length - calls).toBe(1);
      // Nothing learned in Alice's mailbox reaches Bob's.
      expect(await deliver(BOB, PROMO, `${SPAMMY} For Bob.`)).toMatchObject({ verdict: 'spam', source: 'model' });
    });

    it('a sender the user junked (Junk keyword from their client) is junked from then on, in that mailbox only', async () => {
      const first = await deliver(ALICE, FRIEND, PLAIN);
      expect(first).toMatchObject({ verdict: 'legit' });
      const res = await app.request('/push/dovecot', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ driver: 'lua', user: ALICE, event: 'FlagsSet', folder: 'INBOX', uidvalidity: UIDVALIDITY, uid: first.key.uid, keywords: ['$Junk'] }),
      });
      expect(await res.json()).toMatchObject({ status: 'feedback', feedback: { said: 'junk', outcome: 'missed_junk', senderLearned: true } });
      const next = await deliver(ALICE, FRIEND, 'And dinner on Saturday?');
      expect(next).toMatchObject({ verdict: 'spam', source: 'user' });
      expect(next.reason).toContain('the user said mail from this sender is junk (keyword,');
      // The same content for Bob comes from the content cache: the model's answer, not Alice's word.
      const bob = await deliver(BOB, FRIEND, 'And dinner on Saturday?');
      expect(bob).toMatchObject({ verdict: 'legit', source: 'model', out: { cacheHit: true, llmCalls: 0 } });
    });

    it('phishing evidence (the rescued sender forged: DMARC failed, a sign-in link elsewhere) still wins over the rescue', async () => {
      const forged = [
        `From: ${PROMO}`,
        `To: ${ALICE}`,
        'Subject: Shared document',
        'Message-ID: <forged-1@example.net>',
        'Authentication-Results: mx.example.test; spf=fail smtp.mailfrom=shop.example; dmarc=fail header.from=shop.example',
        'Content-Type: text/html; charset=utf-8',
        '',
        '<p>A document was shared with you.</p><p><a href="https://docs-share.example/auth">Sign in to view the document</a></p>',
        '',
      ].join('\r\n');
      expect(await learnedAbout(bed.t.db, new ContentProtection({ sealer: null, keepHeaders: true }), ALICE, 'deals@shop.example')).toMatchObject({ said: 'legit' });
      expect(await deliver(ALICE, PROMO, '', forged)).toMatchObject({ verdict: 'phishing', source: 'signals' });
    });

    it('learning off: nothing is learned and nothing learned is used; the list can be forgotten by address', async () => {
      const off = await api('/edit/llm/preferences', { username: ALICE, learn_senders: false });
      expect(await off.json()).toMatchObject({ learn_senders: false, learned_senders: [{ sender: 'friend@pals.example' }, { sender: 'deals@shop.example' }] });
      expect(await deliver(ALICE, PROMO, `${SPAMMY} Off.`)).toMatchObject({ verdict: 'spam', source: 'model' });
      const other = await deliver(ALICE, 'Other <other@else.example>', SPAMMY);
      expect(await feedback(other.key, 'legit')).toMatchObject({ sender_learned: false });
      await api('/edit/llm/preferences', { username: ALICE, learn_senders: true });

      const res = await api('/edit/llm/preferences', { username: ALICE, forget_senders: ['DEALS@shop.example'] });
      expect(res.status).toBe(200);
      expect((await res.json()).learned_senders).toEqual([expect.objectContaining({ sender: 'friend@pals.example', said: 'junk' })]);
      expect(await deliver(ALICE, PROMO, `${SPAMMY} Forgotten.`)).toMatchObject({ verdict: 'spam', source: 'model' });
    });

    it("a mailbox key sees and forgets only its own mailbox's senders; bad input is 400", async () => {
      const bobKey = (await createApiKey(bed.t.db, BOB)).key;
      expect((await api(`/get/llm/preferences?username=${ALICE}`, undefined, bobKey)).status).toBe(403);
      expect((await api('/edit/llm/preferences', { username: ALICE, forget_senders: ['friend@pals.example'] }, bobKey)).status).toBe(403);
      expect((await api('/edit/llm/preferences', { username: BOB, forget_senders: ['not an address'] }, bobKey)).status).toBe(400);
      expect((await api('/edit/llm/preferences', { username: BOB, forget_sender_ids: ['friend@pals.example'] }, bobKey)).status).toBe(200);
      expect(await learned(ALICE)).toHaveLength(1);
    });

    it('the dashboard lists learned senders and forgets one (CSRF-checked)', async () => {
      const b = new Browser(app);
      await b.signIn(ADMIN);
      const page = await b.get(`/dashboard/mailbox/${encodeURIComponent(ALICE)}/preferences`);
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('Learned senders');
      expect(html).toContain('friend@pals.example');
      const forget = `/dashboard/mailbox/${encodeURIComponent(ALICE)}/preferences/senders/forget`;
      const csrf = /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
      expect((await b.post(forget, { _csrf: 'guess', id: 'friend@pals.example' })).status).toBe(403);
      const done = await b.post(forget, { _csrf: csrf, id: 'friend@pals.example' });
      expect(done.status).toBe(303);
      expect(await learned(ALICE)).toEqual([]);
      expect((await b.post(forget, { _csrf: csrf, id: 'friend@pals.example' })).status).toBe(404);
    });

    it('with ENCRYPTION_KEY: the sender is sealed and looked up by a keyed hash; rotate-key moves it to the new key', async () => {
      const KEY_A = randomBytes(32);
      const KEY_B = randomBytes(32);
      const mb = `sealed-${driver}@example.test`;
      const sealedA = new ContentProtection({ sealer: new Sealer(KEY_A), keepHeaders: true });
      const sealedApp = createApp({ config: testConfig({ apiKey: ADMIN, push: { auth: 'none' } }), db: bed.t.db, logger: silentLogger, pushCredentials: null, protection: sealedA });
      const key = { mailbox: mb, folder: 'INBOX', uidvalidity: UIDVALIDITY, uid: ++uid };
      // The analysis as the sealing pipeline stores it: the sender inside sealed_headers.
      await upsertAnalysis(bed.t.db, sealedA.protectAnalysis({ ...key, status: 'analyzed', verdict: 'spam', fromAddress: 'Secret@Sender.example', subject: 's' }));
      const res = await sealedApp.request('/api/v1/add/llm/feedback', {
        method: 'POST',
        headers: { 'x-api-key': ADMIN, 'content-type': 'application/json' },
        body: JSON.stringify({ mailbox: mb, email_id: key.uid, said: 'legit' }),
      });
      expect(await res.json()).toMatchObject({ sender_learned: true });
      const [row] = await bed.t.db.rows<Record<string, string | null>>(sql`select * from llm_learned_senders where mailbox = ${mb}`);
      expect(row).toMatchObject({ sender: null, key_id: sealedA.sealer!.currentId });
      expect(JSON.stringify(row)).not.toContain('secret@sender');
      expect(await learnedAbout(bed.t.db, sealedA, mb, 'secret@sender.example')).toMatchObject({ said: 'legit' });
      // The same sender in another mailbox has another hash: a stolen table does not link them.
      expect(sealedA.senderKeys('other@example.test', 'secret@sender.example')[0]).not.toBe(row!.sender_key);

      const both = new ContentProtection({ sealer: new Sealer(KEY_B, [KEY_A]), keepHeaders: true });
      expect(await learnedAbout(bed.t.db, both, mb, 'secret@sender.example')).toMatchObject({ said: 'legit' });
      const report = await rotateKeys(bed.t.db, both, { batchSize: 50 });
      expect(report.senders).toBe(1);
      const onlyB = new ContentProtection({ sealer: new Sealer(KEY_B), keepHeaders: true });
      expect(await learnedAbout(bed.t.db, onlyB, mb, 'SECRET@sender.example')).toMatchObject({ said: 'legit' });
      const sealedB = createApp({ config: testConfig({ apiKey: ADMIN, push: { auth: 'none' } }), db: bed.t.db, logger: silentLogger, pushCredentials: null, protection: onlyB });
      const prefs = await (await sealedB.request(`/api/v1/get/llm/preferences?username=${mb}`, { headers: { 'x-api-key': ADMIN } })).json();
      expect(prefs.learned_senders).toEqual([expect.objectContaining({ sender: 'secret@sender.example', said: 'legit' })]);
    });

    it('with PRIVACY_KEEP_HEADERS=false nothing is learned or used; erasing a mailbox erases what it learned', async () => {
      const first = await deliver(ALICE, FRIEND, SPAMMY);
      const noHeaders = new ContentProtection({ sealer: null, keepHeaders: false });
      const noHeadersApp = createApp({ config: testConfig({ apiKey: ADMIN, push: { auth: 'none' } }), db: bed.t.db, logger: silentLogger, pushCredentials: null, protection: noHeaders });
      const res = await noHeadersApp.request('/api/v1/add/llm/feedback', {
        method: 'POST',
        headers: { 'x-api-key': ADMIN, 'content-type': 'application/json' },
        body: JSON.stringify({ mailbox: ALICE, email_id: first.key.uid, said: 'legit' }),
      });
      expect(await res.json()).toMatchObject({ outcome: 'false_junk', sender_learned: false });
      expect(await learned(ALICE)).toEqual([]);
      await feedback(first.key, 'legit');
      expect(await learned(ALICE)).toHaveLength(1);
      expect(await learnedAbout(bed.t.db, noHeaders, ALICE, 'friend@pals.example')).toBeNull();
      const erased = await eraseMailbox(bed.t.db, ALICE);
      expect(erased.deleted.learned_senders).toBe(1);
      expect(await learned(ALICE)).toEqual([]);
    });
  });
}
