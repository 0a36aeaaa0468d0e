import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { emailAnalysis, feedback } from '../../src/db/schema.js';
import { DOVECOT_VERSIONS, dovecotAvailable, imapSession } from '../support/dovecot.js';
import { deliver } from '../support/lmtp.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/**
 * Users' word on verdicts, end to end: a real Dovecot (2.3 and 2.4) with the shipped Lua script,
 * mailsight acting on the mailbox (DRY_RUN=false), a mail client's Junk button (STORE +FLAGS $Junk)
 * and drags between folders; and what the mailbox learns from them about the senders.
 */

const pg = await postgresAvailable();
const ALICE = 'alice@example.test';
const ADMIN = 'feedback-admin-key-0123456789';

const BOB = 'bob@example.test';
const SENDER = 'Sender <sender@example.net>';
const BANK = 'Bank <alerts@bank.example>';

function message(id: string, subject: string, body: string, from = SENDER) {
  return [`From: ${from}`, `To: ${ALICE}`, `Subject: ${subject}`, `Message-ID: <${id}@example.net>`, 'Date: Sat, 21 Nov 2026 10:00:00 +0000', '', body, ''].join('\r\n');
}
const PHISH = (id: string, from = BANK) => message(id, `Account suspended ${id}`, `Dear customer, verify your account within 24 hours or it will be closed: http://192.0.2.10/login?ref=${id}`, from);
// Three of the stand-in's spam phrases: spam, confidently enough to be moved to Junk.
const SPAMMY = 'Act now: limited time, click here for the lowest rates.';

