import { and, asc, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { emailAnalysis, processingQueue, userPreferences } from '../../src/db/schema.js';
import { loadCorpus } from '../support/corpus.js';
import { dovecotAvailable, imapSession } from '../support/dovecot.js';
import { LmtpClient, deliver } from '../support/lmtp.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const ready = dovecotAvailable() && (await postgresAvailable());
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy'].map((u) => `${u}@example.test`);

const FINAL = ['done', 'skipped', 'failed', 'dead', 'gone', 'stale'];

function queueOf(stack: Stack, mailbox: string) {
  return stack.ms.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, mailbox)).orderBy(asc(processingQueue.uid));
}
function analysesOf(stack: Stack, mailbox: string) {
  return stack.ms.db.orm.select().from(emailAnalysis).where(eq(emailAnalysis.mailbox, mailbox)).orderBy(asc(emailAnalysis.uid));
}
/** Waits until `mailbox` has `n` jobs and all of them have ended. */
function settled(stack: Stack, mailbox: string, n: number, ms = 20_000) {
  return waitFor(
    () => queueOf(stack, mailbox),
    (rows) => rows.length >= n && rows.every((r) => FINAL.includes(r.state)),
    ms,
  );
}

async function seenFlags(stack: Stack, user: string): Promise<number> {
  const client = await imapSession(stack.dc, user);
  try {
    await client.mailboxOpen('INBOX', { readOnly: true });
    const seen = await client.search({ seen: true }, { uid: true });
    return (seen || []).length;
  } finally {
    await client.logout();
  }
}

function message(id: string, to: string, subject: string, body: string, extra: string[] = []) {
  return [
    'From: Sender <sender@example.net>',
    `To: ${to}`,
    `Subject: ${subject}`,
    `Message-ID: <${id}@example.net>`,
    'Date: Sat, 21 Nov 2026 10:00:00 +0000',
    ...extra,
    '',
    body,
    '',
  ].join('\r\n');
}

describeWith('Dovecot and PostgreSQL', ready)('analysis pipeline: Dovecot -> push -> IMAP fetch -> Ollama -> rows', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ users: USERS });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('turns delivered corpus messages into analysis rows, and no message gains \\Seen', async () => {
    const corpus = loadCorpus(15);
    const lmtp = await LmtpClient.connect(stack.dc.lmtpPort);
    for (const m of corpus) await lmtp.deliver(m.raw, ['alice@example.test']);
    lmtp.close();

    const jobs = await settled(stack, 'alice@example.test', corpus.length);
    expect(jobs.map((j) => j.state)).toEqual(corpus.map(() => 'done'));
    const rows = await analysesOf(stack, 'alice@example.test');
    expect(rows).toHaveLength(corpus.length);
    for (const r of rows) {
      expect(r.status).toBe('analyzed');
      expect(r.summary).toBeTruthy();
      expect(r.category).toBeTruthy();
      expect(['legit', 'spam', 'scam', 'phishing', 'unknown']).toContain(r.verdict);
      expect(r.priority).toBeGreaterThanOrEqual(1);
      expect(r.model).toBe('llama3.2:3b');
      expect(r.promptVersion).toMatch(/^\d{4}-\d{2}-\d{2}\.\d+$/);
      expect(r.promptTokens).toBeGreaterThan(0);
      expect(r.completionTokens).toBeGreaterThan(0);
      expect(r.fetchMs).toBeGreaterThanOrEqual(0);
      expect(r.sizeBytes).toBeGreaterThan(0);
    }
    // The corpus' spam is recognisable to the stand-in's rules: at least some spam verdicts arrive intact.
    expect(rows.some((r) => r.verdict === 'spam' || r.verdict === 'phishing')).toBe(true);
    expect(await seenFlags(stack, 'alice@example.test')).toBe(0);
    // Each chat asked with the schema, temperature 0 and a sized context.
    const chat = stack.ollama!.state.chats.at(-1);
    expect(chat.format).toMatchObject({ type: 'object', required: expect.arrayContaining(['summary', 'verdict']) });
    expect(chat.options).toMatchObject({ temperature: 0 });
    expect(chat.options.num_ctx).toBeGreaterThanOrEqual(2048);
    // One IMAP login served the whole mailbox.
    expect(stack.ms.imap.stats.logins).toBe(1);
  });
});
