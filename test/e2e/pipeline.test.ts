import { asc, eq, sql } from 'drizzle-orm';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { emailAnalysis, processingQueue, userPreferences } from '../../src/db/schema.js';
import { enqueue } from '../../src/queue/jobs.js';
import { loadCorpus } from '../support/corpus.js';
import { dovecotAvailable, imapSession } from '../support/dovecot.js';
import { LmtpClient, deliver } from '../support/lmtp.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';
import { testMessage } from '../support/message.js';

const pg = await postgresAvailable();
const ready = dovecotAvailable() && pg;
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'ken', 'leo', 'mia', 'nina', 'oscar', 'peggy', 'quinn', 'rupert', 'sybil'].map((u) => `${u}@example.test`);

const FINAL = ['done', 'skipped', 'failed', 'dead', 'gone', 'stale'];

function queueOf(stack: Stack, mailbox: string) {
  return stack.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, mailbox)).orderBy(asc(processingQueue.uid));
}
function analysesOf(stack: Stack, mailbox: string) {
  return stack.db.orm.select().from(emailAnalysis).where(eq(emailAnalysis.mailbox, mailbox)).orderBy(asc(emailAnalysis.uid));
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

/** mailsight as its own process (`npm start`'s command) on the stack's database and port. */
function spawnMailsight(stack: Stack, env: Record<string, string>) {
  return spawn(process.execPath, ['dist/main.js'], {
    cwd: new URL('../..', import.meta.url).pathname,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...stack.env(),
      PORT: String(stack.port),
      HOST: '127.0.0.1',
      DATA_DIR: `${stack.dc.hostDir}/mailsight-child`,
      OLLAMA_TIMEOUT_MS: '60000',
      ...env,
    },
  });
}

/** LLM calls the stand-in received for the message with this subject. */
function callsAbout(stack: Stack, subject: string): number {
  return stack.ollama!.state.chats.filter((c) => c.messages.some((m: { content: string }) => m.content.includes(`Subject: ${subject}\n`))).length;
}

function pushBody(mailbox: string, uidvalidity: number, uid: number) {
  return JSON.stringify({ user: mailbox, event: 'messageNew', folder: 'INBOX', 'imap-uidvalidity': uidvalidity, 'imap-uid': uid });
}


/** Corpus mail delivered over LMTP, pushed, fetched with the master user and analysed: every row complete, nothing marked read. */
async function analysesDeliveredCorpus(stack: Stack) {
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
}

