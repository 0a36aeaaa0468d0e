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
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForLoadState();
    return page;
  }

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
    expect(await page.locator('figure.chart svg').count()).toBe(4);
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
    await waitFor(
      async () => (await page.reload(), await page.getByTestId('audit').textContent()),
      (text) => Boolean(text?.includes('reanalysis_requested') && text.includes('analysis_replaced')),
    );
    expect(await textOf(page.getByTestId('state'))).toBe('analyzed');
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
});
