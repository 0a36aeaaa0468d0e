import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApiKey } from '../../src/queries/keys.js';
import { openPostgres } from '../../src/db/client.js';
import { dovecotAvailable, freePort, startDovecot, type Dovecot } from '../support/dovecot.js';
import { deliver } from '../support/lmtp.js';
import { startMailsight } from '../support/mailsight.js';
import { startOllamaStandIn, type OllamaStandIn } from '../support/ollama-stand-in.js';
import { createTestDatabase, describeWith, postgresAvailable } from '../support/services.js';
import { waitFor } from '../support/wait.js';

const ready = dovecotAvailable() && (await postgresAvailable());
const ROOT = new URL('../..', import.meta.url).pathname;

// Everything secret or private that passes through the process during the run.
const PUSH_PASSWORD = `push-${randomBytes(8).toString('hex')}`;
const API_KEY = `admin-${randomBytes(12).toString('hex')}`;
const WRONG_KEY = `wrong-${randomBytes(12).toString('hex')}`;
const DB_PASSWORD = `dbpw-${randomBytes(8).toString('hex')}`;
const ENCRYPTION_KEY = randomBytes(32).toString('hex');
const BODY_PHRASES = ['Zanzibar quokka ledger 7781', 'the vault code is tangerine-42', 'Mrs Oyelaran-Fitzgerald'];
const SUBJECTS = ['Quarterly vault audit', 'Lunch with the auditors', 'Refund request 99812'];
const ALICE = 'alice@example.test';
const OPTED_OUT = 'olga@example.test';

function message(i: number, to: string) {
  return [
    'From: Trusted Sender <sender@example.net>',
    `To: ${to}`,
    `Subject: ${SUBJECTS[i]}`,
    `Message-ID: <leak-${i}@example.net>`,
    'Date: Sat, 21 Nov 2026 10:00:00 +0000',
    '',
    `Hello, ${BODY_PHRASES[i]}.`,
    '',
  ].join('\r\n');
}

