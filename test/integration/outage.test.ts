import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LlmClient } from '../../src/analysis/llm.js';
import { ImapSessions } from '../../src/mail/imap.js';
import { JobError } from '../../src/queue/job-error.js';
import { enqueue } from '../../src/queue/jobs.js';
import { WorkerPool } from '../../src/queue/worker.js';
import { freePort } from '../support/dovecot.js';
import { startOllamaStandIn, type OllamaStandIn } from '../support/ollama-stand-in.js';
import { describeWith, openTestDb, postgresAvailable, silentLogger, testConfig, type TestDb } from '../support/services.js';
import { waitFor } from '../support/wait.js';

const pgUp = await postgresAvailable();

describeWith('PostgreSQL', pgUp)('outages of the services a job needs', () => {
  let t: TestDb;
  let ollama: OllamaStandIn;
  beforeAll(async () => {
    t = await openTestDb('postgres');
    ollama = await startOllamaStandIn();
  });
  afterAll(async () => {
    await ollama?.close();
    await t?.close();
  });

  it('a job that meets an outage comes back without spending an attempt, and the pool claims nothing meanwhile', async () => {
    await enqueue(t.db, { mailbox: 'o@example.test', folder: 'INBOX', uidvalidity: 1, uid: 1, source: 'push' });
    await enqueue(t.db, { mailbox: 'o@example.test', folder: 'INBOX', uidvalidity: 1, uid: 2, source: 'push' });
    const calls: { uid: number; at: number }[] = [];
    const started = Date.now();
    const pool = new WorkerPool({
      db: t.db,
      logger: silentLogger,
      concurrency: 1,
      batchSize: 1,
      leaseMs: 30_000,
      maxAttempts: 2,
      retryBaseMs: 10,
      retryMaxMs: 10,
      handler: async (job) => {
        calls.push({ uid: job.uid, at: Date.now() - started });
        // Down for the first 1.5 s: far more tries than maxAttempts would allow if they counted.
        if (Date.now() - started < 1_500) throw new JobError('LLM_UNREACHABLE', 'down', true, { outageMs: 300 });
        return { state: 'done' };
      },
    });
    pool.start();
    const rows = await waitFor(
      () => t.db.rows<{ uid: number; state: string; attempts: number }>(sql`select uid, state, attempts from llm_processing_queue where mailbox = 'o@example.test' order by uid`),
      (r) => r.every((x) => x.state === 'done'),
      10_000,
    );
    await pool.stop(1000);
    expect(rows.map((r) => [Number(r.uid), r.state, r.attempts])).toEqual([
      [1, 'done', 1],
      [2, 'done', 1],
    ]);
    // One try per pause (300 ms and more), not a tight loop: about 1.5 s / 300 ms of them.
    const during = calls.filter((c) => c.at < 1_500);
    expect(during.length).toBeGreaterThanOrEqual(2);
    expect(during.length).toBeLessThanOrEqual(7);
  });

  it('when every LLM host rests after failing, calls fail at once as an outage (no request) until the rest ends', async () => {
    ollama.set({ mode: 'fail' });
    ollama.state.chats.length = 0;
    const client = new LlmClient({ host: ollama.url, model: 'llama3.2:3b', timeoutMs: 1000, hostRetryBaseMs: 400 });
    const prompt = { system: 's', user: 'EMAIL-BEGIN-x\nSubject: hi\nEMAIL-END-x', inputHash: 'h', bodyCut: false };
    const first = await client.analyse(prompt).catch((e) => e);
    expect(first).toMatchObject({ code: 'LLM_SERVER_ERROR', transient: true, outageMs: undefined });
    const second = await client.analyse(prompt).catch((e) => e);
    expect(second).toMatchObject({ code: 'LLM_UNREACHABLE', transient: true });
    expect(second.outageMs).toBeGreaterThan(0);
    expect(second.outageMs).toBeLessThanOrEqual(400);
    expect(ollama.state.chats).toHaveLength(1);
    ollama.set({ mode: 'ok' });
    await new Promise((r) => setTimeout(r, 450));
    expect((await client.analyse(prompt)).result).toBeTruthy();
  });

  it('an IMAP server that cannot be reached is an outage; sessions wait out its rest instead of each connecting', async () => {
    const port = await freePort();
    const config = testConfig({ imap: { host: '127.0.0.1', port, masterUser: 'mailsight', masterPassword: 'x' } });
    const imap = new ImapSessions(config.imap, silentLogger);
    try {
      const key = { mailbox: 'a@example.test', folder: 'INBOX', uidvalidity: 1, uid: 1 };
      const first = await imap.fetchMessage(key).catch((e) => e);
      expect(first).toMatchObject({ code: 'IMAP_UNAVAILABLE', transient: true });
      expect(first.outageMs).toBeGreaterThan(0);
      const second = await imap.fetchMessage({ ...key, mailbox: 'b@example.test' }).catch((e) => e);
      expect(second.message).toContain('IMAP server unreachable recently');
      expect(imap.stats.logins).toBe(0);
    } finally {
      await imap.close();
    }
  });
});