describeWith('Dovecot and PostgreSQL', ready)('analysis pipeline: Dovecot -> push -> IMAP fetch -> Ollama -> rows', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ users: USERS });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('turns delivered corpus messages into analysis rows, and no message gains \\Seen', () => analysesDeliveredCorpus(stack));

  it('a duplicate push, a retry and a restart leave one row and one LLM call', async () => {
    const mailbox = 'bob@example.test';
    await deliver(stack.dc.lmtpPort, testMessage('dup-1', mailbox, 'Quarterly numbers', 'Please find the quarterly numbers attached.'), [mailbox]);
    const [job] = await settled(stack, mailbox, 1);
    expect(job!.state).toBe('done');
    expect(callsAbout(stack, 'Quarterly numbers')).toBe(1);

    // Dovecot resends on a timeout: the same push again.
    const auth = `Basic ${Buffer.from('dovecot:push-secret').toString('base64')}`;
    const res = await fetch(stack.ms.pushUrl, { method: 'PUT', headers: { authorization: auth, 'content-type': 'application/json' }, body: pushBody(mailbox, job!.uidvalidity, job!.uid) });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ status: 'queued', new: false });

    // A retry of a job whose result was already stored (its worker died before recording the end).
    await stack.ms.db.orm.update(processingQueue).set({ state: 'queued', runAt: sql`now()` }).where(eq(processingQueue.id, job!.id));
    stack.ms.waker.signal();
    await waitFor(() => queueOf(stack, mailbox), (r) => r[0]?.state === 'done' && r[0]?.lastError === 'already analysed');

    // A crash between writing the result and recording the decision: the job comes back, finds the
    // stored answer by its content (no model call) and records the decision once.
    await stack.db.rows(sql`delete from llm_audit_log where mailbox = ${mailbox}`);
    await stack.ms.db.orm.update(processingQueue).set({ state: 'queued', runAt: sql`now()` }).where(eq(processingQueue.id, job!.id));
    stack.ms.waker.signal();
    const decisions = await waitFor(
      () => stack.db.rows<{ action: string }>(sql`select action from llm_audit_log where mailbox = ${mailbox} and action = 'analyzed'`),
      (r) => r.length > 0,
    );
    expect(decisions).toHaveLength(1);
    expect(callsAbout(stack, 'Quarterly numbers')).toBe(1);

    // A restart on the same database, with the job queued again.
    await stack.restart();
    await stack.ms.db.orm.update(processingQueue).set({ state: 'queued', runAt: sql`now()` }).where(eq(processingQueue.id, job!.id));
    stack.ms.waker.signal();
    const after = await waitFor(() => queueOf(stack, mailbox), (r) => r[0]?.state === 'done' && (r[0]?.attempts ?? 0) >= 3);
    expect(after).toHaveLength(1);
    expect(await analysesOf(stack, mailbox)).toHaveLength(1);
    expect(callsAbout(stack, 'Quarterly numbers')).toBe(1);

    // A forced re-analysis asks the model again and replaces the row (still one).
    const [before] = await analysesOf(stack, mailbox);
    await stack.db.orm.update(processingQueue).set({ state: 'queued', runAt: sql`now()`, force: true }).where(eq(processingQueue.id, job!.id));
    stack.ms.waker.signal();
    await waitFor(() => queueOf(stack, mailbox), (r) => r[0]?.state === 'done' && (r[0]?.attempts ?? 0) >= 4);
    expect(callsAbout(stack, 'Quarterly numbers')).toBe(2);
    const after2 = await analysesOf(stack, mailbox);
    expect(after2).toHaveLength(1);
    expect(after2[0]!.updatedAt.getTime()).toBeGreaterThan(before!.updatedAt.getTime());
    expect(after2[0]!.cacheHit).toBe(false);
  });

  it('one message delivered to 5 mailboxes: 5 rows, 1 LLM call', async () => {
    const to = ['carol', 'dave', 'erin', 'frank', 'grace'].map((u) => `${u}@example.test`);
    await deliver(stack.dc.lmtpPort, testMessage('all-hands', to.join(', '), 'All hands on Friday', 'The all hands meeting moves to Friday 10:00.'), to);
    for (const mailbox of to) expect((await settled(stack, mailbox, 1))[0]!.state).toBe('done');
    const rows = (await Promise.all(to.map((m) => analysesOf(stack, m)))).flat();
    expect(rows).toHaveLength(5);
    expect(new Set(rows.map((r) => r.contentHash)).size).toBe(1);
    expect(new Set(rows.map((r) => r.summary)).size).toBe(1);
    expect(rows.filter((r) => !r.cacheHit)).toHaveLength(1);
    expect(callsAbout(stack, 'All hands on Friday')).toBe(1);
  });

  it('never holds more than IMAP_MAX_SESSIONS sessions: 6 mailboxes through a cap of 2', async () => {
    await stack.restart({ imap: { maxSessions: 2 } });
    const to = ['nina', 'oscar', 'peggy', 'quinn', 'rupert', 'sybil'].map((u) => `${u}@example.test`);
    let most = 0;
    const watch = setInterval(() => (most = Math.max(most, stack.ms.imap.openSessions)), 2);
    try {
      const lmtp = await LmtpClient.connect(stack.dc.lmtpPort);
      for (const [i, mailbox] of to.entries()) await lmtp.deliver(testMessage(`cap-${i}`, mailbox, `Session cap ${i}`, `Note ${i}.`), [mailbox]);
      lmtp.close();
      for (const mailbox of to) expect((await settled(stack, mailbox, 1))[0]!.state).toBe('done');
    } finally {
      clearInterval(watch);
    }
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(2);
    expect(stack.ms.imap.stats.logins).toBeGreaterThanOrEqual(6);
    await stack.restart();
  });

  it('Ollama failing for a while (errors, then hanging): jobs wait without spending attempts; everything is analysed after it recovers', async () => {
    const mailbox = 'heidi@example.test';
    stack.ollama!.set({ mode: 'fail' });
    try {
      const lmtp = await LmtpClient.connect(stack.dc.lmtpPort);
      for (let i = 1; i <= 4; i++) await lmtp.deliver(testMessage(`outage-${i}`, mailbox, `Outage test ${i}`, `Message ${i} during the outage.`), [mailbox]);
      lmtp.close();
      await waitFor(() => queueOf(stack, mailbox), (r) => r.length === 4 && r.every((j) => j.lastError !== null));
      stack.ollama!.set({ mode: 'hang' });
      await waitFor(() => queueOf(stack, mailbox), (r) => r.some((j) => /LLM_TIMEOUT/.test(j.lastError ?? '')), 10_000);
      // The outage goes on for a while: jobs stay queued, and only the probes that find it down spend attempts.
      await new Promise((r) => setTimeout(r, 3_000));
      const during = await queueOf(stack, mailbox);
      expect(during.every((j) => j.state === 'queued' || j.state === 'processing')).toBe(true);
      expect(during.every((j) => /LLM_(SERVER_ERROR|TIMEOUT|UNREACHABLE)/.test(j.lastError ?? ''))).toBe(true);
      expect(Math.max(...during.map((j) => j.attempts))).toBeLessThan(stack.ms.config.processing.maxAttempts);
    } finally {
      stack.ollama!.set({ mode: 'ok' });
    }
    const jobs = await settled(stack, mailbox, 4, 30_000);
    expect(jobs.map((j) => j.state)).toEqual(['done', 'done', 'done', 'done']);
    expect(await analysesOf(stack, mailbox)).toHaveLength(4);
  });

  it('a message expunged before processing ends as gone, without an LLM call', async () => {
    const mailbox = 'ken@example.test';
    // The model takes 1.5 s per message and one job runs at a time: the second waits in the queue.
    await stack.restart({ processing: { concurrentJobs: 1 } });
    stack.ollama!.set({ delayMs: 1_500 });
    try {
      await deliver(stack.dc.lmtpPort, testMessage('slow-1', mailbox, 'Slow first', 'First.'), [mailbox]);
      await deliver(stack.dc.lmtpPort, testMessage('doomed-1', mailbox, 'Doomed second', 'Second.'), [mailbox]);
      const client = await imapSession(stack.dc, mailbox);
      try {
        await client.mailboxOpen('INBOX');
        await client.messageDelete('2', { uid: true });
      } finally {
        await client.logout();
      }
      const jobs = await settled(stack, mailbox, 2);
      expect(jobs.map((j) => j.state)).toEqual(['done', 'gone']);
      expect(jobs[1]!.lastError).toMatch(/no longer in the folder/);
      expect(callsAbout(stack, 'Doomed second')).toBe(0);
    } finally {
      stack.ollama!.set({ delayMs: 0 });
      await stack.restart();
    }
  });

  it('a job whose folder has a new UIDVALIDITY ends as stale, without an LLM call', async () => {
    const mailbox = 'ken@example.test';
    const calls = stack.ollama!.state.chats.length;
    const before = (await queueOf(stack, mailbox)).length;
    await enqueue(stack.db, { mailbox, folder: 'INBOX', uidvalidity: 12345, uid: 1, source: 'api' });
    stack.ms.waker.signal();
    const jobs = await settled(stack, mailbox, before + 1);
    const stale = jobs.find((j) => j.uidvalidity === 12345)!;
    expect(stale.state).toBe('stale');
    expect(stale.lastError).toMatch(/UIDVALIDITY of INBOX is now \d+, was 12345/);
    expect(stack.ollama!.state.chats.length).toBe(calls);
  });

  it('a 40 MB message is analysed from its first megabytes, never fetched whole', async () => {
    const mailbox = 'leo@example.test';
    const big = Buffer.alloc(40 * 1024 * 1024, 'A').toString('base64').replace(/.{76}/g, '$&\r\n');
    const raw = [
      'From: Archive <archive@example.net>',
      `To: ${mailbox}`,
      'Subject: The big export',
      'Message-ID: <big-1@example.net>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Here is the full export you asked for.',
      '--b1',
      'Content-Type: application/octet-stream; name="export.bin"',
      'Content-Transfer-Encoding: base64',
      '',
      big,
      '--b1--',
      '',
    ].join('\r\n');
    const fetchedBefore = stack.ms.imap.stats.bytesFetched;
    await deliver(stack.dc.lmtpPort, raw, [mailbox]);
    const [job] = await settled(stack, mailbox, 1, 60_000);
    expect(job!.state).toBe('done');
    const [row] = await analysesOf(stack, mailbox);
    expect(row!.status).toBe('analyzed');
    expect(row!.sizeBytes).toBeGreaterThan(40 * 1024 * 1024);
    expect(row!.parseWarnings.join(' ')).toMatch(/analysed from its first 2097152 bytes/);
    expect(row!.summary).toMatch(/big export/);
    expect(stack.ms.imap.stats.bytesFetched - fetchedBefore).toBeLessThanOrEqual(stack.ms.config.imap.maxFetchBytes);
  });

  it('a malformed MIME message is analysed from what could be read, with the warnings stored', async () => {
    const mailbox = 'mia@example.test';
    const raw = [
      `To: ${mailbox}`,
      'Subject: Broken structure',
      'Date: not a date at all',
      'MIME-Version: 1.0',
      'Content-Type: multipart/alternative; boundary="never-closed"',
      '',
      '--never-closed',
      'Content-Type: text/plain; charset=no-such-charset',
      'Content-Transfer-Encoding: base64',
      '',
      '!!!this is not base64 at all!!!',
      'Invoice attached, pay today.',
      '',
    ].join('\r\n');
    await deliver(stack.dc.lmtpPort, raw, [mailbox]);
    const [job] = await settled(stack, mailbox, 1);
    expect(job!.state).toBe('done');
    const [row] = await analysesOf(stack, mailbox);
    expect(row!.status).toBe('analyzed');
    expect(row!.parseWarnings).toEqual(expect.arrayContaining(['no From header', 'unparseable Date header']));
    expect(row!.subject).toBe('Broken structure');
  });

  it('invalid model JSON is repaired once, or the message fails with the reason recorded', async () => {
    const mailbox = 'mia@example.test';
    stack.ollama!.set({ mode: 'invalid-once' });
    await deliver(stack.dc.lmtpPort, testMessage('repair-1', mailbox, 'Needs a repair', 'Lunch tomorrow?'), [mailbox]);
    let jobs = await settled(stack, mailbox, 2);
    expect(jobs[1]!.state).toBe('done');
    expect(callsAbout(stack, 'Needs a repair')).toBe(2);

    stack.ollama!.set({ mode: 'invalid-json' });
    await deliver(stack.dc.lmtpPort, testMessage('broken-1', mailbox, 'Model breaks', 'Dinner tonight?'), [mailbox]);
    jobs = await settled(stack, mailbox, 3);
    stack.ollama!.set({ mode: 'ok' });
    expect(jobs[2]!.state).toBe('failed');
    expect(jobs[2]!.lastError).toMatch(/invalid after a repair attempt: not JSON/);
    expect(jobs[2]!.attempts).toBe(1);
    const rows = await analysesOf(stack, mailbox);
    expect(rows[2]).toMatchObject({ status: 'failed', subject: 'Model breaks', summary: null });
    expect(rows[2]!.error).toMatch(/invalid after a repair attempt/);
  });

  it('honours preferences: auto_analysis off is skipped without a call; summary off; reply suggestions on', async () => {
    const db = stack.ms.db.orm;
    await db.insert(userPreferences).values([
      { username: 'judy@example.test', autoAnalysis: false },
      { username: 'ivan@example.test', summaryEnabled: false, replySuggestions: true },
    ]);
    await deliver(stack.dc.lmtpPort, testMessage('pref-1', 'judy, ivan', 'Preferences check', 'Can we meet on Monday?'), ['judy@example.test', 'ivan@example.test']);
    const [judyJob] = await settled(stack, 'judy@example.test', 1);
    const [ivanJob] = await settled(stack, 'ivan@example.test', 1);
    expect(judyJob).toMatchObject({ state: 'skipped', lastError: 'auto_analysis is off for this mailbox' });
    expect(ivanJob!.state).toBe('done');
    const [judy] = await analysesOf(stack, 'judy@example.test');
    const [ivan] = await analysesOf(stack, 'ivan@example.test');
    expect(judy).toMatchObject({ status: 'skipped', subject: 'Preferences check', summary: null, verdict: null });
    expect(ivan).toMatchObject({ status: 'analyzed', summary: null, replySuggestion: 'Thank you, I will get back to you.' });
    expect(callsAbout(stack, 'Preferences check')).toBe(1);
    await db.delete(userPreferences);
  });

  it('/ready checks the database, the IMAP server and Ollama with its model, and names only error codes', async () => {
    let res = await fetch(`${stack.ms.baseUrl}/ready`);
    let body = (await res.json()) as any;
    expect(res.status).toBe(200);
    expect(body.components).toMatchObject({ database: { ok: true }, imap: { ok: true }, ollama: { ok: true } });
    stack.ollama!.set({ models: ['qwen2.5:7b'] });
    res = await fetch(`${stack.ms.baseUrl}/ready`);
    body = (await res.json()) as any;
    stack.ollama!.set({ models: ['llama3.2:3b'] });
    expect(res.status).toBe(503);
    expect(body.components.ollama).toEqual({ ok: false, latencyMs: expect.any(Number), code: 'LLM_MODEL_NOT_FOUND' });
  });

  it('mailsight stopped while 20 messages arrive: the sweep finds all 20 after restart', async () => {
    const mailbox = 'alice@example.test';
    // mailsight knows the mailbox from an earlier push.
    await deliver(stack.dc.lmtpPort, testMessage('known-1', mailbox, 'Before the outage', 'Hello.'), [mailbox]);
    const before = (await settled(stack, mailbox, 1)).length;
    await stack.stopMailsight();
    const corpus = loadCorpus(20, ['easy-ham-2', 'spam-2']);
    // Dovecot's pushes are refused now and it does not resend them: the mail is delivered all the same.
    // In parallel: an lmtp process backs off (100 ms, doubling) after each refused connect, so one
    // connection delivering 20 messages would take minutes (see dovecot/README.md).
    await Promise.all(corpus.map((m) => deliver(stack.dc.lmtpPort, m.raw, [mailbox])));
    expect(await queueOf(stack, mailbox)).toHaveLength(before);

    await stack.startMailsight();
    const jobs = await settled(stack, mailbox, before + 20, 30_000);
    const swept = jobs.slice(before);
    expect(swept).toHaveLength(20);
    expect(swept.every((j) => j.source === 'reconcile' && j.state === 'done')).toBe(true);
    expect(await analysesOf(stack, mailbox)).toHaveLength(before + 20);
  });
});

