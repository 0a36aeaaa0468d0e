/// <reference lib="dom" />
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApiKey } from '../../src/queries/keys.js';
import { loadCorpus } from '../support/corpus.js';
import { dovecotAvailable } from '../support/dovecot.js';
import { deliver } from '../support/lmtp.js';
import { testMessage } from '../support/message.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/** Debian's chromium (the package .ci/run installs), driven by playwright-core. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts', 'dashboard');
const ready = dovecotAvailable() && existsSync(CHROMIUM) && (await postgresAvailable());
const ADMIN = 'browser-admin-key-0123456789abcdef';
const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const PHISH_SUBJECT = 'Your mailbox account is locked';

describeWith('Dovecot, PostgreSQL and Chromium', ready)('the dashboard in a real browser', () => {
  let stack: Stack;
  let browser: Browser;
  let aliceKey: string;

  const analysedCount = async (mailbox: string) =>
    Number((await stack.db.rows<{ n: string }>(sql`select count(*) as n from llm_email_analysis where mailbox = ${mailbox}`))[0]!.n);
  /** Waits for the element (pages are server-rendered: it is there once the navigation ends), then its text. */
  const textOf = async (loc: Locator) => {
    await loc.first().waitFor();
    return (await loc.first().textContent())?.trim() ?? '';
  };
  const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  async function signIn(key: string, viewport = { width: 1280, height: 900 }) {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    await page.goto(`${stack.ms.baseUrl}/dashboard`);
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in with the key' }).click();
    await page.waitForLoadState();
    return page;
  }

  /** Signs in as a mailbox owner, with the mail address and password Dovecot knows. */
  async function signInWithPassword(user: string, password: string, viewport = { width: 1280, height: 900 }) {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    await page.goto(`${stack.ms.baseUrl}/dashboard`);
    await page.getByLabel('Mail address').fill(user);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForLoadState();
    return page;
  }

  const signInCount = async (method: string, outcome: string) => {
    const text = await (await fetch(`${stack.ms.baseUrl}/metrics`)).text();
    const m = new RegExp(`^mailsight_dashboard_sign_ins_total\\{method="${method}",outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };

  /** Every SVG text's size on screen (font size times the SVG's scale), in CSS pixels. */
  const chartTextSizes = (page: Page) =>
    page.evaluate(() =>
      Array.from(document.querySelectorAll('figure.chart svg text'))
        .filter((t) => t.getBoundingClientRect().width > 0)
        .map((t) => {
          const el = t as SVGTextElement;
          return parseFloat(getComputedStyle(el).fontSize) * (el.getScreenCTM()?.a ?? 0);
        }),
    );

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    stack = await startStack({ users: [ALICE, BOB], mailsight: { apiKey: ADMIN } });
    aliceKey = (await createApiKey(stack.db, ALICE)).key;
    // Real mail from the corpus, one phishing attempt, and one message for Bob, delivered by Dovecot.
    const corpus = [...loadCorpus(3, ['easy-ham-1']), ...loadCorpus(2, ['spam-2'])];
    for (const m of corpus) await deliver(stack.dc.lmtpPort, m.raw, [ALICE]);
    await deliver(stack.dc.lmtpPort, testMessage('phish-1', ALICE, PHISH_SUBJECT, 'We noticed unusual activity. Verify your account within 24 hours or it will be closed.'), [ALICE]);
    await deliver(stack.dc.lmtpPort, testMessage('bob-1', BOB, 'Lunch on Friday', 'Shall we meet at noon?'), [BOB]);
    await waitFor(() => analysedCount(ALICE), (n) => n === corpus.length + 1, 30_000);
    await waitFor(() => analysedCount(BOB), (n) => n === 1, 30_000);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  it('a wrong key is refused on the sign-in page', async () => {
    const page = await signIn('msk_000000000000_not-a-real-key-not-a-real-key-not-a-real-k');
    expect(await textOf(page.getByRole('alert'))).toMatch(/That key is not valid/);
    expect(page.url()).toContain('/dashboard/login');
    await shot(page, '01-login-refused');
    await page.context().close();
  });

  it('the admin sees the overview, filters a mailbox, opens a message and re-analyses it', async () => {
    const page = await signIn(ADMIN);
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    const health = page.locator('ul.health');
    for (const component of ['database', 'imap', 'ollama']) expect(await textOf(health)).toContain(component);
    expect(await health.locator('.badge.bad').count()).toBe(0);
    expect(await textOf(page.getByTestId('analysed-total'))).toBe('7');
    expect(await page.locator('figure.chart svg:visible').count()).toBe(4);
    await shot(page, '02-overview');

    await page.getByRole('link', { name: ALICE }).click();
    await page.getByRole('heading', { name: ALICE, level: 1 }).waitFor();
    expect(await page.getByTestId('message').count()).toBe(6);
    expect(await page.locator('li.phishing').count()).toBe(1);
    await shot(page, '03-mailbox');

    await page.getByLabel('Verdict').selectOption('phishing');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/verdict=phishing/);
    expect(await page.getByTestId('message').count()).toBe(1);
    expect(await textOf(page.getByTestId('message'))).toContain(PHISH_SUBJECT);
    await shot(page, '04-mailbox-filtered');

    await page.getByRole('link', { name: PHISH_SUBJECT }).click();
    await page.getByRole('heading', { name: PHISH_SUBJECT, level: 1 }).waitFor();
    expect(await textOf(page.getByTestId('model-reasons'))).toContain('asks to verify an account');
    expect(await textOf(page.getByTestId('state'))).toBe('analyzed');
    await shot(page, '05-message');

    const chats = () => stack.ollama!.state.chats.filter((c) => JSON.stringify(c.messages).includes(PHISH_SUBJECT)).length;
    expect(chats()).toBe(1);
    await page.getByRole('button', { name: 'Re-analyse' }).click();
    expect(await textOf(page.getByRole('status'))).toContain('Queued for analysis');
    await waitFor(async () => chats(), (n) => n === 2);
    // The old result is archived (analysis_replaced) just before the new one is stored and the job
    // ends: wait for the job's end too, not only for the archive entry.
    const seen = await waitFor(
      async () => (await page.reload(), { audit: await page.getByTestId('audit').textContent(), state: await textOf(page.getByTestId('state')) }),
      (s) => Boolean(s.audit?.includes('reanalysis_requested') && s.audit.includes('analysis_replaced') && s.state === 'analyzed'),
    );
    expect(seen.state).toBe('analyzed');
    await shot(page, '06-message-reanalysed');
    await page.context().close();
  });

  it("a mailbox owner's preference change is honoured on the next delivery; another mailbox stays closed", async () => {
    const page = await signIn(aliceKey);
    await page.getByRole('heading', { name: ALICE, level: 1 }).waitFor();
    await page.getByRole('link', { name: 'Preferences', exact: true }).click();
    const summary = page.getByLabel('Store a summary');
    expect(await summary.isChecked()).toBe(true);
    await summary.uncheck();
    await page.getByRole('button', { name: 'Save' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('Preferences saved.');
    expect(await page.getByLabel('Store a summary').isChecked()).toBe(false);
    await shot(page, '07-preferences');

    const before = await analysedCount(ALICE);
    await deliver(stack.dc.lmtpPort, testMessage('after-pref', ALICE, 'Quarterly planning notes', 'Here are the notes from the planning meeting.'), [ALICE]);
    await waitFor(() => analysedCount(ALICE), (n) => n === before + 1);
    await page.getByRole('link', { name: 'My mail' }).click();
    await page.getByRole('link', { name: 'Quarterly planning notes' }).click();
    expect(await textOf(page.getByTestId('state'))).toBe('analyzed');
    expect(await textOf(page.getByTestId('summary'))).toBe('none stored');
    await shot(page, '08-message-without-summary');

    await page.goto(`${stack.ms.baseUrl}/dashboard/mailbox/${encodeURIComponent(BOB)}`);
    expect(await textOf(page.getByRole('alert'))).toContain('signed in for another mailbox');
    expect(await textOf(page.locator('body'))).not.toContain('Lunch on Friday');
    await shot(page, '09-other-mailbox-refused');

    await page.getByRole('button', { name: 'Sign out' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('You are signed out.');
    await page.goto(`${stack.ms.baseUrl}/dashboard/mailbox/${encodeURIComponent(ALICE)}`);
    expect(page.url()).toContain('/dashboard/login');
    await page.context().close();
  });

  it('fits a phone screen and starts with a skip link for the keyboard', async () => {
    const page = await signIn(ADMIN, { width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent?.trim())).toBe('Skip to content');
    await shot(page, '10-overview-phone');
    await page.getByRole('link', { name: ALICE }).click();
    await page.getByRole('heading', { name: ALICE, level: 1 }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    await shot(page, '11-mailbox-phone');
    await page.context().close();
  });

  it('charts: 12 px text at 1280 and 390 px, latency as a line, one colour per verdict and per category with a legend', async () => {
    for (const viewport of [{ width: 1280, height: 900 }, { width: 390, height: 844 }]) {
      const page = await signIn(ADMIN, viewport);
      await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
      // One drawing of each chart shows, and it fits the screen.
      expect(await page.locator('figure.chart svg:visible').count()).toBe(4);
      expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
      const sizes = await chartTextSizes(page);
      expect(sizes.length).toBeGreaterThan(20);
      expect(Math.min(...sizes)).toBeGreaterThanOrEqual(11);
      // Latency: a drawn line (a path with a segment), not a lone dot.
      const d = await page.locator('#c-llm-t').locator('xpath=..').locator('.plot:visible path.line').first().getAttribute('d');
      expect(d).toMatch(/^M[\d.]+,[\d.]+ L[\d.]+,[\d.]+/);
      // Every chart has a legend; a name has one colour in all of them, and names in one chart differ.
      const legends = await page.evaluate(() =>
        Array.from(document.querySelectorAll('figure.chart')).map((f) =>
          Array.from(f.querySelectorAll('ul.legend li')).map((li) => [li.textContent!.trim(), getComputedStyle(li.querySelector('.swatch')!).backgroundColor] as const),
        ),
      );
      expect(legends).toHaveLength(4);
      for (const l of legends) {
        expect(l.length).toBeGreaterThan(0);
        expect(new Set(l.map(([, colour]) => colour)).size).toBe(l.length);
      }
      const verdicts = new Map(legends[2]!);
      expect([...verdicts.keys()]).toEqual(expect.arrayContaining(['legit', 'phishing']));
      // The bars use the legend's colours.
      const legitBar = await page.evaluate(() => {
        const rect = document.querySelectorAll('figure.chart')[2]!.querySelector('rect.v-legit');
        return rect ? getComputedStyle(rect).fill : null;
      });
      expect(legitBar).toBe(verdicts.get('legit'));
      await shot(page, `12-overview-charts-${viewport.width}`);
      await page.context().close();
    }
  });

  it('the mailbox list shows when each message was received, newest first, and says so', async () => {
    for (const viewport of [{ width: 1280, height: 900 }, { width: 390, height: 844 }]) {
      const page = await signIn(ADMIN, viewport);
      await page.goto(`${stack.ms.baseUrl}/dashboard/mailbox/${encodeURIComponent(ALICE)}`);
      expect(await textOf(page.locator('.list-head'))).toMatch(/^Received ↓ \(newest first; the time the server received each message\)$/);
      const times = await page.locator('[data-testid="message"] .received time').evaluateAll((ts) => ts.map((t) => t.getAttribute('datetime')!));
      expect(times.length).toBe(await page.getByTestId('message').count());
      expect([...times].sort().reverse()).toEqual(times);
      // The corpus's Date headers are from 2002; receipt is today.
      expect(times[0]!.slice(0, 4)).toBe(String(new Date().getUTCFullYear()));
      expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
      await shot(page, `13-mailbox-received-${viewport.width}`);
      await page.context().close();
    }
  });

  it('a mailbox owner signs in with the mail password: own mail, 403 elsewhere, keys for scripts; a wrong password is refused and counted', async () => {
    const refusedBefore = await signInCount('password', 'refused');
    const wrong = await signInWithPassword(ALICE, 'not-the-password');
    expect(await textOf(wrong.getByRole('alert'))).toBe('The mail server refused that address and password.');
    expect(wrong.url()).toContain('/dashboard/login');
    expect(await signInCount('password', 'refused')).toBe(refusedBefore + 1);
    // No literal markup on the sign-in page.
    expect(await textOf(wrong.locator('main'))).not.toMatch(/[`*<>]/);
    await shot(wrong, '14-login-password-refused');
    await wrong.context().close();

    const okBefore = await signInCount('password', 'ok');
    const page = await signInWithPassword('Alice@Example.test', stack.dc.userPassword);
    await page.getByRole('heading', { name: ALICE, level: 1 }).waitFor();
    expect(await signInCount('password', 'ok')).toBe(okBefore + 1);
    expect(await page.getByTestId('message').count()).toBeGreaterThanOrEqual(6);
    await shot(page, '15-owner-signed-in-by-password');
    const other = await page.goto(`${stack.ms.baseUrl}/dashboard/mailbox/${encodeURIComponent(BOB)}`);
    expect(other!.status()).toBe(403);
    expect(await textOf(page.locator('body'))).not.toContain('Lunch on Friday');

    // Keys for the owner's own scripts: made here, shown once, working for this mailbox only, revoked here.
    await page.goto(`${stack.ms.baseUrl}/dashboard/mailbox/${encodeURIComponent(ALICE)}`);
    await page.getByRole('link', { name: 'API keys' }).click();
    await page.getByLabel('Name (what the key is for)').fill('phone script');
    await page.getByRole('button', { name: 'Create a key' }).click();
    const key = await textOf(page.locator('pre.key'));
    expect(key).toMatch(/^msk_[0-9a-f]{12}_/);
    await shot(page, '16-owner-key-created');
    const api = (who: string) => fetch(`${stack.ms.baseUrl}/api/v1/get/llm/preferences?username=${who}`, { headers: { 'x-api-key': key } }).then((r) => r.status);
    expect(await api(ALICE)).toBe(200);
    expect(await api(BOB)).toBe(403);
    // Shown once: the keys page, visited again, lists the key but never shows it.
    await page.goto(`${stack.ms.baseUrl}/dashboard/mailbox/${encodeURIComponent(ALICE)}/keys`);
    expect(await page.locator('pre.key').count()).toBe(0);
    expect(await textOf(page.locator('body'))).not.toContain(key);
    const row = page.getByTestId('key').filter({ hasText: 'phone script' });
    await row.getByRole('button', { name: 'Revoke' }).click();
    expect(await textOf(page.getByRole('status'))).toContain('The key is revoked');
    expect(await api(ALICE)).toBe(401);
    await page.context().close();
  });

  it('opt-out asks first and names what it erases; every checkbox has one size', async () => {
    // A sender Bob's Junk taught, with a long address: the learned senders' table (five columns) must fit too.
    const longSender = 'monthly-statements.and-account-notices@billing.example-department-store.test';
    await stack.db.rows(sql`
      insert into llm_learned_senders (mailbox, sender_key, sender, said, how, message)
      values (${BOB}, 'phone-test', ${longSender}, 'junk', 'keyword', '<phone-test@example.test>')`);
    const page = await signInWithPassword(BOB, stack.dc.userPassword, { width: 390, height: 844 });
    await page.getByRole('heading', { name: BOB, level: 1 }).waitFor();
    await page.getByRole('link', { name: 'Preferences', exact: true }).click();
    const boxes = await page.locator('input[type="checkbox"]').evaluateAll((bs) => bs.map((b) => `${b.getBoundingClientRect().width}x${b.getBoundingClientRect().height}`));
    expect(boxes.length).toBeGreaterThan(3);
    expect(new Set(boxes).size).toBe(1);
    expect(await textOf(page.getByTestId('learned-senders'))).toContain(longSender);
    expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    await shot(page, '17-preferences-phone');
    // The same table on a wide screen: a row per sender, the five columns side by side.
    await page.setViewportSize({ width: 1280, height: 900 });
    const head = page.getByTestId('learned-senders').locator('thead');
    expect(await head.isVisible()).toBe(true);
    expect(await head.locator('th').allTextContents()).toEqual(['Sender', 'Your word', 'How', 'When (UTC)', '']);
    // Only the address wraps: each short cell (word, how, when, the Forget button) is one line of text.
    const lines = await page.getByTestId('learned-senders').locator('td.nowrap').evaluateAll((cells) =>
      cells.map((c) => {
        const range = document.createRange();
        range.selectNodeContents(c.querySelector('button') ?? c);
        return range.getClientRects().length;
      }),
    );
    expect(lines).toEqual([1, 1, 1, 1]);
    await shot(page, '17-preferences-wide');
    await page.setViewportSize({ width: 390, height: 844 });

    await page.getByLabel('Opt out').check();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: 'Opt out and erase?' }).waitFor();
    expect(await textOf(page.getByTestId('erase-list'))).toMatch(/^1 analysis .*1 queued or past job.*\d+ audit trail entr/s);
    await shot(page, '18-opt-out-confirm-phone');
    await page.getByRole('link', { name: 'Cancel, change nothing' }).click();
    expect(await analysedCount(BOB)).toBe(1);
    expect(await page.getByLabel('Opt out').isChecked()).toBe(false);

    await page.getByLabel('Opt out').check();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('button', { name: 'Erase and opt out' }).click();
    expect(await textOf(page.getByRole('status'))).toContain('has been erased');
    expect(await analysedCount(BOB)).toBe(0);
    expect(await page.getByLabel('Opt out').isChecked()).toBe(true);
    await page.context().close();
  });
});
