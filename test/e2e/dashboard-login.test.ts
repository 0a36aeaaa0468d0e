import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { dashboardSignIn } from '../support/dashboard.js';
import { DOVECOT_VERSIONS, dovecotAvailable, freePort } from '../support/dovecot.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';

/**
 * Signing in to the dashboard with the mail password, against a real Dovecot (no browser: the
 * browser test covers the pages). The limits, the refusals that never reach Dovecot, the switch,
 * an IMAP outage, and that nothing of the password is kept.
 */

const pg = await postgresAvailable();
const USERS = ['carol@example.test', 'dave@example.test', 'erin@example.test'];
const [CAROL, DAVE, ERIN] = USERS as [string, string, string];

for (const version of DOVECOT_VERSIONS) {
  describeWith(`Dovecot ${version} and PostgreSQL`, dovecotAvailable(version) && pg)(`dashboard sign-in with the mail password, Dovecot ${version}`, () => {
    let stack: Stack;
    const lines: string[] = [];
    const signIn = (user: string, password: string) => dashboardSignIn(stack.ms.baseUrl, { user, password });
    const counted = async (outcome: string) => {
      const text = await (await fetch(`${stack.ms.baseUrl}/metrics`)).text();
      return Number(new RegExp(`^mailsight_dashboard_sign_ins_total\\{method="password",outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    };

    beforeAll(async () => {
      stack = await startStack({
        users: USERS,
        dovecot: { version },
        mailsight: { logger: createLogger('debug', { write: (s: string) => void lines.push(s) }), authMaxFailures: 8 },
      });
    });
    afterAll(async () => stack?.close());

    it('the right password opens a session for the canonical mailbox; nothing of the password is kept', async () => {
      const password = stack.dc.userPassword;
      const ok = await signIn(' Carol@Example.TEST ', password);
      expect(ok).toMatchObject({ status: 303, location: `/dashboard/mailbox/${encodeURIComponent(CAROL)}`, session: expect.stringMatching(/^mailsight_session=/) });
      const page = await fetch(`${stack.ms.baseUrl}${ok.location}`, { headers: { cookie: ok.session! } });
      expect(page.status).toBe(200);
      expect(await page.text()).toContain(CAROL);
      const other = await fetch(`${stack.ms.baseUrl}/dashboard/mailbox/${encodeURIComponent(DAVE)}`, { headers: { cookie: ok.session! } });
      expect(other.status).toBe(403);
      // Not in any table, not in the log.
      const dump = await stack.db.rows<{ t: string }>(sql`select row_to_json(s)::text as t from llm_dashboard_sessions s`);
      expect(dump.length).toBeGreaterThan(0);
      for (const { t } of dump) expect(t).not.toContain(password);
      expect(lines.join('\n')).not.toContain(password);
      expect(lines.some((l) => l.includes('dashboard sign-in') && l.includes(`password:${CAROL}`))).toBe(true);
    });

    it('a master login (user*master) is refused without being tried, even with the master password', async () => {
      const before = await counted('refused');
      const r = await signIn(`${CAROL}*${stack.dc.masterUser}`, stack.dc.masterPassword);
      expect(r).toMatchObject({ status: 401, session: null });
      expect(await counted('refused')).toBe(before + 1);
    });

    it('five wrong passwords lock that account for 15 minutes, even for the right one; other accounts are not affected', async () => {
      for (let i = 0; i < 5; i++) expect((await signIn(DAVE, `wrong-${i}`)).status).toBe(401);
      const locked = await signIn(DAVE, stack.dc.userPassword);
      expect(locked).toMatchObject({ status: 429, alert: expect.stringMatching(/Too many wrong passwords for this address; try again in \d+ s/), session: null });
      expect(await counted('limited')).toBeGreaterThanOrEqual(1);
      expect((await signIn(ERIN, stack.dc.userPassword)).status).toBe(303);
    });

    it('failures count against the address too (AUTH_MAX_FAILURES): past it, every account from there waits', async () => {
      // 1 (master login) + 5 (Dave) so far; two more reach 8.
      expect((await signIn(ERIN, 'wrong-a')).status).toBe(401);
      expect((await signIn(ERIN, 'wrong-b')).status).toBe(401);
      expect(await signIn(CAROL, stack.dc.userPassword)).toMatchObject({ status: 429, session: null });
      expect(lines.some((l) => l.includes('mail password refused by the IMAP server'))).toBe(true);
    });

    it('an IMAP server that cannot answer gives 503 and counts against no one; DASHBOARD_IMAP_LOGIN=false takes keys only', async () => {
      await stack.restart({ imap: { port: await freePort() } });
      const down = await signIn(CAROL, stack.dc.userPassword);
      expect(down).toMatchObject({ status: 503, alert: expect.stringContaining('could not check your password'), session: null });
      expect(await counted('unavailable')).toBe(1);

      await stack.restart({ dashboardImapLogin: false });
      const form = await (await fetch(`${stack.ms.baseUrl}/dashboard/login`)).text();
      expect(form).not.toContain('name="password"');
      expect(form).toContain('name="key"');
      expect(await signIn(CAROL, stack.dc.userPassword)).toMatchObject({ status: 403, alert: expect.stringContaining('DASHBOARD_IMAP_LOGIN=false'), session: null });
    });
  });
}