describeWith('Dovecot and PostgreSQL', ready)('a worker process killed mid-job', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ users: ['alice@example.test'] });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('its job is picked up again after the lease and analysed once', async () => {
    const mailbox = 'alice@example.test';
    await stack.stopMailsight();
    const child = spawnMailsight(stack, { LLM_LEASE_SEC: '2' });
    try {
      await waitFor(() => fetch(`http://127.0.0.1:${stack.port}/health`).then((r) => r.ok, () => false), (ok) => ok, 20_000);
      stack.ollama!.set({ mode: 'hang' });
      await deliver(stack.dc.lmtpPort, testMessage('killed-1', mailbox, 'Killed mid-job', 'This one outlives its worker.'), [mailbox]);
      await waitFor(async () => callsAbout(stack, 'Killed mid-job'), (n) => n >= 1);
      const [held] = await queueOf(stack, mailbox);
      expect(held).toMatchObject({ state: 'processing', attempts: 1 });
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    stack.ollama!.set({ mode: 'ok' });
    await stack.startMailsight();
    const [job] = await settled(stack, mailbox, 1, 20_000);
    expect(job).toMatchObject({ state: 'done', attempts: 2 });
    expect(await analysesOf(stack, mailbox)).toHaveLength(1);
    expect(callsAbout(stack, 'Killed mid-job')).toBe(2); // the hung one, then the one that answered
  });
});

