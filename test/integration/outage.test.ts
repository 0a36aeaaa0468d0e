import { connect, createServer, type AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LlmClient } from '../../src/analysis/llm.js';
import { openPostgres } from '../../src/db/client.js';
import { ImapSessions } from '../../src/mail/imap.js';
import { JobError } from '../../src/queue/job-error.js';
import { enqueue } from '../../src/queue/jobs.js';
import { WorkerPool } from '../../src/queue/worker.js';
import { freePort } from '../support/dovecot.js';
import { startOllamaStandIn, type OllamaStandIn } from '../support/ollama-stand-in.js';
import { createTestDatabase, describeWith, openTestDb, postgresAvailable, silentLogger, testConfig, type TestDb } from '../support/services.js';
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
    // Timed from the first call, not from pool.start(): on a loaded machine the first claim alone
    // has taken longer than the outage (in one run of ten files at once, no call fell inside it).
    let started: number | undefined;
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
        started ??= Date.now();
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

const TERMINATING = (() => {
  const fields = Buffer.from('SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0');
  const head = Buffer.alloc(5);
  head.write('E');
  head.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([head, fields]);
})();

/**
 * A TCP proxy in front of Postgres that cuts each new connection right after its start-up, as the
 * connection sends its first statement: what a Postgres restart does to a client reconnecting.
 */
async function cuttingProxy(target: URL, cuts: number) {
  let left = cuts;
  const server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    let cut = left-- > 0;
    let ready = false;
    upstream.on('data', (d: Buffer) => {
      client.write(d);
      // ReadyForQuery ('Z', length 5) ends the start-up; what the client sends next is a statement.
      if (d.includes(Buffer.from([0x5a, 0, 0, 0, 5]))) ready = true;
    });
    client.on('data', (d: Buffer) => {
      if (cut && ready) {
        cut = false;
        // As a backend does when Postgres shuts down: FATAL 57P01, then the socket closes.
        client.end(TERMINATING);
        upstream.destroy();
        return;
      }
      upstream.write(d);
    });
    for (const s of [client, upstream]) s.on('error', () => {}).on('close', () => (s === client ? upstream : client).destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = new URL(target);
  url.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url: url.toString(), close: () => new Promise<void>((r) => server.close(() => r())) };
}

describeWith('PostgreSQL', pgUp)('a connection cut as it starts (Postgres restarting)', () => {
  it('fails the statement it carried, and the process lives on (no unhandled rejection)', async () => {
    const { url: dbUrl, drop } = await createTestDatabase();
    const proxy = await cuttingProxy(new URL(dbUrl), 2);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const db = openPostgres(proxy.url, { max: 1 });
    try {
      const results = [];
      // A transaction first on a fresh connection: the case where postgres.js lost the promise of
      // its start-up query (porsager/postgres#1192) and the cut killed the process.
      const read = () => db.orm.transaction(async (tx) => [...((await tx.execute(sql`select '{a,"b c"}'::text[] as t`)) as unknown as { t: string[] }[])][0]!.t);
      for (let i = 0; i < 8; i++) results.push(await read().catch((e: Error) => e.message));
      await new Promise((r) => setTimeout(r, 200));
      expect(unhandled).toEqual([]);
      // The cut transactions fail (postgres.js also hands the FATAL to the next one), then the
      // reconnected pool answers, and text[] arrives as an array.
      expect(results[0]).toMatch(/CONNECTION_CLOSED|terminating connection/);
      expect(results.slice(-3)).toEqual([['a', 'b c'], ['a', 'b c'], ['a', 'b c']]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await db.close();
      await proxy.close();
      await drop();
    }
  });
});