for (const version of DOVECOT_VERSIONS) {
  describeWith(`Dovecot ${version} and PostgreSQL`, dovecotAvailable(version) && pg)(`feedback from Dovecot ${version} (Lua driver)`, () => {
    let stack: Stack;
    beforeAll(async () => {
      // The sweep every second: it must not take a message the user moved for new mail.
      stack = await startStack({ driver: 'lua', users: [ALICE, BOB], dovecot: { version }, mailsight: { dryRun: false, apiKey: ADMIN, processing: { intervalSec: 1 } } });
    });
    afterAll(async () => stack?.close());

    const rowOf = async (messageId: string, mailbox = ALICE) =>
      (await stack.db.orm.select().from(emailAnalysis).where(and(eq(emailAnalysis.mailbox, mailbox), eq(emailAnalysis.messageId, messageId))))[0];
    const feedbackOf = (messageId: string) => stack.db.orm.select().from(feedback).where(and(eq(feedback.mailbox, ALICE), eq(feedback.message, messageId)));
    const inFolder = (folder: string, messageId: string) => holds(stack, ALICE, folder, messageId);
    const stats = async () => (await (await fetch(`${stack.ms.baseUrl}/api/v1/get/llm/stats`, { headers: { 'x-api-key': ADMIN } })).json()) as any;
    const pushes = async () => {
      const text = await (await fetch(`${stack.ms.baseUrl}/metrics`)).text();
      return Object.fromEntries([...text.matchAll(/^mailsight_pushes_total\{outcome="([a-z_]+)"\} (\d+)/gm)].map((m) => [m[1], Number(m[2])]));
    };

    it('the Junk button on a message judged legit: one missed junk, in /stats and /metrics', async () => {
      await deliver(stack.dc.lmtpPort, message('legit-1', 'Team lunch', 'Lunch is at noon on Friday, see you there.'), [ALICE]);
      const row = await waitFor(() => rowOf('<legit-1@example.net>'), (r) => r?.status === 'analyzed');
      expect(row!.verdict).toBe('legit');
      const client = await imapSession(stack.dc, ALICE);
      try {
        await client.mailboxOpen('INBOX');
        await client.messageFlagsAdd(String(row!.uid), ['$Junk'], { uid: true });
      } finally {
        await client.logout();
      }
      const [fb] = await waitFor(() => feedbackOf('<legit-1@example.net>'), (r) => r.length === 1);
      expect(fb).toMatchObject({ said: 'junk', how: 'keyword', verdict: 'legit', folder: 'INBOX', uid: row!.uid });
      expect((await stats()).quality).toMatchObject({ feedback: 1, missed_junk: 1 });
      expect(await (await fetch(`${stack.ms.baseUrl}/metrics`)).text()).toMatch(/mailsight_feedback_total\{said="junk",how="keyword",outcome="missed_junk"\} 1/);
    });

    it("mailsight's own $Junk and its move to Junk are no feedback; the user's drag back to INBOX is one false junk", async () => {
      const before = await pushes();
      await deliver(stack.dc.lmtpPort, PHISH('phish-1'), [ALICE]);
      const row = await waitFor(() => rowOf('<phish-1@example.net>'), (r) => r?.movedToUid != null);
      expect(row).toMatchObject({ verdict: 'phishing', movedToFolder: 'Junk' });
      expect(row!.keywords).toContain('$Junk');
      // Its FlagsSet ($Junk) and MessageAppend (into Junk) came, and were answered "ignored".
      await waitFor(pushes, (p) => (p.ignored ?? 0) - (before.ignored ?? 0) >= 2);
      expect(await feedbackOf('<phish-1@example.net>')).toEqual([]);

      await dragBackFromJunk(stack, ALICE, row!.movedToUid!);
      const [fb] = await waitFor(() => feedbackOf('<phish-1@example.net>'), (r) => r.length === 1);
      expect(fb).toMatchObject({ said: 'legit', how: 'move', verdict: 'phishing', folder: 'INBOX' });
      expect((await stats()).quality).toMatchObject({ feedback: 2, false_junk: 1, missed_junk: 1 });
      // Sweeps that see the new UID in INBOX leave it there: the moved message is no new mail.
      await new Promise((r) => setTimeout(r, 2_500));
      expect(await inFolder('INBOX', '<phish-1@example.net>')).toBe(true);
      expect(await inFolder('Junk', '<phish-1@example.net>')).toBe(false);
    });

    it('the sender Alice junked is junked (and moved) next time in her mailbox, and not in Bob\'s', async () => {
      await deliver(stack.dc.lmtpPort, message('again-1', 'Dinner', 'And dinner on Saturday?'), [ALICE, BOB]);
      const alice = await waitFor(() => rowOf('<again-1@example.net>'), (r) => r?.movedToUid != null);
      expect(alice).toMatchObject({ verdict: 'spam', verdictSource: 'user', movedToFolder: 'Junk' });
      const bob = await waitFor(() => rowOf('<again-1@example.net>', BOB), (r) => r?.status === 'analyzed');
      expect(bob).toMatchObject({ verdict: 'legit', verdictSource: 'model', movedToFolder: null });
    });

    it('the sender Alice rescued from Junk is not junked again in her mailbox; Bob\'s copy still is', async () => {
      await deliver(stack.dc.lmtpPort, message('bank-2', 'Offer', SPAMMY, BANK), [ALICE, BOB]);
      const bob = await waitFor(() => rowOf('<bank-2@example.net>', BOB), (r) => r?.movedToUid != null);
      expect(bob).toMatchObject({ verdict: 'spam', verdictSource: 'model', movedToFolder: 'Junk' });
      const alice = await waitFor(() => rowOf('<bank-2@example.net>'), (r) => r?.status === 'analyzed');
      expect(alice).toMatchObject({ verdict: 'legit', verdictSource: 'user', movedToFolder: null });
      // Her preferences show both senders, newest first.
      const prefs = await (await fetch(`${stack.ms.baseUrl}/api/v1/get/llm/preferences?username=${ALICE}`, { headers: { 'x-api-key': ADMIN } })).json();
      expect(prefs.learned_senders.map((l: { sender: string; said: string; how: string }) => [l.sender, l.said, l.how])).toEqual([
        ['alerts@bank.example', 'legit', 'move'],
        ['sender@example.net', 'junk', 'keyword'],
      ]);
    });
  });
}