describeWith('Dovecot and PostgreSQL', ready)('kill -9 during a burst, then a restart, with the default lease (30 s)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ users: ['alice@example.test'] });
  });
  afterAll(async () => stack?.close());

  it('every message is analysed within 30 s of the restart, each once: the new process takes back its predecessor\'s jobs', async () => {
    const mailbox = 'alice@example.test';
    await stack.stopMailsight();
    const env = { LLM_LEASE_SEC: '', LLM_CONCURRENT_JOBS: '4' }; // the default lease
    let child = spawnMailsight(stack, env);
    try {
      await waitFor(() => fetch(`http://127.0.0.1:${stack.port}/health`).then((r) => r.ok, () => false), (ok) => ok, 20_000);
      stack.ollama!.set({ delayMs: 2_000 });
      const burst = Array.from({ length: 8 }, (_, i) => testMessage(`burst-${i}`, mailbox, `Burst ${i}`, `Message ${i} of a burst.`));
      await Promise.all(burst.map((m) => deliver(stack.dc.lmtpPort, m, [mailbox])));
      await waitFor(() => queueOf(stack, mailbox), (rows) => rows.filter((r) => r.state === 'processing').length >= 4);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      stack.ollama!.set({ delayMs: 0 });
      const held = (await queueOf(stack, mailbox)).filter((r) => r.state === 'processing');
      expect(held.length).toBeGreaterThanOrEqual(4); // their leases run for 30 s more

      const restarted = Date.now();
      child = spawnMailsight(stack, env);
      const jobs = await settled(stack, mailbox, 8, 30_000);
      const seconds = (Date.now() - restarted) / 1000;
      expect(jobs.map((j) => j.state)).toEqual(Array(8).fill('done'));
      expect(seconds).toBeLessThan(30);
      // Well under the lease: taken back at start-up, not after it expired.
      expect(seconds).toBeLessThan(15);
      const analyses = await analysesOf(stack, mailbox);
      expect(analyses).toHaveLength(8);
      expect(new Set(analyses.map((a) => a.uid)).size).toBe(8);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }
  });
});

