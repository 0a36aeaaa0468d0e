import { and, asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { emailAnalysis, processingQueue } from '../../src/db/schema.js';
import { DOVECOT_VERSIONS, dovecotAvailable, imapSession } from '../support/dovecot.js';
import { deliver } from '../support/lmtp.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/**
 * The Lua driver sees every event: which of them become work. A real Dovecot (2.3 and 2.4) with the
 * shipped Lua snippet, mailsight acting on mailboxes (DRY_RUN=false), the default folder lists.
 */

const pg = await postgresAvailable();
const ALICE = 'alice@example.test';
const FINAL = ['done', 'skipped', 'failed', 'dead', 'gone', 'stale'];

function message(id: string, subject: string, body: string) {
  return [`From: Sender <sender@example.net>`, `To: ${ALICE}`, `Subject: ${subject}`, `Message-ID: <${id}@example.net>`, 'Date: Sat, 21 Nov 2026 10:00:00 +0000', '', body, ''].join('\r\n');
}
const PHISH = (id: string) => message(id, `Account suspended ${id}`, `Dear customer, verify your account within 24 hours or it will be closed: http://192.0.2.10/login?ref=${id}`);

for (const version of DOVECOT_VERSIONS) {
  describeWith(`Dovecot ${version} and PostgreSQL`, dovecotAvailable(version) && pg)(`Lua driver events, Dovecot ${version}`, () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({
        driver: 'lua',
        users: [ALICE],
        // Marked \Junk by the server under a name no client uses for Junk: only SPECIAL-USE tells.
        dovecot: { version, specialUse: { Drafts: '\\Drafts', Sent: '\\Sent', Quarantine: '\\Junk' } },
        // Each message here stands alone: the phishing ones (one sender, one link host) would form a
        // campaign, whose clean-up has its own tests (campaigns.test.ts).
        mailsight: { dryRun: false, campaigns: { enabled: false } },
      });
    });
    afterAll(async () => stack?.close());

    const chatsAbout = (subject: string) => stack.ollama!.state.chats.filter((c) => c.messages.some((m: any) => m.content.includes(`Subject: ${subject}\n`))).length;
    const jobsIn = (folder: string) =>
      stack.db.orm.select().from(processingQueue).where(and(eq(processingQueue.mailbox, ALICE), eq(processingQueue.folder, folder))).orderBy(asc(processingQueue.uid));
    const rowsFor = (messageId: string) => stack.db.orm.select().from(emailAnalysis).where(and(eq(emailAnalysis.mailbox, ALICE), eq(emailAnalysis.messageId, messageId)));
    const settled = () => waitFor(() => stack.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, ALICE)), (r) => r.every((j) => FINAL.includes(j.state)), 20_000);
    /** Pushes answered so far, by outcome (what Dovecot's events turned into). */
    const pushes = async () => {
      const text = await (await fetch(`${stack.ms.baseUrl}/metrics`)).text();
      return Object.fromEntries([...text.matchAll(/^mailsight_pushes_total\{outcome="([a-z_]+)"\} (\d+)/gm)].map((m) => [m[1], Number(m[2])]));
    };

    it('a draft saved three times by APPEND to Drafts: no job, no row, no LLM call', async () => {
      const before = await pushes();
      const client = await imapSession(stack.dc, ALICE);
      try {
        for (let i = 1; i <= 3; i++) await client.append('Drafts', message('draft-1', 'My draft', `version ${i}`), ['\\Draft']);
      } finally {
        await client.logout();
      }
      // Each save was pushed, and each was answered "ignored" (Drafts is excluded).
      await waitFor(pushes, (p) => (p.ignored ?? 0) - (before.ignored ?? 0) >= 3);
      expect(await jobsIn('Drafts')).toEqual([]);
      expect(await rowsFor('<draft-1@example.net>')).toEqual([]);
      expect(chatsAbout('My draft')).toBe(0);
    });

    it("mailsight's own move to Junk (DRY_RUN=false): one LLM call, the analysis kept with the move recorded", async () => {
      await deliver(stack.dc.lmtpPort, PHISH('own-1'), [ALICE]);
      const [inboxJob] = await waitFor(() => jobsIn('INBOX'), (r) => r.length === 1 && FINAL.includes(r[0]!.state));
      expect(inboxJob!.state).toBe('done');
      // The source's expunge has come and gone: the row is still there and says where the message went.
      const rows = await waitFor(() => rowsFor('<own-1@example.net>'), (r) => r.length === 1 && r[0]!.movedToUid !== null);
      expect(rows[0]).toMatchObject({ folder: 'INBOX', uid: inboxJob!.uid, verdict: 'phishing', movedToFolder: 'Junk' });
      const junk = await imapSession(stack.dc, ALICE);
      try {
        await junk.mailboxOpen('Junk', { readOnly: true });
        const uids = await junk.search({ header: { 'message-id': '<own-1@example.net>' } }, { uid: true });
        expect(uids).toEqual([rows[0]!.movedToUid]);
      } finally {
        await junk.logout();
      }
      await settled();
      expect(await jobsIn('Junk')).toEqual([]);
      expect(chatsAbout('Account suspended own-1')).toBe(1);
    });

    it('with Junk analysed too, its own move is still not news: the push names the move, no second call', async () => {
      await stack.restart({ folders: { include: [], exclude: ['\\Drafts', '\\Sent', '\\Trash'] } });
      const before = await pushes();
      await deliver(stack.dc.lmtpPort, PHISH('own-2'), [ALICE]);
      const rows = await waitFor(() => rowsFor('<own-2@example.net>'), (r) => r.length >= 1 && r[0]!.movedToUid !== null);
      await settled();
      expect(await rowsFor('<own-2@example.net>')).toHaveLength(1);
      expect(rows[0]).toMatchObject({ folder: 'INBOX', movedToFolder: 'Junk' });
      expect(await jobsIn('Junk')).toEqual([]);
      expect(chatsAbout('Account suspended own-2')).toBe(1);
      // The MessageAppend into Junk was answered "ignored" (mailsight's own move).
      expect((await pushes()).ignored! - (before.ignored ?? 0)).toBeGreaterThanOrEqual(1);
      await stack.restart({ folders: undefined });
    });

    it("a user's move to another folder: the analysis follows it there, no second LLM call", async () => {
      await deliver(stack.dc.lmtpPort, message('move-1', 'Quarterly plan', 'Here is the plan for the next quarter.'), [ALICE]);
      const [row] = await waitFor(() => rowsFor('<move-1@example.net>'), (r) => r.length === 1);
      expect(row).toMatchObject({ folder: 'INBOX', verdict: 'legit' });
      const client = await imapSession(stack.dc, ALICE);
      let newUid: number | undefined;
      try {
        await client.mailboxCreate('Projects').catch(() => {});
        await client.mailboxOpen('INBOX');
        const moved = await client.messageMove(String(row!.uid), 'Projects', { uid: true });
        newUid = moved && moved.uidMap ? moved.uidMap.get(row!.uid) : undefined;
      } finally {
        await client.logout();
      }
      // The INBOX row goes with the expunge; the one in Projects carries the same analysis.
      const after = await waitFor(() => rowsFor('<move-1@example.net>'), (r) => r.length === 1 && r[0]!.folder === 'Projects');
      expect(after[0]).toMatchObject({ folder: 'Projects', uid: newUid, verdict: row!.verdict, summary: row!.summary, category: row!.category, cacheHit: true });
      await settled();
      // No job to run there: only the finished row that keeps the sweep from taking it for new mail.
      expect(await jobsIn('Projects')).toEqual([expect.objectContaining({ state: 'done', source: 'push', event: 'MessageAppend' })]);
      expect(chatsAbout('Quarterly plan')).toBe(1);
    });

    it('an imported message (IMAP APPEND into INBOX, as imapsync does) is analysed', async () => {
      const client = await imapSession(stack.dc, ALICE);
      try {
        await client.append('INBOX', message('import-1', 'Imported invoice', 'Invoice 2291 for October is attached.'), ['\\Seen']);
      } finally {
        await client.logout();
      }
      const [row] = await waitFor(() => rowsFor('<import-1@example.net>'), (r) => r.length === 1);
      expect(row).toMatchObject({ folder: 'INBOX', status: 'analyzed' });
      expect(chatsAbout('Imported invoice')).toBe(1);
    });

    it('a folder the server marks \\Junk under another name is recognised by SPECIAL-USE: no row, no LLM call', async () => {
      // +detail delivery files it into "Quarantine" (MessageNew there): queued by name, skipped by its flag.
      await deliver(stack.dc.lmtpPort, message('quar-1', 'Quarantined offer', 'Cheap watches.'), ['alice+Quarantine@example.test']);
      const [job] = await waitFor(() => jobsIn('Quarantine'), (r) => r.length === 1 && FINAL.includes(r[0]!.state));
      expect(job).toMatchObject({ state: 'skipped', lastError: expect.stringMatching(/excluded.*\\Junk/) });
      expect(await rowsFor('<quar-1@example.net>')).toEqual([]);
      expect(chatsAbout('Quarantined offer')).toBe(0);
    });
  });
}