/** The user's drag of a message from Junk back to INBOX, as a mail client does it (UID MOVE). */
async function dragBackFromJunk(stack: Stack, user: string, uid: number): Promise<void> {
  const client = await imapSession(stack.dc, user);
  try {
    await client.mailboxOpen('Junk');
    await client.messageMove(String(uid), 'INBOX', { uid: true });
  } finally {
    await client.logout();
  }
}

/** Whether `user`'s `folder` holds a message with this Message-ID (asked over IMAP as the user). */
async function holds(stack: Stack, user: string, folder: string, messageId: string): Promise<boolean> {
  const client = await imapSession(stack.dc, user);
  try {
    await client.mailboxOpen(folder);
    const found = await client.search({ header: { 'message-id': messageId } }, { uid: true });
    return Array.isArray(found) && found.length > 0;
  } finally {
    await client.logout();
  }
}

for (const version of DOVECOT_VERSIONS) {
  describeWith(`Dovecot ${version} and PostgreSQL`, dovecotAvailable(version) && pg)(`a rescue from Junk with the OX driver (Dovecot ${version}), found by the sweep`, () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ driver: 'ox', users: [ALICE], dovecot: { version }, mailsight: { dryRun: false, apiKey: ADMIN, processing: { intervalSec: 1 } } });
    });
    afterAll(async () => stack?.close());

    it('the drag back to INBOX is one false junk, the message stays there, and no model call is made', async () => {
      await deliver(stack.dc.lmtpPort, PHISH('ox-1'), [ALICE]);
      const row = await waitFor(
        async () => (await stack.db.orm.select().from(emailAnalysis).where(and(eq(emailAnalysis.mailbox, ALICE), eq(emailAnalysis.messageId, '<ox-1@example.net>'))))[0],
        (r) => r?.movedToUid != null,
      );
      expect(row).toMatchObject({ verdict: 'phishing', movedToFolder: 'Junk' });
      const calls = stack.ollama!.state.chats.length;
      await dragBackFromJunk(stack, ALICE, row!.movedToUid!);
      // No push for an IMAP move with the OX driver: the sweep finds the new UID in INBOX.
      const [fb] = await waitFor(() => stack.db.orm.select().from(feedback).where(and(eq(feedback.mailbox, ALICE), eq(feedback.message, '<ox-1@example.net>'))), (r) => r.length === 1);
      expect(fb).toMatchObject({ said: 'legit', how: 'move', verdict: 'phishing', folder: 'INBOX' });
      await new Promise((r) => setTimeout(r, 2_500));
      expect(await holds(stack, ALICE, 'INBOX', '<ox-1@example.net>')).toBe(true);
      expect(await holds(stack, ALICE, 'Junk', '<ox-1@example.net>')).toBe(false);
      expect(stack.ollama!.state.chats.length).toBe(calls);
    });

    it('a second delivery while the first copy is still in Junk is analysed and moved as new mail', async () => {
      // Another sender: the one rescued above is not junked again in this mailbox (learned).
      const other = 'Alerts <alerts@other-bank.example>';
      await deliver(stack.dc.lmtpPort, PHISH('ox-2', other), [ALICE]);
      const first = await waitFor(
        async () => (await stack.db.orm.select().from(emailAnalysis).where(and(eq(emailAnalysis.mailbox, ALICE), eq(emailAnalysis.messageId, '<ox-2@example.net>'))))[0],
        (r) => r?.movedToUid != null,
      );
      expect(first!.movedToFolder).toBe('Junk');
      await deliver(stack.dc.lmtpPort, PHISH('ox-2', other), [ALICE]);
      await waitFor(() => holds(stack, ALICE, 'INBOX', '<ox-2@example.net>'), (v) => v === false);
      expect(await stack.db.orm.select().from(feedback).where(and(eq(feedback.mailbox, ALICE), eq(feedback.message, '<ox-2@example.net>')))).toEqual([]);
    });
  });
}