describeWith('Dovecot', dovecotAvailable())('the pipeline on the embedded database (PGlite, the npm start default)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ database: 'pglite', users: ['alice@example.test', 'bob@example.test'] });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('analyses delivered mail, shares identical content, and keeps its queue across a restart', async () => {
    const corpus = loadCorpus(6);
    const lmtp = await LmtpClient.connect(stack.dc.lmtpPort);
    for (const m of corpus) await lmtp.deliver(m.raw, ['alice@example.test', 'bob@example.test']);
    lmtp.close();
    for (const mailbox of ['alice@example.test', 'bob@example.test']) {
      const jobs = await settled(stack, mailbox, corpus.length);
      expect(jobs.map((j) => j.state)).toEqual(corpus.map(() => 'done'));
      expect(await analysesOf(stack, mailbox)).toHaveLength(corpus.length);
    }
    expect(stack.ollama!.state.chats).toHaveLength(corpus.length);

    await stack.restart();
    expect(await analysesOf(stack, 'alice@example.test')).toHaveLength(corpus.length);
    await deliver(stack.dc.lmtpPort, testMessage('after-restart', 'alice@example.test', 'After the restart', 'Still here.'), ['alice@example.test']);
    const jobs = await settled(stack, 'alice@example.test', corpus.length + 1);
    expect(jobs.at(-1)!.state).toBe('done');
  });
});

