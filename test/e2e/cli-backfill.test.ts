import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { emailAnalysis, processingQueue } from '../../src/db/schema.js';
import { dovecotAvailable, imapSession } from '../support/dovecot.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const ready = dovecotAvailable() && (await postgresAvailable());
const BIN = new URL('../../bin/mailsight.js', import.meta.url).pathname;
const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const DAY_MS = 86_400_000;

const message = (i: number, to: string) =>
  [`From: Old Friend <friend${i % 7}@example.net>`, `To: ${to}`, `Subject: Archive note ${i}`, `Message-ID: <old-${to}-${i}@example.net>`, '', `Old message number ${i}.`, ''].join('\r\n');

describeWith('Dovecot and PostgreSQL', ready)('mailsight backfill', () => {
  let stack: Stack;
  let env: Record<string, string>;
  beforeAll(async () => {
    stack = await startStack({ users: [ALICE, BOB] });
    env = stack.env();
    // Existing mail, put there with APPEND: Dovecot sends no push for it. Alice's 40 are old, Bob's 10 recent.
    for (const [user, n, age] of [[ALICE, 40, 60 * DAY_MS], [BOB, 10, 0]] as const) {
      const client = await imapSession(stack.dc, user);
      try {
        for (let i = 0; i < n; i++) await client.append('INBOX', message(i, user), [], new Date(Date.now() - age));
      } finally {
        await client.logout();
      }
    }
  });
  afterAll(async () => stack?.close());

  const queued = (mailbox: string) => stack.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, mailbox));

  it('--since leaves older mail alone; the service analyses what was queued', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'backfill', '--mailbox', ALICE, '--mailbox', BOB, '--since', '7d'], { env });
    expect(stdout).toMatch(new RegExp(`${ALICE}: 0/0 looked at, 0 queued`));
    expect(stdout).toMatch(new RegExp(`${BOB}: 10/10 looked at, 10 queued`));
    expect(await queued(ALICE)).toHaveLength(0);
    const rows = await queued(BOB);
    expect(rows.every((r) => r.source === 'backfill' && r.priority === 2)).toBe(true);
    // The running service was woken (NOTIFY) and analyses them.
    await waitFor(() => stack.db.orm.select().from(emailAnalysis).where(eq(emailAnalysis.mailbox, BOB)), (r) => r.length === 10, 20_000);
  });

  it('interrupted with Ctrl-C and run again: every message queued exactly once', async () => {
    // One message per batch, Ctrl-C after the first progress line: it stops between batches.
    const child = spawn(process.execPath, [BIN, 'backfill', '--mailbox', ALICE, '--batch-size', '1'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let sent = false;
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (d) => {
        out += d;
        // Once: a second Ctrl-C ends the process at once, as in any CLI.
        if (out.includes('looked at') && !sent) {
          sent = true;
          child.kill('SIGINT');
        }
      });
      child.on('close', (c) => resolve(c));
    });
    const first = (await queued(ALICE)).length;
    if (code === 3) {
      expect(out).toContain('interrupted: run the same command again');
      expect(first).toBeLessThan(40);
    } else {
      expect(first).toBe(40); // finished before the signal arrived
    }
    const again = await promisify(execFile)(process.execPath, [BIN, 'backfill', '--mailbox', ALICE, '--batch-size', '5'], { env });
    expect(again.stdout).toMatch(new RegExp(`${ALICE}: 40/40 looked at, ${40 - first} queued`));
    const rows = await queued(ALICE);
    expect(rows).toHaveLength(40);
    expect(new Set(rows.map((r) => r.uid)).size).toBe(40);
    const third = await promisify(execFile)(process.execPath, [BIN, 'backfill', '--mailbox', ALICE], { env });
    expect(third.stdout).toMatch(/40\/40 looked at, 0 queued/);
  });

  it('--mailboxes-file, a missing folder and bad arguments', async () => {
    const run = (args: string[], input?: string) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const c = spawn(process.execPath, [BIN, 'backfill', ...args], { env });
        let stdout = '';
        let stderr = '';
        c.stdout.on('data', (d) => (stdout += d));
        c.stderr.on('data', (d) => (stderr += d));
        c.stdin.end(input);
        c.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    const fromFile = await run(['--mailboxes-file', '-'], `# mailboxes\n${BOB}\n\n`);
    expect(fromFile).toMatchObject({ code: 0, stdout: expect.stringMatching(/10\/10 looked at, 0 queued/) });
    expect(await run(['--mailbox', BOB, '--folder', 'Nope'])).toMatchObject({ code: 1, stderr: expect.stringContaining('has no folder Nope') });
    expect(await run([])).toMatchObject({ code: 2, stderr: expect.stringContaining('--mailbox') });
    expect(await run(['--mailbox', BOB, '--since', 'yesterday'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--since') });
  });
});
