import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { config as configTable, processingQueue } from '../../src/db/schema.js';
import { dovecotAvailable, optInEveryUser, OX_OPT_IN_KEY } from '../support/dovecot.js';
import { deliver } from '../support/lmtp.js';
import { waitFor } from '../support/wait.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';

const ready = dovecotAvailable() && (await postgresAvailable());
const BIN = new URL('../../bin/mailsight.js', import.meta.url).pathname;

function runCheck(env: Record<string, string>, args: string[]) {
  return new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const c = spawn(process.execPath, [BIN, 'check', ...args], { env });
    let stdout = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.on('close', (code) => resolve({ code, stdout }));
  });
}

describeWith('Dovecot and PostgreSQL', ready)('mailsight check', () => {
  let stack: Stack;
  let env: Record<string, string>;
  beforeAll(async () => {
    stack = await startStack({ users: ['alice@example.test'] });
    env = stack.env();
  });
  afterAll(async () => stack?.close());

  const check = (extra: Record<string, string> = {}, args: string[] = []) =>
    runCheck({ ...env, ...extra }, ['--mailbox', 'alice@example.test', '--url', stack.ms.baseUrl, ...args]);

  it('a working deployment: every line ticked, exit 0', async () => {
    const r = await check();
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^✓ configuration: valid/),
      '✓ database: PostgreSQL answers',
      '✓ push coverage: no mail queued in the last 24 h',
      expect.stringMatching(/^✓ IMAP: master login as alice@example\.test\*\S+ on 127\.0\.0\.1:\d+ works, without TLS$/),
      expect.stringMatching(/^✓ Ollama: http:\/\/127\.0\.0\.1:\d+ has llama3\.2:3b \(Ollama 0\.33\.0, num_ctx 4096, prompts sized with the model's tokenizer\)$/),
      expect.stringMatching(/^✓ push endpoint: http:\/\/127\.0\.0\.1:\d+\/push\/dovecot accepts the push credentials$/),
    ]);
  });

  it.each([
    ['the database', { DATABASE_URL: 'postgres://postgres@127.0.0.1:9/none' }, /✗ database: .*\n {4}fix: check DATABASE_URL/],
    ['the IMAP master login', { IMAP_MASTER_PASSWORD: 'wrong' }, /✗ IMAP: .*\n {4}fix: Dovecot refused alice@example\.test\*\S+: check IMAP_MASTER_USER and IMAP_MASTER_PASSWORD/],
    ['the IMAP server', { IMAP_PORT: '9' }, /✗ IMAP: .*\n {4}fix: check IMAP_HOST\/IMAP_PORT/],
    ['the model', { OLLAMA_MODEL: 'qwen2.5:7b' }, /✗ Ollama: .*not pulled.*\n {4}fix: run: ollama pull qwen2\.5:7b/],
    ['Ollama', { OLLAMA_HOST: 'http://127.0.0.1:9' }, /✗ Ollama: .*\n {4}fix: check OLLAMA_HOST/],
    ['the push credentials', { PUSH_PASSWORD: 'wrong-too' }, /✗ push endpoint: 401.*\n {4}fix: PUSH_USERNAME\/PUSH_PASSWORD here differ/],
  ])('broken %s: named with its fix, everything else ticked, exit 1', async (_what, broken, line) => {
    const r = await check(broken);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(line);
    expect(r.stdout.match(/^✗/gm)).toHaveLength(1);
  });

  it('an Ollama too old for a JSON schema is named with the version needed', async () => {
    stack.ollama!.set({ version: '0.4.7' });
    try {
      const r = await check();
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/✗ Ollama: Ollama 0\.4\.7 at http:\/\/127\.0\.0\.1:\d+ is too old.*\n {4}fix: upgrade Ollama on \S+ to 0\.5\.0 or later/);
    } finally {
      stack.ollama!.set({ version: '0.33.0' });
    }
  });

  it('a bad configuration lists every problem', async () => {
    const badConfig = await check({ IMAP_PORT: 'seventy', LLM_BATCH_SIZE: '0' });
    expect(badConfig.code).toBe(1);
    expect(badConfig.stdout).toMatch(/✗ configuration: 2 problem\(s\)\n {4}IMAP_PORT: .*\n {4}LLM_BATCH_SIZE: /);
  });
});

describeWith('Dovecot and PostgreSQL', ready)('mailsight check: a mailbox whose pushes never arrive shows up', () => {
  const ALICE = 'alice@example.test';
  const BOB = 'bob@example.test';
  const ADMIN = 'coverage-admin-key-0123456789';
  let stack: Stack;
  beforeAll(async () => {
    // The OX driver, with the opt-in set for alice only: bob's deliveries push nothing.
    stack = await startStack({ users: [ALICE, BOB], dovecot: { optIn: false }, mailsight: { apiKey: ADMIN, processing: { intervalSec: 1 } } });
    await stack.dc.doveadm(['mailbox', 'metadata', 'set', '-u', ALICE, '-s', '', OX_OPT_IN_KEY, `user=${ALICE}`]);
  });
  afterAll(async () => stack?.close());

  const coverageLine = async () => (await runCheck(stack.env(), ['--url', stack.ms.baseUrl])).stdout.split('\n').filter((l) => /push coverage|^ {4}fix: Dovecot does not push/.test(l));

  it('names the mailbox whose mail only the sweep found, with the fix; opted in, it is covered', async () => {
    // bob is known to mailsight (his preferences), so the sweep looks at his INBOX.
    const res = await fetch(`${stack.ms.baseUrl}/api/v1/edit/llm/preferences`, { method: 'POST', headers: { 'x-api-key': ADMIN, 'content-type': 'application/json' }, body: JSON.stringify({ username: BOB, auto_analysis: true }) });
    expect(res.status).toBe(200);
    await waitFor(() => stack.db.orm.select().from(configTable).where(eq(configTable.key, `reconcile.cursor:${BOB}`)), (r) => r.length === 1);
    const mail = (n: number) => `From: a@example.net\r\nSubject: coverage ${n}\r\nMessage-ID: <cov-${n}@example.net>\r\n\r\nHello.\r\n`;
    await deliver(stack.dc.lmtpPort, mail(1), [ALICE, BOB]);
    const jobs = await waitFor(() => stack.db.orm.select().from(processingQueue), (r) => r.length === 2);
    expect(Object.fromEntries(jobs.map((j) => [j.mailbox, j.source]))).toEqual({ [ALICE]: 'push', [BOB]: 'reconcile' });
    expect(await coverageLine()).toEqual([
      `✗ push coverage: 1 of 2 mailboxes with mail in the last 24 h were pushed for; 1 had mail that only the sweep found, none pushed: ${BOB}`,
      expect.stringMatching(/^ {4}fix: Dovecot does not push for these users\. With the OX driver they lack the METADATA opt-in/),
    ]);

    // dovecot/README.md's way to opt every user in; bob's next delivery is pushed.
    expect(await optInEveryUser(stack.dc.doveadm)).toEqual([ALICE, BOB]);
    await deliver(stack.dc.lmtpPort, mail(2), [BOB]);
    await waitFor(() => stack.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, BOB)), (r) => r.some((j) => j.source === 'push'));
    expect(await coverageLine()).toEqual(['✓ push coverage: 2 of 2 mailboxes with mail in the last 24 h were pushed for']);
  });
});
