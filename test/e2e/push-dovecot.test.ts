import { asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { processingQueue } from '../../src/db/schema.js';
import { loadCorpus } from '../support/corpus.js';
import { DOVECOT_VERSIONS, dovecotAvailable, imapSession, type Dovecot, type DovecotVersion } from '../support/dovecot.js';
import { LmtpClient } from '../support/lmtp.js';
import type { Mailsight } from '../support/mailsight.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';
import { describeWith, postgresAvailable } from '../support/services.js';

const pg = await postgresAvailable();

/** What IMAP itself says: UIDVALIDITY and the UID of each message, by Message-ID. */
async function imapView(dc: Dovecot, user: string, folder: string) {
  const client = await imapSession(dc, user);
  try {
    const mb = await client.mailboxOpen(folder, { readOnly: true });
    const byMessageId = new Map<string, number>();
    if (mb.exists > 0) {
      for await (const m of client.fetch('1:*', { uid: true, envelope: true })) {
        byMessageId.set(m.envelope?.messageId ?? `uid-${m.uid}`, m.uid);
      }
    }
    return { uidValidity: Number(mb.uidValidity), byMessageId };
  } finally {
    await client.logout();
  }
}

const rowsOf = (ms: Mailsight, mailbox: string) =>
  ms.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, mailbox)).orderBy(asc(processingQueue.uid));

/** mailsight (push receiver only: no workers, so jobs stay queued) and a private Dovecot pushing to it. */
function withStack(driver: 'ox' | 'lua', version: DovecotVersion) {
  const holder = {} as { stack: Stack };
  beforeAll(async () => {
    holder.stack = await startStack({ driver, analyse: false, dovecot: { version } });
  });
  afterAll(async () => {
    await holder.stack?.close();
  });
  return {
    get ms() {
      return holder.stack.ms;
    },
    get dc() {
      return holder.stack.dc;
    },
  };
}

for (const version of DOVECOT_VERSIONS) {
  describeWith(`Dovecot ${version} and PostgreSQL`, dovecotAvailable(version) && pg)(`OX driver, Dovecot ${version}: LMTP delivery reaches the queue`, () => {
    const stack = withStack('ox', version);

    it('queues corpus messages with the UID and UIDVALIDITY that IMAP shows', async () => {
      const messages = loadCorpus(12);
      const lmtp = await LmtpClient.connect(stack.dc.lmtpPort);
      for (const m of messages) await lmtp.deliver(m.raw, ['alice@example.test']);
      lmtp.close();

      const rows = await waitFor(() => rowsOf(stack.ms, 'alice@example.test'), (r) => r.length >= messages.length);
      expect(rows).toHaveLength(messages.length);
      const imap = await imapView(stack.dc, 'alice@example.test', 'INBOX');
      expect(imap.byMessageId.size).toBe(messages.length);
      expect(rows.map((r) => r.uid)).toEqual([...imap.byMessageId.values()].sort((a, b) => a - b));
      for (const r of rows) {
        expect(r).toMatchObject({ folder: 'INBOX', uidvalidity: imap.uidValidity, state: 'queued', source: 'push', event: 'messageNew' });
      }
    });

    it('one delivery to two recipients queues one job per mailbox', async () => {
      const [m] = loadCorpus(1, ['spam-2']);
      const lmtp = await LmtpClient.connect(stack.dc.lmtpPort);
      await lmtp.deliver(m!.raw, ['alice@example.test', 'bob@example.test']);
      lmtp.close();
      const bob = await waitFor(() => rowsOf(stack.ms, 'bob@example.test'), (r) => r.length >= 1);
      expect(bob).toHaveLength(1);
      const imap = await imapView(stack.dc, 'bob@example.test', 'INBOX');
      expect(bob[0]).toMatchObject({ uid: 1, uidvalidity: imap.uidValidity });
    });

    it('decodes the encoded-word Subject Dovecot passes through raw', async () => {
      const raw = [
        'From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.net>',
        'To: bob@example.test',
        'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=',
        'Message-ID: <enc-1@example.net>',
        'Date: Sat, 21 Nov 2026 10:00:00 +0000',
        '',
        'Hallo.',
        '',
      ].join('\r\n');
      const lmtp = await LmtpClient.connect(stack.dc.lmtpPort);
      await lmtp.deliver(raw, ['bob@example.test']);
      lmtp.close();
      const rows = await waitFor(() => rowsOf(stack.ms, 'bob@example.test'), (r) => r.length >= 2);
      expect(rows[1]).toMatchObject({ subject: 'Grüße', fromHeader: 'Jürgen <j@example.net>' });
    });
  });

  describeWith(`Dovecot ${version} and PostgreSQL`, dovecotAvailable(version) && pg)(`Lua driver, Dovecot ${version}: other folders and IMAP APPEND`, () => {
    const stack = withStack('lua', version);

    it('queues a delivery into another folder, with its message-id', async () => {
      const [m] = loadCorpus(1, ['easy-ham-2']);
      const lmtp = await LmtpClient.connect(stack.dc.lmtpPort);
      // +detail delivery (lmtp_save_to_detail_mailbox) files the message into folder "Lists".
      await lmtp.deliver(m!.raw, ['alice+Lists@example.test']);
      await lmtp.deliver(m!.raw, ['alice@example.test']);
      lmtp.close();
      const rows = await waitFor(() => rowsOf(stack.ms, 'alice@example.test'), (r) => r.length >= 2);
      const lists = rows.find((r) => r.folder === 'Lists');
      const inbox = rows.find((r) => r.folder === 'INBOX');
      const imapLists = await imapView(stack.dc, 'alice@example.test', 'Lists');
      expect(lists).toMatchObject({ event: 'MessageNew', uid: 1, uidvalidity: imapLists.uidValidity, source: 'push' });
      expect(lists!.messageId).toMatch(/^<.+>$/);
      expect(imapLists.byMessageId.get(lists!.messageId!)).toBe(1);
      expect(inbox).toMatchObject({ event: 'MessageNew', uid: 1 });
    });

    it('queues an IMAP APPEND, and an expunge before processing marks it gone', async () => {
      const client = await imapSession(stack.dc, 'bob@example.test');
      try {
        await client.mailboxCreate('Archive').catch(() => {});
        const raw = 'From: a@example.net\r\nTo: bob@example.test\r\nSubject: appended\r\nMessage-ID: <app-1@example.net>\r\n\r\nbody\r\n';
        const res = await client.append('Archive', raw, []);
        expect(res).toBeTruthy();
        const uid = (res as { uid: number; uidValidity: bigint }).uid;
        const rows = await waitFor(() => rowsOf(stack.ms, 'bob@example.test'), (r) => r.length >= 1);
        expect(rows[0]).toMatchObject({ folder: 'Archive', uid, event: 'MessageAppend', state: 'queued' });
        expect(rows[0]!.uidvalidity).toBe(Number((res as { uidValidity: bigint }).uidValidity));

        await client.mailboxOpen('Archive');
        await client.messageDelete(String(uid), { uid: true });
        const after = await waitFor(() => rowsOf(stack.ms, 'bob@example.test'), (r) => r[0]?.state === 'gone');
        expect(after[0]).toMatchObject({ state: 'gone', lastError: 'expunged' });
      } finally {
        await client.logout();
      }
    });
  });
}
