import { asc, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { processingQueue } from '../../src/db/schema.js';
import { enqueue, enqueueMany, type JobSource } from '../../src/queue/jobs.js';
import { claim, finishMany } from '../../src/analysis/jobs.js';
import { claim as queueClaim, nextCursor, nextDueAt, release, retry, type ClaimCursor } from '../../src/queue/lifecycle.js';
import { eraseMailbox } from '../../src/queries/erase.js';
import { knownMailboxes, reconcileOnce, resignLeadership, takeLeadership, type UidSource } from '../../src/queue/reconcile.js';
import { QueueWaker } from '../../src/queue/wake.js';
import { WorkerPool, type HandlerOutcome } from '../../src/queue/worker.js';
import { openPostgres } from '../../src/db/client.js';
import { DRIVERS, describeWith, openTestDb, postgresAvailable, silentLogger, type TestDb } from '../support/services.js';
import { waitFor } from '../support/wait.js';

const pgUp = await postgresAvailable();
const UIDVALIDITY = 1795249885;

const job = (uid: number, source: JobSource = 'push', mailbox = 'alice@example.test') => ({
  mailbox,
  folder: 'INBOX',
  uidvalidity: UIDVALIDITY,
  uid,
  source,
});

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`queue lifecycle on ${driver}`, () => {
    let t: TestDb;
    beforeAll(async () => {
      t = await openTestDb(driver);
    });
    afterAll(async () => {
      await t?.close();
    });
    beforeEach(async () => {
      await t.db.orm.delete(processingQueue);
      // The sweep's registry of mailboxes outlives their queue rows: each test starts with none known.
      await t.db.rows(sql`delete from llm_mailboxes`);
      await t.db.rows(sql`delete from llm_config`);
    });
    const all = () => t.db.orm.select().from(processingQueue).orderBy(asc(processingQueue.id));

    it('claims in priority order, and two claimers never get the same job', async () => {
      await enqueueMany(t.db, Array.from({ length: 80 }, (_, i) => job(i + 1, i % 4 === 0 ? 'reconcile' : 'push')));
      await enqueue(t.db, job(100, 'api'));
      const [first] = await claim(t.db, { workerId: 'w0', limit: 1, leaseMs: 60_000 });
      expect(first).toMatchObject({ uid: 100, source: 'api', state: 'processing', attempts: 1, lockedBy: 'w0' });
      // live mail (priority 1) before catch-up work (priority 2)
      const pushFirst = await claim(t.db, { workerId: 'w0', limit: 30, leaseMs: 60_000 });
      expect(pushFirst.every((j) => j.source === 'push')).toBe(true);

      // Six claimers at once until nothing is left. One that finds its candidates locked by another
      // gets fewer or none (SKIP LOCKED) and claims again, as a worker does after a short sleep.
      const queued = async () => (await all()).filter((r) => r.state === 'queued').length;
      const claims = await Promise.all(
        Array.from({ length: 6 }, async (_, i) => {
          const mine = [];
          while ((await queued()) > 0) mine.push(...(await claim(t.db, { workerId: `w${i + 1}`, limit: 10, leaseMs: 60_000 })));
          return mine;
        }),
      );
      const ids = claims.flat().map((j) => j.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toHaveLength(50);
      const rows = await all();
      expect(rows.every((r) => r.state === 'processing')).toBe(true);
    });

    it('a claimed job carries its stored analysis status and its mailbox preferences', async () => {
      await enqueueMany(t.db, [job(1), job(2), job(3, 'push', 'bob@example.test')]);
      await t.db.rows(sql`insert into llm_email_analysis (mailbox, folder, uidvalidity, uid, status)
                          values ('alice@example.test', 'INBOX', ${UIDVALIDITY}, 2, 'analyzed')`);
      await t.db.rows(sql`insert into llm_user_preferences (username, summary_enabled, summary_language) values ('bob@example.test', false, 'de')`);
      const jobs = await claim(t.db, { workerId: 'w', limit: 5, leaseMs: 60_000 });
      const byUid = new Map(jobs.map((j) => [j.uid, j]));
      expect(byUid.get(1)).toMatchObject({ analysisStatus: null, preferences: null });
      expect(byUid.get(2)).toMatchObject({ analysisStatus: 'analyzed', preferences: null });
      expect(byUid.get(3)).toMatchObject({
        analysisStatus: null,
        preferences: { autoAnalysis: true, summaryEnabled: false, replySuggestions: false, summaryLanguage: 'de' },
      });
      await t.db.rows(sql`delete from llm_email_analysis`);
      await t.db.rows(sql`delete from llm_user_preferences`);
    });

    it('an expired lease returns the job to another worker; the old worker can no longer end it', async () => {
      await enqueue(t.db, job(1));
      const [a] = await claim(t.db, { workerId: 'dead-worker', limit: 5, leaseMs: 60_000 });
      expect(await claim(t.db, { workerId: 'other', limit: 5, leaseMs: 60_000 })).toHaveLength(0);
      // The lease runs out (set, not slept for: a 50 ms lease ran out before the second claim on a loaded machine).
      await t.db.rows(sql`update llm_processing_queue set lease_until = now() - interval '1 second' where id = ${a!.id}`);
      const [b] = await claim(t.db, { workerId: 'other', limit: 5, leaseMs: 60_000 });
      expect(b).toMatchObject({ id: a!.id, attempts: 2, lockedBy: 'other' });
      expect(await finishMany(t.db, 'dead-worker', [{ job: a!, state: 'done', error: null }])).toEqual(new Set());
      expect(await finishMany(t.db, 'other', [{ job: b!, state: 'done', error: null }])).toEqual(new Set([b!.id]));
      expect((await all())[0]).toMatchObject({ state: 'done', leaseUntil: null, lockedBy: null });
    });

    it('retry() delays the job; nextDueAt() says when it is due; release() gives the attempt back', async () => {
      await enqueueMany(t.db, [job(1), job(2)]);
      const [a, b] = await claim(t.db, { workerId: 'w', limit: 2, leaseMs: 60_000 });
      await retry(t.db, a!, 'IMAP_UNAVAILABLE: down', 300);
      expect(await release(t.db, [b!.id], 'w')).toBe(1);
      const due = await nextDueAt(t.db);
      expect(due!.getTime()).toBeLessThanOrEqual(Date.now() + 50); // b is due now
      const [again] = await claim(t.db, { workerId: 'w', limit: 5, leaseMs: 60_000 });
      expect(again).toMatchObject({ id: b!.id, attempts: 1 });
      expect(await claim(t.db, { workerId: 'w', limit: 5, leaseMs: 60_000 })).toHaveLength(0);
      const later = await nextDueAt(t.db);
      expect(later!.getTime()).toBeGreaterThan(Date.now());
      await new Promise((r) => setTimeout(r, 320));
      const [retried] = await claim(t.db, { workerId: 'w', limit: 5, leaseMs: 60_000 });
      expect(retried).toMatchObject({ id: a!.id, attempts: 2, lastError: 'IMAP_UNAVAILABLE: down' });
    });

    it('the worker pool retries transient errors with backoff, fails permanent ones, gives up after maxAttempts', async () => {
      await enqueueMany(t.db, [job(1), job(2), job(3), job(4)]);
      const seen = new Map<number, number>();
      const transient = (msg: string) => Object.assign(new Error(msg), { transient: true, code: 'IMAP_UNAVAILABLE' });
      const handler = async (j: { uid: number }): Promise<HandlerOutcome> => {
        const n = (seen.get(j.uid) ?? 0) + 1;
        seen.set(j.uid, n);
        if (j.uid === 1 && n < 3) throw transient('connection reset');
        if (j.uid === 2) throw Object.assign(new Error('master login refused'), { transient: false, code: 'IMAP_AUTH_FAILED' });
        if (j.uid === 3) throw transient('still down');
        return { state: 'done' };
      };
      const pool = new WorkerPool({
        db: t.db,
        logger: silentLogger,
        handler,
        concurrency: 2,
        batchSize: 2,
        leaseMs: 30_000,
        maxAttempts: 4,
        retryBaseMs: 20,
        retryMaxMs: 80,
      });
      pool.start();
      const rows = await waitFor(all, (r) => r.every((j) => ['done', 'failed', 'dead'].includes(j.state)), 10_000);
      await pool.stop(1000);
      expect(rows.map((r) => [r.uid, r.state, r.attempts])).toEqual([
        [1, 'done', 3],
        [2, 'failed', 1],
        [3, 'dead', 4],
        [4, 'done', 1],
      ]);
      expect(rows[1]!.lastError).toBe('IMAP_AUTH_FAILED: master login refused');
      expect(rows[2]!.lastError).toBe('gave up after 4 attempts; last: IMAP_UNAVAILABLE: still down');
      expect(pool.stats).toMatchObject({ done: 2, failed: 1, dead: 1, retried: 5 });
    });

    it('a job that keeps killing its worker (lease expires every time) ends dead', async () => {
      await enqueue(t.db, job(1));
      for (let i = 0; i < 3; i++) {
        await claim(t.db, { workerId: `crashing-${i}`, limit: 1, leaseMs: 1 });
        await new Promise((r) => setTimeout(r, 10));
      }
      const pool = new WorkerPool({ db: t.db, logger: silentLogger, handler: async () => ({ state: 'done' }), concurrency: 1, batchSize: 1, leaseMs: 30_000, maxAttempts: 3, retryBaseMs: 10, retryMaxMs: 10 });
      pool.start();
      const [row] = await waitFor(all, (r) => r[0]?.state === 'dead');
      await pool.stop(1000);
      expect(row).toMatchObject({ state: 'dead', attempts: 4 });
      expect(row!.lastError).toMatch(/gave up after 3 attempts; last: lease expired/);
    });

    it('stop() gives back the jobs that outlast the grace period, their attempt uncounted; the rest stay unclaimed', async () => {
      await enqueueMany(t.db, Array.from({ length: 6 }, (_, i) => job(i + 1)));
      const pool = new WorkerPool({ db: t.db, logger: silentLogger, handler: () => new Promise<HandlerOutcome>(() => {}), concurrency: 2, batchSize: 6, leaseMs: 30_000, maxAttempts: 3, retryBaseMs: 10, retryMaxMs: 10 });
      pool.start();
      await waitFor(all, (r) => r.filter((j) => j.state === 'processing').length === 2);
      await pool.stop(50);
      const rows = await all();
      expect(rows.every((j) => j.state === 'queued' && j.attempts === 0 && j.lockedBy === null)).toBe(true);
    });

    it('claims fairly: api first, then pushes with mailboxes taking turns, then sweep and backfill work', async () => {
      // A mailing-list flood in A, catch-up work in C, then a new message in B and an API request in D.
      await enqueueMany(t.db, Array.from({ length: 1000 }, (_, i) => job(i + 1, 'push', 'a@example.test')));
      await enqueueMany(t.db, Array.from({ length: 20 }, (_, i) => job(i + 1, 'backfill', 'c@example.test')));
      await enqueue(t.db, job(7, 'push', 'b@example.test'));
      await enqueue(t.db, job(9, 'api', 'd@example.test'));
      const order = [];
      for (let i = 0; i < 5; i++) order.push(...(await claim(t.db, { workerId: 'w', limit: 1, leaseMs: 60_000 })));
      expect(order.map((j) => `${j.mailbox} ${j.uid}`)).toEqual([
        'd@example.test 9', // asked for over the API
        'a@example.test 1', // the oldest pushed message
        'b@example.test 7', // B's turn comes before A's second message
        'a@example.test 2',
        'a@example.test 3',
      ]);
      // One claim of several: every mailbox's oldest before any mailbox's next, and among those the
      // mailbox never served (E), then the one served longest ago (B), then A.
      await enqueue(t.db, job(8, 'push', 'b@example.test'));
      await enqueue(t.db, job(1, 'push', 'e@example.test'));
      const batch = await claim(t.db, { workerId: 'w', limit: 4, leaseMs: 60_000 });
      expect(batch.map((j) => `${j.mailbox} ${j.uid}`).sort()).toEqual(['a@example.test 4', 'a@example.test 5', 'b@example.test 8', 'e@example.test 1']);
      const [next] = await claim(t.db, { workerId: 'w', limit: 1, leaseMs: 60_000 });
      expect(`${next!.mailbox} ${next!.uid}`).toBe('a@example.test 6');
      // Backfill waits for live mail.
      await t.db.rows(sql`update llm_processing_queue set state = 'done' where source = 'push' and state = 'queued'`);
      const [catchUp] = await claim(t.db, { workerId: 'w', limit: 1, leaseMs: 60_000 });
      expect(catchUp).toMatchObject({ mailbox: 'c@example.test', uid: 1, source: 'backfill' });
    });

    it('with more mailboxes waiting than a claim looks at, the window rotates: every mailbox is served once before any twice', async () => {
      const boxes = Array.from({ length: 60 }, (_, i) => `m${String(i).padStart(2, '0')}@example.test`);
      await enqueueMany(t.db, boxes.flatMap((m) => [job(1, 'backfill', m), job(2, 'backfill', m)]));
      let after: ClaimCursor | undefined;
      const served: string[] = [];
      while (served.length < 60) {
        const jobs = await queueClaim(t.db, { workerId: 'w', limit: 3, leaseMs: 60_000, after });
        after = nextCursor(jobs, after);
        served.push(...jobs.map((j) => j.mailbox));
        await finishMany(t.db, 'w', jobs.map((j) => ({ job: j, state: 'done' as const, error: null })));
      }
      expect(new Set(served.slice(0, 60)).size).toBe(60);
      // Live mail still goes first, wherever the cursor stands: a push for the first mailbox in the alphabet.
      await enqueue(t.db, job(3, 'push', boxes[0]));
      const [next] = await queueClaim(t.db, { workerId: 'w', limit: 1, leaseMs: 60_000, after });
      expect(next).toMatchObject({ mailbox: boxes[0], uid: 3, source: 'push' });
    });

    it('live mail of a few mailboxes takes a whole claim before catch-up work of many', async () => {
      const live = ['p1@example.test', 'p2@example.test', 'p3@example.test'];
      await enqueueMany(t.db, live.flatMap((m) => [1, 2, 3].map((uid) => job(uid, 'push', m))));
      await enqueueMany(t.db, Array.from({ length: 12 }, (_, i) => job(1, 'backfill', `b${i}@example.test`)));
      const jobs = await queueClaim(t.db, { workerId: 'w', limit: 8, leaseMs: 60_000 });
      expect(jobs.map((j) => j.source)).toEqual(Array(8).fill('push'));
    });

    it("a push for a message the sweep queued first raises it to live mail's priority; a duplicate push changes nothing", async () => {
      await enqueueMany(t.db, [job(1, 'reconcile'), job(2, 'backfill'), job(3, 'reconcile')]);
      await t.db.rows(sql`update llm_processing_queue set state = 'processing' where uid = 3`);
      expect(await enqueue(t.db, job(1, 'push'))).toMatchObject({ created: false });
      expect(await enqueue(t.db, job(1, 'push'))).toMatchObject({ created: false });
      expect(await enqueue(t.db, job(2, 'push'))).toMatchObject({ created: false });
      await enqueue(t.db, job(3, 'push'));
      expect(await enqueue(t.db, job(4, 'push'))).toMatchObject({ created: true });
      const rows = await all();
      expect(rows.map((r) => [r.uid, r.source, r.priority, r.state])).toEqual([
        [1, 'push', 1, 'queued'],
        [2, 'push', 1, 'queued'],
        [3, 'reconcile', 2, 'processing'], // already running: left alone
        [4, 'push', 1, 'queued'],
      ]);
    });

    it("a pool busy with a 300-message flood starts another mailbox's new message within one job", async () => {
      await enqueueMany(t.db, Array.from({ length: 300 }, (_, i) => job(i + 1, 'push', 'a@example.test')));
      const started: string[] = [];
      const pool = new WorkerPool({
        db: t.db,
        logger: silentLogger,
        handler: async (j) => {
          started.push(j.mailbox);
          await new Promise((r) => setTimeout(r, 5));
          return { state: 'done' };
        },
        concurrency: 2,
        batchSize: 10,
        leaseMs: 30_000,
        maxAttempts: 3,
        retryBaseMs: 10,
        retryMaxMs: 10,
      });
      pool.start();
      await waitFor(async () => started.length, (n) => n >= 20);
      const before = started.length;
      await enqueue(t.db, job(1, 'push', 'b@example.test'));
      pool.wake();
      await waitFor(async () => started.includes('b@example.test'), Boolean);
      await pool.stop(1000);
      // Two jobs were running when B's arrived; A's oldest queued one may go first, then B.
      expect(started.indexOf('b@example.test') - before).toBeLessThanOrEqual(3);
    });

    it('only one instance sweeps at a time; resigning hands over at once', async () => {
      expect(await takeLeadership(t.db, 'a', 60_000)).toBe(true);
      expect(await takeLeadership(t.db, 'b', 60_000)).toBe(false);
      expect(await takeLeadership(t.db, 'a', 60_000)).toBe(true); // renewal
      await resignLeadership(t.db, 'a');
      expect(await takeLeadership(t.db, 'b', 60_000)).toBe(true);
      expect(await takeLeadership(t.db, 'a', 60_000)).toBe(false);
    });

    it("the sweep's mailboxes: every mailbox a job was queued for, kept when its jobs are purged, gone when it is erased", async () => {
      await enqueueMany(t.db, [job(1, 'push', 'carol@example.test'), job(2, 'push', 'carol@example.test')]);
      await enqueue(t.db, { ...job(3, 'push', 'dave@example.test') });
      expect(await knownMailboxes(t.db)).toEqual(['carol@example.test', 'dave@example.test']);
      await t.db.orm.delete(processingQueue);
      expect(await knownMailboxes(t.db)).toEqual(['carol@example.test', 'dave@example.test']);
      await eraseMailbox(t.db, 'carol@example.test');
      expect(await knownMailboxes(t.db)).toEqual(['dave@example.test']);
    });

    it('the sweep queues what is missing above the lowest queued UID, and one failing mailbox does not stop the rest', async () => {
      await enqueueMany(t.db, [job(50), job(52), job(1, 'push', 'bob@example.test'), job(7, 'push', 'broken@example.test')]);
      expect(await knownMailboxes(t.db)).toEqual(['alice@example.test', 'bob@example.test', 'broken@example.test']);
      // What IMAP would say: alice's INBOX holds old mail (1..49, never pushed) and 50..55.
      const folders: Record<string, number[]> = {
        'alice@example.test': [...Array.from({ length: 49 }, (_, i) => i + 1), 50, 51, 52, 53, 55],
        'bob@example.test': [1, 2],
      };
      const source: UidSource = {
        async uidsAfter(mailbox, _folder, after) {
          const uids = folders[mailbox];
          if (!uids) throw new Error('IMAP master login refused');
          const uidNext = Math.max(...uids) + 1;
          const afterUid = await after({ uidValidity: UIDVALIDITY, uidNext });
          return { uidValidity: UIDVALIDITY, uidNext, afterUid, uids: uids.filter((u) => u > afterUid) };
        },
      };
      let woken = 0;
      const report = await reconcileOnce({ db: t.db, source, logger: silentLogger, batchSize: 2, owner: 'me', leaderLeaseMs: 60_000, onQueued: () => woken++ });
      expect(report).toEqual({ leader: true, mailboxes: 3, enqueued: 4, errors: 1 });
      expect(woken).toBeGreaterThan(0);
      const alice = (await all()).filter((j) => j.mailbox === 'alice@example.test').map((j) => [j.uid, j.source]);
      expect(alice).toEqual([
        [50, 'push'],
        [52, 'push'],
        [51, 'reconcile'],
        [53, 'reconcile'],
        [55, 'reconcile'],
      ]);
      // The cursor remembers: a second sweep finds only what arrived since.
      folders['alice@example.test']!.push(56);
      const again = await reconcileOnce({ db: t.db, source, logger: silentLogger, batchSize: 2, owner: 'me', leaderLeaseMs: 60_000 });
      expect(again.enqueued).toBe(1);
      const [bob2] = await t.db.orm.select().from(processingQueue).where(eq(processingQueue.uid, 2));
      expect(bob2).toMatchObject({ mailbox: 'bob@example.test', source: 'reconcile' });
    });

    it('with LLM_RETENTION_DAYS the leader purges old finished jobs after its sweep', async () => {
      await enqueueMany(t.db, [job(900, 'push', 'old@example.test'), job(901, 'push', 'old@example.test')]);
      await t.db.rows(sql`update llm_processing_queue set state = 'done', finished_at = now() - interval '10 days' where uid = 900`);
      const source: UidSource = { uidsAfter: async () => null };
      await reconcileOnce({ db: t.db, source, logger: silentLogger, batchSize: 2, owner: 'me', leaderLeaseMs: 60_000, retentionDays: 7 });
      const left = (await all()).filter((j) => j.mailbox === 'old@example.test').map((j) => j.uid);
      expect(left).toEqual([901]);
    });
  });
}

