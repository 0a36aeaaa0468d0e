import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { dovecotAvailable } from '../support/dovecot.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';

const ready = dovecotAvailable() && (await postgresAvailable());
const BIN = new URL('../../bin/mailsight.js', import.meta.url).pathname;

describeWith('Dovecot and PostgreSQL', ready)('mailsight check', () => {
  let stack: Stack;
  let env: Record<string, string>;
  beforeAll(async () => {
    stack = await startStack({ users: ['alice@example.test'] });
    env = stack.env();
  });
  afterAll(async () => stack?.close());

  const check = (extra: Record<string, string> = {}, args: string[] = []) =>
    new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const c = spawn(process.execPath, [BIN, 'check', '--mailbox', 'alice@example.test', '--url', stack.ms.baseUrl, ...args], { env: { ...env, ...extra } });
      let stdout = '';
      c.stdout.on('data', (d) => (stdout += d));
      c.on('close', (code) => resolve({ code, stdout }));
    });

  it('a working deployment: every line ticked, exit 0', async () => {
    const r = await check();
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^✓ configuration: valid/),
      '✓ database: PostgreSQL answers',
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