describeWith('Dovecot and PostgreSQL', ready)('nothing leaves, nothing secret is logged (a full run at LOG_LEVEL=debug)', () => {
  let dc: Dovecot;
  let ollama: OllamaStandIn;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let child: ChildProcess;
  let dir: string;
  let socketLog: string;
  let logs = '';
  let port: number;
  let dbUrl: string;

  const api = (path: string, key = API_KEY, init: RequestInit = {}) =>
    fetch(`http://127.0.0.1:${port}/api/v1${path}`, { ...init, headers: { 'x-api-key': key, 'content-type': 'application/json', ...(init.headers ?? {}) } });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mailsight-leaks-'));
    socketLog = join(dir, 'sockets.log');
    ollama = await startOllamaStandIn();
    database = await createTestDatabase();
    // Trust auth ignores the password; it is there to prove it is never logged.
    const u = new URL(database.url);
    u.password = DB_PASSWORD;
    dbUrl = u.toString();
    port = await freePort();
    dc = await startDovecot({
      users: [ALICE, OPTED_OUT],
      push: { driver: 'ox', url: `http://127.0.0.1:${port}/push/dovecot`, username: 'dovecot', password: PUSH_PASSWORD },
    });
    child = spawn(process.execPath, ['--import', join(ROOT, 'test/support/record-sockets.mjs'), 'dist/main.js'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        MAILSIGHT_SOCKET_LOG: socketLog,
        DATABASE_URL: dbUrl,
        PORT: String(port),
        HOST: '127.0.0.1',
        DATA_DIR: join(dir, 'data'),
        PUSH_PASSWORD,
        API_KEY,
        ENCRYPTION_KEY,
        IMAP_HOST: '127.0.0.1',
        IMAP_PORT: String(dc.imapPort),
        IMAP_MASTER_USER: dc.masterUser,
        IMAP_MASTER_PASSWORD: dc.masterPassword,
        OLLAMA_HOST: ollama.url,
        OLLAMA_TIMEOUT_MS: '20000',
        LLM_RETRY_BASE_MS: '100',
        LOG_LEVEL: 'debug',
      },
    });
    child.stdout!.on('data', (d) => (logs += d));
    child.stderr!.on('data', (d) => (logs += d));
    await waitFor(
      () => fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status, () => 0),
      (s) => s === 200,
      30_000,
    );
  });

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await dc?.stop();
    await ollama?.close();
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs the whole pipeline, the API and refused attempts, then stops cleanly', async () => {
    // A mailbox key, made as the CLI makes it, used once; a wrong key and wrong push credentials refused.
    const db = openPostgres(database.url, { max: 1 });
    const mailboxKey = (await createApiKey(db, ALICE)).key;
    await db.close();
    expect((await api('/get/llm/health', WRONG_KEY)).status).toBe(401);
    const badPush = await fetch(`http://127.0.0.1:${port}/push/dovecot`, {
      method: 'PUT',
      headers: { authorization: `Basic ${Buffer.from('dovecot:not-the-password').toString('base64')}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(badPush.status).toBe(401);

    // Olga opts out before her mail arrives: nothing of it is stored, no model call is made.
    const out = await api('/edit/llm/preferences', API_KEY, { method: 'POST', body: JSON.stringify({ username: OPTED_OUT, opt_out: true }) });
    expect(((await out.json()) as any).opt_out).toBe(true);

    for (let i = 0; i < 3; i++) await deliver(dc.lmtpPort, message(i, ALICE), [ALICE]);
    await deliver(dc.lmtpPort, message(0, OPTED_OUT), [OPTED_OUT]);
    const page = await waitFor(
      () => api(`/get/llm/analysis?mailbox=${ALICE}`, mailboxKey).then((r) => r.json() as Promise<any>),
      (b) => b.items?.length === 3 && b.items.every((i: any) => i.status === 'analyzed'),
      30_000,
    );
    // Sealed at rest, readable over the API with the key.
    expect(page.items.map((i: any) => i.subject).sort()).toEqual([...SUBJECTS].sort());
    const stats = await waitFor(
      () => api(`/get/llm/stats?mailbox=${OPTED_OUT}`).then((r) => r.json() as Promise<any>),
      (s) => s.queue.by_state.skipped === 1,
    );
    expect(stats.analyses.by_status).toEqual({});
    expect(ollama.state.chats).toHaveLength(3);

    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(0);
  });

  it('opened connections only to the configured database, IMAP server and Ollama host', () => {
    expect(existsSync(socketLog)).toBe(true);
    const lines = readFileSync(socketLog, 'utf8').trim().split('\n');
    const allowed = new Set([`connect 127.0.0.1:${new URL(database.url).port}`, `connect 127.0.0.1:${dc.imapPort}`, `connect ${new URL(ollama.url).host}`]);
    // The built code (what `npm start` runs) opens no other socket, not even a local one.
    const unexpected = lines.filter((l) => !allowed.has(l));
    expect(unexpected).toEqual([]);
    // The recorder saw all three, so an empty list above means something.
    for (const a of allowed) expect(lines).toContain(a);
  });

  it('fetched nothing it was not asked to: no model pull', () => {
    expect(ollama.state.pulls).toEqual([]);
  });

  it('logged no password, key or message text', () => {
    expect(logs.length).toBeGreaterThan(1000); // debug logging was on
    const secrets = {
      PUSH_PASSWORD,
      API_KEY,
      WRONG_KEY,
      DB_PASSWORD,
      ENCRYPTION_KEY,
      IMAP_MASTER_PASSWORD: dc.masterPassword,
      'base64 push credentials': Buffer.from(`dovecot:${PUSH_PASSWORD}`).toString('base64'),
      ...Object.fromEntries(BODY_PHRASES.map((p, i) => [`body ${i}`, p])),
      ...Object.fromEntries(SUBJECTS.map((s, i) => [`subject ${i}`, s])),
    };
    for (const [what, value] of Object.entries(secrets)) expect(logs.includes(value), `${what} in the logs`).toBe(false);
    expect(logs).not.toMatch(/msk_[0-9a-f]{12}_/);
  });
});

it('OLLAMA_AUTO_PULL=true pulls a missing model in the background at start-up; the default never does', async () => {
  const standIn = await startOllamaStandIn({ models: [] });
  try {
    const off = await startMailsight({ llm: { host: standIn.url } });
    await off.close();
    expect(standIn.state.pulls).toEqual([]);
    standIn.set({ pullMs: 2_000 });
    const started = performance.now();
    const on = await startMailsight({ llm: { host: standIn.url, autoPull: true } });
    // The service is up before the 2 s pull ends; the pull goes on.
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(standIn.state.models).not.toContain('llama3.2:3b');
    await on.pulling;
    await on.close();
    expect(standIn.state.pulls.map((p) => [p.model ?? p.name, p.stream])).toEqual([['llama3.2:3b', true]]);
    expect(standIn.state.models).toContain('llama3.2:3b');
  } finally {
    await standIn.close();
  }
});