describeWith('Dovecot and PostgreSQL', ready)('pushes lost while the mailbox\'s IMAP session stays open', () => {
  const INTERVAL_SEC = 2;
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ users: ['alice@example.test'], mailsight: { processing: { intervalSec: INTERVAL_SEC }, imap: { idleCloseSec: 600 } } });
  });
  afterAll(async () => stack?.close());

  it('the sweep asks the server for UIDNEXT and queues them within one interval', async () => {
    const mailbox = 'alice@example.test';
    await deliver(stack.dc.lmtpPort, testMessage('open-1', mailbox, 'Opens the session', 'Hello.'), [mailbox]);
    await settled(stack, mailbox, 1);
    const logins = stack.ms.imap.stats.logins;
    // Three messages whose pushes never come (the OX driver does not push an APPEND), while
    // mailsight's session for the mailbox stays open and its view of INBOX is the old one.
    const client = await imapSession(stack.dc, mailbox);
    try {
      for (const i of [1, 2, 3]) await client.append('INBOX', testMessage(`lost-${i}`, mailbox, `Lost push ${i}`, 'No push for me.'));
    } finally {
      await client.logout();
    }
    const started = Date.now();
    const jobs = await waitFor(() => queueOf(stack, mailbox), (rows) => rows.length >= 4, (INTERVAL_SEC * 2 + 3) * 1000);
    expect(jobs.filter((j) => j.source === 'reconcile')).toHaveLength(3);
    expect(Date.now() - started).toBeLessThan((INTERVAL_SEC * 2 + 3) * 1000);
    // Found on the same session, not by a new login.
    expect(stack.ms.imap.stats.logins).toBe(logins);
  });
});

// The same path through Debian 13's Dovecot 2.4, configured with the snippets of dovecot/2.4/.
describeWith('Dovecot 2.4 and PostgreSQL', dovecotAvailable('2.4') && pg)('analysis pipeline through Dovecot 2.4 (master-user fetch)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ users: USERS, dovecot: { version: '2.4' } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('turns delivered corpus messages into analysis rows, and no message gains \\Seen', () => analysesDeliveredCorpus(stack));
});
