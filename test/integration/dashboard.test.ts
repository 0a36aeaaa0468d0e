import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { NewAnalysis } from '../../src/analysis/store.js';
import { seedAnalysis } from '../support/seed.js';
import { createApiKey, revokeApiKey } from '../../src/queries/keys.js';
import { createApp } from '../../src/app.js';
import { writeAudit } from '../../src/analysis/audit.js';
import { Browser } from '../support/browser.js';
import { DRIVERS, describeWith, openTestDb, postgresAvailable, silentLogger, testConfig, type TestDb } from '../support/services.js';

const ADMIN = 'admin-key-for-dashboard-tests-0123';
const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const UIDVALIDITY = 1700000000;

type App = ReturnType<typeof createApp>;

/** An analysed message in INBOX, through the pipeline's own store. */
const seed = (db: TestDb['db'], mailbox: string, uid: number, over: Partial<NewAnalysis> = {}) =>
  seedAnalysis(db, { mailbox, folder: 'INBOX', uidvalidity: UIDVALIDITY, uid }, { tags: ['project'], signalReasons: [], llmMs: 50 + uid, totalMs: 60 + uid, ...over });

const pgUp = await postgresAvailable();

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`dashboard on ${driver}`, () => {
    let t: TestDb;
    let app: App;
    let aliceKey: { id: string; key: string };

    beforeAll(async () => {
      t = await openTestDb(driver);
      app = createApp({ config: testConfig({ apiKey: ADMIN }), db: t.db, logger: silentLogger, pushCredentials: null });
      aliceKey = await createApiKey(t.db, ALICE);
      for (let uid = 1; uid <= 30; uid++) await seed(t.db, ALICE, uid);
      await seed(t.db, ALICE, 31, {
        subject: 'Your account is locked',
        verdict: 'phishing',
        isPhishing: true,
        category: 'security',
        priority: 9,
        reasons: ['asks for the password on a foreign site'],
        signalReasons: ['DMARC failed', 'link text shows paypal.com, goes to paypa1.example'],
        sensitive: ['password'],
        signals: { sensitive: { credential: 2 } },
        movedToFolder: 'Junk',
        keywords: ['$Phishing'],
      });
      await writeAudit(t.db, { mailbox: ALICE, folder: 'INBOX', uidvalidity: UIDVALIDITY, uid: 31, action: 'moved', verdict: 'phishing', reason: 'phishing above 0.8' });
      await seed(t.db, BOB, 1, { subject: "Bob's private mail" });
      await t.db.rows(sql`insert into llm_processing_queue (mailbox, folder, uidvalidity, uid, source, state, last_error)
                          values (${BOB}, 'INBOX', ${UIDVALIDITY}, 99, 'push', 'dead', 'OLLAMA_UNAVAILABLE: gave up after 5 attempts')`);
    });
    afterAll(async () => t?.close());

    it('pages carry a CSP without script, frame-ancestors none, and no caching', async () => {
      const res = await new Browser(app).get('/dashboard/login');
      expect(res.status).toBe(200);
      const csp = res.headers.get('content-security-policy')!;
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain("default-src 'none'");
      expect(csp).not.toContain('script-src');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('cache-control')).toBe('no-store');
      const html = await res.text();
      expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
      expect(html).not.toMatch(/<script|\sstyle=|\son\w+="/i);
      const css = await new Browser(app).get('/dashboard/assets/dashboard.css');
      expect(css.headers.get('content-type')).toContain('text/css');
      expect((await css.text()).length).toBeGreaterThan(1000);
      expect((await app.request('/')).headers.get('location')).toBe('/dashboard');
    });

    it('sends strangers to the sign-in page, refuses a wrong key (401) and a form without its CSRF token (403)', async () => {
      const b = new Browser(app);
      for (const path of [
        '/dashboard',
        `/dashboard/mailbox/${encodeURIComponent(ALICE)}`,
        `/dashboard/mailbox/${encodeURIComponent(ALICE)}/message/INBOX/${UIDVALIDITY}/1`,
        `/dashboard/mailbox/${encodeURIComponent(ALICE)}/preferences`,
      ]) {
        const res = await b.get(path);
        expect(res.status).toBe(303);
        expect(res.headers.get('location')).toBe('/dashboard/login');
      }
      const wrong = await b.signIn('not-a-key');
      expect(wrong.status).toBe(401);
      const html = await wrong.text();
      expect(html).toContain('That key is not valid');
      expect(html).not.toContain('not-a-key');
      expect(b.cookies.has('mailsight_session')).toBe(false);
      const forged = await new Browser(app).post('/dashboard/login', { key: ADMIN });
      expect(forged.status).toBe(403);
      expect(await forged.text()).toContain('reload the page');
    });

    it('failed sign-ins are limited per address with the API keys (429), and the limit holds for a right key too', async () => {
      const strict = createApp({ config: testConfig({ apiKey: ADMIN, authMaxFailures: 2 }), db: t.db, logger: silentLogger, pushCredentials: null });
      const b = new Browser(strict);
      expect((await b.signIn('wrong-1')).status).toBe(401);
      expect((await b.signIn('wrong-2')).status).toBe(401);
      const blocked = await b.signIn(ADMIN);
      expect(blocked.status).toBe(429);
      expect(await blocked.text()).toContain('too many failed API key attempts');
      expect(b.cookies.has('mailsight_session')).toBe(false);
      expect((await strict.request('/api/v1/get/llm/health', { headers: { 'x-api-key': ADMIN } })).status).toBe(429);
    });

    it('the admin key opens an HttpOnly, SameSite=Strict session (Secure behind TLS) and the overview', async () => {
      const b = new Browser(app);
      const res = await b.signIn(ADMIN);
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe('/dashboard');
      const cookie = res.headers.getSetCookie().find((c) => c.startsWith('mailsight_session='))!;
      expect(cookie).toMatch(/HttpOnly/);
      expect(cookie).toMatch(/SameSite=Strict/);
      expect(cookie).not.toMatch(/Secure/);
      const secure = await new Browser(app, { 'x-forwarded-proto': 'https' }).signIn(ADMIN);
      expect(secure.headers.getSetCookie().find((c) => c.startsWith('mailsight_session='))).toMatch(/Secure/);

      const page = await b.get('/dashboard');
      expect(page.status).toBe(200);
      const html = await page.text();
      for (const text of ['Health', 'database', 'Queue', 'Analysed per 2 minutes', 'LLM latency', 'Verdicts', 'Categories', 'LLM calls saved', 'Recent failures', 'OLLAMA_UNAVAILABLE: gave up after 5 attempts', ALICE, BOB]) {
        expect(html).toContain(text);
      }
      // Four charts, each drawn wide and narrow (the stylesheet shows one).
      expect(html.match(/<svg /g)?.length).toBe(8);
      expect(html).toContain('data-testid="analysed-total">32<');
    });

    it('the mailbox view lists newest first, filters, pages, and makes phishing stand out', async () => {
      const b = new Browser(app);
      await b.signIn(ADMIN);
      const html = await (await b.get(`/dashboard/mailbox/${encodeURIComponent(ALICE)}`)).text();
      expect(html.match(/data-testid="message"/g)).toHaveLength(25);
      expect(html.indexOf('Your account is locked')).toBeLessThan(html.indexOf('message 30'));
      expect(html).toMatch(/<li class="phishing high" data-testid="message">/);
      const older = /href="([^"]*cursor=[^"]+)">Older/.exec(html)![1]!.replaceAll('&amp;', '&');
      const page2 = await (await b.get(older)).text();
      expect(page2.match(/data-testid="message"/g)).toHaveLength(6);
      const phishing = await (await b.get(`/dashboard/mailbox/${encodeURIComponent(ALICE)}?verdict=phishing&category=&min_priority=`)).text();
      expect(phishing.match(/data-testid="message"/g)).toHaveLength(1);
      expect(phishing).toContain('<option value="phishing" selected="">phishing</option>');
      const bad = await (await b.get(`/dashboard/mailbox/${encodeURIComponent(ALICE)}?min_priority=99`)).text();
      expect(bad).toContain('Filters ignored: min_priority');
    });

    it('the mailbox list is in order of receipt (not of analysis), and its pages neither skip nor repeat, with ties', async () => {
      const CAROL = 'carol@example.test';
      // Received in an order unlike that of analysis (a backfill analyses old mail last); 5 share a time.
      const received = Array.from({ length: 40 }, (_, i) => new Date(Date.UTC(2026, 0, 1) + ((i * 7919) % 40) * 60_000 + (i < 5 ? 0 : i)));
      for (const [i, at] of received.entries()) await seedAnalysis(t.db, { mailbox: CAROL, folder: 'INBOX', uidvalidity: UIDVALIDITY, uid: i + 1 }, { receivedAt: at });
      const expected = received
        .map((at, i) => ({ at: at.getTime(), uid: i + 1 }))
        .sort((a, b) => b.at - a.at || b.uid - a.uid)
        .map((r) => r.uid);
      const b = new Browser(app);
      await b.signIn(ADMIN);
      const seen: number[] = [];
      let next: string | null = `/dashboard/mailbox/${encodeURIComponent(CAROL)}`;
      while (next) {
        const html = await (await b.get(next)).text();
        seen.push(...[...html.matchAll(/message\/INBOX\/\d+\/(\d+)"/g)].map((m) => Number(m[1])));
        next = /href="([^"]*cursor=[^"]+)">Older/.exec(html)?.[1]?.replaceAll('&amp;', '&') ?? null;
      }
      expect(seen).toEqual(expected);
      // The other tests count this database's analyses.
      await t.db.rows(sql`delete from llm_email_analysis where mailbox = ${CAROL}`);
    });

    it('the message view keeps the model and the signals apart, shows findings, the move and the audit trail; re-analyse queues it first', async () => {
      const b = new Browser(app);
      await b.signIn(ADMIN);
      const path = `/dashboard/mailbox/${encodeURIComponent(ALICE)}/message/INBOX/${UIDVALIDITY}/31`;
      const html = await (await b.get(path)).text();
      const model = html.slice(html.indexOf('data-testid="model-reasons"'), html.indexOf('h-signal-reasons'));
      expect(model).toContain('asks for the password on a foreign site');
      expect(model).not.toContain('DMARC failed');
      const signals = html.slice(html.indexOf('data-testid="signal-reasons"'));
      expect(signals).toContain('DMARC failed');
      for (const text of ['password', 'credential: 2 found by the detectors', 'to Junk', '$Phishing', 'phishing above 0.8']) expect(html).toContain(text);

      const forged = await b.post(`${path}/reanalyse`, { _csrf: 'guess' });
      expect(forged.status).toBe(403);
      const res = await b.post(`${path}/reanalyse`, { _csrf: await b.csrf(path) });
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe(`${path}?notice=reanalysis_queued`);
      const [job] = await t.db.rows<{ source: string; priority: number; force: boolean }>(
        sql`select source, priority, force from llm_processing_queue where mailbox = ${ALICE} and uid = 31`,
      );
      expect(job).toMatchObject({ source: 'api', priority: 0, force: true });
      expect(await (await b.get(res.headers.get('location')!)).text()).toContain('Queued for analysis');
      expect((await b.get(`/dashboard/mailbox/${encodeURIComponent(ALICE)}/message/INBOX/${UIDVALIDITY}/777`)).status).toBe(404);
    });

    it('a mailbox key sees its own mailbox only', async () => {
      const b = new Browser(app);
      const res = await b.signIn(aliceKey.key);
      expect(res.headers.get('location')).toBe(`/dashboard/mailbox/${encodeURIComponent(ALICE)}`);
      expect((await b.get('/dashboard')).headers.get('location')).toBe(`/dashboard/mailbox/${encodeURIComponent(ALICE)}`);
      expect((await b.get(`/dashboard/mailbox/${encodeURIComponent(ALICE)}`)).status).toBe(200);
      for (const path of [
        `/dashboard/mailbox/${encodeURIComponent(BOB)}`,
        `/dashboard/mailbox/${encodeURIComponent(BOB)}/message/INBOX/${UIDVALIDITY}/1`,
        `/dashboard/mailbox/${encodeURIComponent(BOB)}/preferences`,
      ]) {
        const other = await b.get(path);
        expect(other.status).toBe(403);
        expect(await other.text()).not.toContain("Bob's private mail");
      }
    });

    it('preferences: every switch saved as the form shows it; a bad language saves nothing', async () => {
      const b = new Browser(app);
      await b.signIn(aliceKey.key);
      const path = `/dashboard/mailbox/${encodeURIComponent(ALICE)}/preferences`;
      const csrf = await b.csrf(path);
      const res = await b.post(path, { _csrf: csrf, auto_analysis: 'on', phishing_alerts: 'on', reply_suggestions: 'on', summary_language: 'German' });
      expect(res.status).toBe(303);
      const [p] = await t.db.rows<Record<string, unknown>>(sql`select * from llm_user_preferences where username = ${ALICE}`);
      expect(p).toMatchObject({ auto_analysis: true, auto_categorize: false, phishing_alerts: true, summary_enabled: false, reply_suggestions: true, summary_language: 'German', opt_out: false });
      const html = await (await b.get(res.headers.get('location')!)).text();
      expect(html).toContain('Preferences saved.');
      expect(html).toMatch(/name="summary_enabled" value="on"\/>/);
      expect(html).toMatch(/name="auto_analysis" value="on" checked=""\/>/);
      const huge = await b.post(path, { _csrf: csrf, summary_language: 'x'.repeat(20_000) });
      expect(huge.status).toBe(413);
      expect(await huge.text()).toContain('form over 16384 bytes');
      const bad = await b.post(path, { _csrf: csrf, summary_language: '<script>' });
      expect(bad.status).toBe(400);
      expect(await bad.text()).toContain('nothing was saved');
      const [after] = await t.db.rows<Record<string, unknown>>(sql`select summary_language, auto_analysis from llm_user_preferences where username = ${ALICE}`);
      expect(after).toMatchObject({ summary_language: 'German', auto_analysis: true });
    });

    it('sign-out ends the session; a revoked key ends its sessions', async () => {
      const b = new Browser(app);
      await b.signIn(ADMIN);
      const token = b.cookies.get('mailsight_session')!;
      const out = await b.post('/dashboard/logout', { _csrf: await b.csrf('/dashboard') });
      expect(out.headers.get('location')).toBe('/dashboard/login?notice=signed_out');
      const replay = new Browser(app);
      replay.cookies.set('mailsight_session', token);
      expect((await replay.get('/dashboard')).status).toBe(303);

      const k = await createApiKey(t.db, ALICE);
      const m = new Browser(app);
      await m.signIn(k.key);
      expect((await m.get(`/dashboard/mailbox/${encodeURIComponent(ALICE)}`)).status).toBe(200);
      await revokeApiKey(t.db, k.id);
      expect((await m.get(`/dashboard/mailbox/${encodeURIComponent(ALICE)}`)).status).toBe(303);
    });

    it('/stats?timeline_minutes= gives the same buckets the charts draw', async () => {
      const res = await app.request('/api/v1/get/llm/stats?timeline_minutes=60', { headers: { 'x-api-key': ADMIN } });
      expect(res.status).toBe(200);
      const body: any = await res.json();
      expect(body.timeline.bucket_sec).toBe(120);
      expect(body.timeline.points).toHaveLength(30);
      const sum = body.timeline.points.reduce((s: number, p: any) => s + p.analyzed, 0);
      expect(sum).toBe(32); // every seeded analysis was written within the hour
      const last = body.timeline.points.at(-1);
      expect(last.by_verdict.phishing ?? 0).toBeLessThanOrEqual(1);
      const total = body.timeline.points.reduce((s: number, p: any) => s + (p.by_verdict.phishing ?? 0), 0);
      expect(total).toBe(1);
      expect((await app.request('/api/v1/get/llm/stats?timeline_minutes=0', { headers: { 'x-api-key': ADMIN } })).status).toBe(400);
    });
  });
}
