import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { auditLog, emailAnalysis, processingQueue } from '../../src/db/schema.js';
import { DOVECOT_VERSIONS, dovecotAvailable, imapSession } from '../support/dovecot.js';
import { deliver } from '../support/lmtp.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const pg = await postgresAvailable();
const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const FINAL = ['done', 'skipped', 'failed', 'dead', 'gone', 'stale'];

const RULES = [{ name: 'allow-partner', match: { from: ['*@partner.example'] }, action: 'skip', verdict: 'legit' }];

function message(id: string, subject: string, body: string, extra: string[] = [], from = 'Sender <sender@example.net>') {
  return [`From: ${from}`, `To: someone@example.test`, `Subject: ${subject}`, `Message-ID: <${id}@example.net>`, 'Date: Sat, 21 Nov 2026 10:00:00 +0000', ...extra, '', body, ''].join(
    '\r\n',
  );
}

const PHISH = (id: string) =>
  message(id, 'Account suspended', `Dear customer (ref ${id}), please verify your account within 24 hours or it will be closed: http://192.0.2.10/login`);

/** Everything IMAP shows of a mailbox: folders, and each message's flags and bytes. */
async function snapshot(stack: Stack, user: string) {
  const client = await imapSession(stack.dc, user);
  try {
    const folders = (await client.list()).map((f) => f.path).sort();
    const messages: Record<string, { uid: number; flags: string[]; source: string }[]> = {};
    for (const folder of folders) {
      const lock = await client.getMailboxLock(folder, { readOnly: true });
      try {
        messages[folder] = [];
        if ((client.mailbox as { exists: number }).exists === 0) continue;
        for await (const m of client.fetch('1:*', { uid: true, flags: true, source: true })) {
          // \Recent belongs to the session that looks, not to the message.
          const flags = [...(m.flags ?? [])].filter((f) => f !== '\\Recent').sort();
          messages[folder]!.push({ uid: m.uid, flags, source: m.source!.toString('latin1') });
        }
      } finally {
        lock.release();
      }
    }
    return { folders, messages };
  } finally {
    await client.logout();
  }
}

