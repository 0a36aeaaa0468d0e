import { and, eq, like, sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { emailAnalysis } from '../../src/db/schema.js';
import { DOVECOT_VERSIONS, dovecotAvailable, imapSession } from '../support/dovecot.js';
import { deliver } from '../support/lmtp.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/**
 * Campaign clean-up end to end (issue 22): a real Dovecot (2.3 and 2.4) with the shipped Lua
 * script, mailsight acting (DRY_RUN=false). 20 personalised messages from one sender with the same
 * links go to 20 mailboxes; only the 15th says what the stand-in model calls phishing. The user of
 * mailbox 3 had pressed Not junk on theirs.
 */

const pg = await postgresAvailable();
const USERS = Array.from({ length: 20 }, (_, i) => `c${i + 1}@example.test`);
const NAMES = ['Anna', 'Ben', 'Carla', 'Dev', 'Eli', 'Fay', 'Gus', 'Hana', 'Ivo', 'Jo', 'Kim', 'Lea', 'Max', 'Nia', 'Oto', 'Pia', 'Quin', 'Rua', 'Sam', 'Tea'];

function statement(i: number) {
  const name = NAMES[i - 1]!;
  return [
    'From: Billing <billing@billing-portal.example>',
    `To: ${name} <${USERS[i - 1]}>`,
    `Subject: Your November statement, ${name}`,
    `Message-ID: <stmt-${i}@billing-portal.example>`,
    'Date: Mon, 30 Nov 2026 10:00:00 +0000',
    '',
    `${i % 2 ? 'Dear' : 'Hello'} ${name},`,
    `your statement (reference ${1000 + i * 7}) is ready at https://billing-portal.example/statements/${i}`,
    i === 15 ? 'and verify your account within 24 hours or it will be closed.' : 'and thank you for being a customer.',
    'Your billing team (https://cdn.mailer.example/logo.png)',
    '',
  ].join('\r\n');
}

/** Which of the user's folders holds the statement: INBOX, Junk, or neither. */
async function whereIs(stack: Stack, user: string, i: number): Promise<string | null> {
  const client = await imapSession(stack.dc, user);
  try {
    for (const folder of ['INBOX', 'Junk']) {
      if (!(await client.list()).some((f) => f.path === folder)) continue;
      await client.mailboxOpen(folder);
      const found = await client.search({ header: { 'message-id': `<stmt-${i}@billing-portal.example>` } }, { uid: true });
      if (Array.isArray(found) && found.length) return folder;
    }
    return null;
  } finally {
    await client.logout();
  }
}

for (const version of DOVECOT_VERSIONS) {
  describeWith(`Dovecot ${version} and PostgreSQL`, dovecotAvailable(version) && pg)(`a campaign on Dovecot ${version} (Lua driver)`, () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ driver: 'lua', users: USERS, dovecot: { version }, mailsight: { dryRun: false } });
    });
    afterAll(async () => stack?.close());

    const rows = () => stack.db.orm.select().from(emailAnalysis).where(like(emailAnalysis.messageId, '<stmt-%'));
    const rowOf = async (i: number) =>
      (await stack.db.orm.select().from(emailAnalysis).where(and(eq(emailAnalysis.mailbox, USERS[i - 1]!), eq(emailAnalysis.messageId, `<stmt-${i}@billing-portal.example>`))))[0];

    it('after the 15th is judged phishing, the 13 earlier ones still in INBOX are moved to Junk, the one its user called not junk stays, the 5 later ones are moved: one model call in all', async () => {
      for (let i = 1; i <= 14; i++) await deliver(stack.dc.lmtpPort, statement(i), [USERS[i - 1]!]);
      await waitFor(rows, (r) => r.filter((x) => x.status === 'analyzed').length === 14);
      expect((await rows()).every((r) => r.verdict === 'legit')).toBe(true);
      // The user of mailbox 3: Not junk, from their mail client.
      const client = await imapSession(stack.dc, USERS[2]!);
      try {
        await client.mailboxOpen('INBOX');
        await client.messageFlagsAdd(String((await rowOf(3))!.uid), ['$NotJunk'], { uid: true });
      } finally {
        await client.logout();
      }
      await waitFor(async () => (await stack.db.rows<{ n: number }>(sql`select count(*)::int as n from llm_feedback where mailbox = ${USERS[2]!}`))[0]!.n, (n) => Number(n) === 1);
      const calls = stack.ollama!.state.chats.length;

      await deliver(stack.dc.lmtpPort, statement(15), [USERS[14]!]);
      await waitFor(rows, (r) => r.filter((x) => x.verdictSource === 'campaign' && x.movedToUid != null).length === 13);
      for (let i = 16; i <= 20; i++) await deliver(stack.dc.lmtpPort, statement(i), [USERS[i - 1]!]);
      await waitFor(rows, (r) => r.filter((x) => x.verdictSource === 'campaign' && x.movedToUid != null).length === 18);
      expect(stack.ollama!.state.chats.length - calls).toBe(1);

      for (let i = 1; i <= 20; i++) {
        const expected = i === 3 ? 'INBOX' : 'Junk';
        expect([i, await whereIs(stack, USERS[i - 1]!, i)]).toEqual([i, expected]);
      }
      expect(await rowOf(3)).toMatchObject({ verdict: 'legit', movedToFolder: null });
      expect(await rowOf(15)).toMatchObject({ verdict: 'phishing', verdictSource: 'model', movedToFolder: 'Junk' });
      expect(await rowOf(18)).toMatchObject({ verdict: 'phishing', verdictSource: 'campaign', status: 'skipped' });
      const metrics = await (await fetch(`${stack.ms.baseUrl}/metrics`)).text();
      expect(metrics).toMatch(/^mailsight_campaign_verdicts_total\{when="earlier"\} 13$/m);
      expect(metrics).toMatch(/^mailsight_campaign_verdicts_total\{when="later"\} 5$/m);
    });
  });
}

describeWith('Dovecot 2.3 and PostgreSQL', dovecotAvailable('2.3') && pg)('a campaign with DRY_RUN=true (Dovecot 2.3, Lua driver)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ driver: 'lua', users: USERS, mailsight: { dryRun: true } });
  });
  afterAll(async () => stack?.close());

  it('the earlier and later messages get the verdict and a would_move on record; nothing leaves INBOX; one model call', async () => {
    for (let i = 1; i <= 14; i++) await deliver(stack.dc.lmtpPort, statement(i), [USERS[i - 1]!]);
    const rows = () => stack.db.orm.select().from(emailAnalysis).where(like(emailAnalysis.messageId, '<stmt-%'));
    await waitFor(rows, (r) => r.filter((x) => x.status === 'analyzed').length === 14);
    const calls = stack.ollama!.state.chats.length;
    await deliver(stack.dc.lmtpPort, statement(15), [USERS[14]!]);
    await waitFor(rows, (r) => r.some((x) => x.verdict === 'phishing' && x.verdictSource === 'model'));
    for (let i = 16; i <= 20; i++) await deliver(stack.dc.lmtpPort, statement(i), [USERS[i - 1]!]);
    const wouldMove = () => stack.db.rows<{ mailbox: string }>(sql`select distinct mailbox from llm_audit_log where action = 'would_move'`);
    await waitFor(wouldMove, (r) => r.length === 20);
    expect(stack.ollama!.state.chats.length - calls).toBe(1);
    expect((await rows()).filter((r) => r.verdictSource === 'campaign')).toHaveLength(19);
    for (const i of [1, 14, 20]) expect(await whereIs(stack, USERS[i - 1]!, i)).toBe('INBOX');
  });
});