describeWith('PostgreSQL', pgUp)('wake-ups between instances', () => {
  it("a job queued by one instance wakes another instance's idle workers at once (LISTEN/NOTIFY)", async () => {
    const t = await openTestDb('postgres');
    const otherDb = openPostgres(t.url!);
    const handled: number[] = [];
    // Instance B: idle, and it would not poll again for a minute.
    const wakerB = new QueueWaker(otherDb, silentLogger);
    const poolB = new WorkerPool({
      db: otherDb,
      logger: silentLogger,
      handler: async (j) => (handled.push(j.uid), { state: 'done' }),
      concurrency: 1,
      batchSize: 5,
      leaseMs: 30_000,
      maxAttempts: 3,
      retryBaseMs: 10,
      retryMaxMs: 10,
      idlePollMs: 60_000,
    });
    const wakerA = new QueueWaker(t.db, silentLogger);
    try {
      await wakerB.subscribe(() => poolB.wake());
      poolB.start();
      await poolB.whenIdle();
      // Instance A receives a push.
      await enqueue(t.db, job(1));
      wakerA.signal();
      // Within seconds, not at B's next poll a minute from now.
      await waitFor(async () => handled.length, (n) => n === 1, 5_000);
      expect(handled).toEqual([1]);
    } finally {
      await poolB.stop(1000);
      await wakerA.close();
      await wakerB.close();
      await otherDb.close();
      await t.close();
    }
  });
});