for (const version of DOVECOT_VERSIONS) {
  describeWith(`Dovecot ${version} and PostgreSQL`, dovecotAvailable(version) && pg)(`mailbox actions and DRY_RUN, with a real Dovecot ${version}`, () => {
    let stack: Stack;
    let auditFile: string;
    beforeAll(async () => {
      auditFile = join(mkdtempSync(join(tmpdir(), 'mailsight-audit-')), 'audit.jsonl');
      // Each message here stands alone: the phishing ones would form a campaign (campaigns.test.ts has those).
      stack = await startStack({ users: [ALICE, BOB], dovecot: { version }, mailsight: { dryRun: false, rules: RULES, auditFile, apiKey: 'actions-admin-key-0123456789', campaigns: { enabled: false } } });
    });
    afterAll(async () => stack?.close());

    const jobs = (mailbox: string) => stack.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, mailbox)).orderBy(asc(processingQueue.uid));
    const settled = (mailbox: string, n: number) => waitFor(() => jobs(mailbox), (r) => r.length >= n && r.every((j) => FINAL.includes(j.state)), 20_000);
    const analysis = async (mailbox: string, uid: number) =>
      (await stack.db.orm.select().from(emailAnalysis).where(eq(emailAnalysis.mailbox, mailbox))).find((r) => r.uid === uid)!;
    const trail = async (mailbox: string, uid: number) =>
      (await stack.db.orm.select().from(auditLog).where(eq(auditLog.mailbox, mailbox)).orderBy(asc(auditLog.id))).filter((a) => a.uid === uid);
    const chatsAbout = (subject: string) => stack.ollama!.state.chats.filter((c) => c.messages.some((m: any) => m.content.includes(`Subject: ${subject}\n`))).length;

    it('DRY_RUN=false: phishing goes to Junk, read, with $Phishing and $Junk; the row and the audit trail say so', async () => {
      await deliver(stack.dc.lmtpPort, PHISH('act-1'), [ALICE]);
      const [job] = await settled(ALICE, 1);
      expect(job!.state).toBe('done');
      const row = await analysis(ALICE, job!.uid);
      expect(row).toMatchObject({ verdict: 'phishing', isPhishing: true, verdictSource: 'model', movedToFolder: 'Junk' });
      expect(row.keywords.sort()).toEqual(['$Junk', '$Phishing']);
      expect(row.signalReasons.join(' ')).toMatch(/bare IP address/);
      const apiKey = stack.ms.config.apiKey!;
      const viaApi = (await (await fetch(`${stack.ms.baseUrl}/api/v1/get/llm/analysis?mailbox=${ALICE}&email_id=${job!.uid}`, { headers: { 'x-api-key': apiKey } })).json()) as any;
      expect(viaApi.analysis).toMatchObject({ moved_to_folder: 'Junk', moved_to_uid: row.movedToUid, verdict_source: 'model', keywords: ['$Phishing', '$Junk'] });
      expect(viaApi.analysis.signal_reasons.join(' ')).toMatch(/bare IP address/);

      const seen = await snapshot(stack, ALICE);
      expect(seen.folders).toContain('Junk');
      expect(seen.messages.INBOX).toEqual([]);
      expect(seen.messages.Junk).toHaveLength(1);
      expect(seen.messages.Junk![0]).toMatchObject({ uid: row.movedToUid, flags: ['$Junk', '$Phishing', '\\Seen'] });

      const actions = (await trail(ALICE, job!.uid)).map((a) => [a.action, a.verdict]);
      expect(actions).toEqual([
        ['analyzed', 'phishing'],
        ['flagged', 'phishing'],
        ['moved', 'phishing'],
      ]);
      // AUDIT_FILE carries the same entries as JSON lines.
      const lines = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(lines.map((l) => [l.action, l.verdict, l.uid, l.mailbox])).toEqual(actions.map(([a, v]) => [a, v, job!.uid, ALICE]));
      expect(lines[2]).toMatchObject({ message_id: '<act-1@example.net>', reason: `to Junk as UID ${row.movedToUid}` });
    });

    it('legitimate mail stays in INBOX, unread, with its category keyword', async () => {
      await deliver(stack.dc.lmtpPort, message('act-2', 'Lunch on Friday', 'Shall we have lunch on Friday at noon?'), [ALICE]);
      const all = await settled(ALICE, 2);
      const row = await analysis(ALICE, all[1]!.uid);
      expect(row).toMatchObject({ verdict: 'legit', movedToFolder: null });
      const inbox = (await snapshot(stack, ALICE)).messages.INBOX!;
      expect(inbox).toHaveLength(1);
      expect(inbox[0]!.flags).not.toContain('\\Seen');
      // The stand-in calls it personal: Thunderbird's built-in Personal tag.
      expect(inbox[0]!.flags).toEqual(['$label3']);
      expect(row.keywords).toEqual(['$label3']);
    });

    it('strong signals overrule a model that says legit (DMARC failed + a credential link to a foreign site)', async () => {
      const raw = message(
        'act-3',
        'Shared document',
        '<p>A document was shared with you.</p><p><a href="https://docs-share.example/auth">Sign in to view the document</a></p>',
        ['Authentication-Results: mx.example.test; spf=fail smtp.mailfrom=bank.example; dmarc=fail header.from=bank.example', 'Content-Type: text/html; charset=utf-8'],
        'Bank <noreply@bank.example>',
      );
      await deliver(stack.dc.lmtpPort, raw, [ALICE]);
      const all = await settled(ALICE, 3);
      const row = await analysis(ALICE, all[2]!.uid);
      expect(row.reasons).toEqual(['no spam indicators']); // the model's own, kept apart
      expect(row).toMatchObject({ verdict: 'phishing', verdictSource: 'signals', movedToFolder: 'Junk' });
      expect(row.phishingScore).toBeGreaterThanOrEqual(0.8);
      expect(row.signalReasons.join(' ')).toMatch(/DMARC failed.*log in or verify/);
    });

    it('a skip rule settles a message with no LLM call, and records the rule', async () => {
      await deliver(stack.dc.lmtpPort, message('act-4', 'Partner invoice', 'Invoice attached.', [], 'Partner <billing@partner.example>'), [ALICE]);
      const all = await settled(ALICE, 4);
      const job = all[3]!;
      expect(job).toMatchObject({ state: 'skipped', lastError: 'rule allow-partner' });
      expect(await analysis(ALICE, job.uid)).toMatchObject({ status: 'skipped', rule: 'allow-partner', verdict: 'legit', verdictSource: 'rule', llmMs: null });
      expect(chatsAbout('Partner invoice')).toBe(0);
      expect((await trail(ALICE, job.uid)).map((a) => [a.action, a.rule])).toEqual([
        ['skipped', 'allow-partner'],
        ['kept', 'allow-partner'],
      ]);
    });

    it('DRY_RUN=true changes nothing in the mailbox, byte for byte and flag for flag, and records what it would have done', async () => {
      await stack.restart({ dryRun: true });
      // A slow model: the snapshot below is taken while the message is still being analysed.
      stack.ollama!.set({ delayMs: 1_000 });
      try {
        await deliver(stack.dc.lmtpPort, PHISH('dry-1'), [BOB]);
        await waitFor(() => jobs(BOB), (r) => r.length === 1);
        const before = await snapshot(stack, BOB);
        expect(before.messages.INBOX).toHaveLength(1);
        const [job] = await settled(BOB, 1);
        expect(job!.state).toBe('done');
        const after = await snapshot(stack, BOB);
        expect(after).toEqual(before);
        const row = await analysis(BOB, job!.uid);
        expect(row).toMatchObject({ verdict: 'phishing', movedToFolder: null, keywords: [] });
        expect((await trail(BOB, job!.uid)).map((a) => a.action)).toEqual(['analyzed', 'would_flag', 'would_move']);
      } finally {
        stack.ollama!.set({ delayMs: 0 });
      }
    });
  });
}
