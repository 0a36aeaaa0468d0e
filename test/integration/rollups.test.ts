import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { eraseMailbox } from '../../src/queries/erase.js';
import { rebuildRollups } from '../../src/db/rollups.js';
import { getStats, mailboxSummaries } from '../../src/queries/stats.js';
import { expectRollupsExact } from '../support/rollups.js';
import { expireContent, purgeExpired } from '../../src/queue/retention.js';
import { compactQueueCounts, queueStateCounts } from '../../src/queue/queue-counts.js';
import { enqueue, enqueueMany } from '../../src/queue/jobs.js';
import { claim, finishMany } from '../../src/analysis/jobs.js';
import { extendLeases, retry } from '../../src/queue/lifecycle.js';
import { seedAnalysis } from '../support/seed.js';
import { DRIVERS, describeWith, openTestDb, postgresAvailable, type TestDb } from '../support/services.js';

/**
 * The stats rollups against full scans of llm_email_analysis, on random data and after every kind
 * of write the service makes (insert, replace, moves across days, deletes, retention, erase, content
 * expiry): the counts must be equal, not close.
 */

const MAILBOXES = ['a@example.test', 'b@example.test', 'c@example.test', 'd@example.test'];
const STATUSES = ['analyzed', 'analyzed', 'analyzed', 'skipped', 'failed'] as const;
const VERDICTS = ['legit', 'spam', 'scam', 'phishing', 'unknown', null] as const;
const CATEGORIES = ['work', 'personal', 'newsletter', 'security', null] as const;

/** A small seeded generator, so a failure can be replayed. */
function random(seed: number) {
  let x = seed;
  const next = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  return { next, pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]! };
}

const pgUp = await postgresAvailable();

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`stats rollups on ${driver}`, () => {
    let t: TestDb;
    const rnd = random(20261130);
    let uid = 0;

    beforeAll(async () => {
      t = await openTestDb(driver);
    });
    afterAll(async () => t?.close());

    const expectExact = (step: string) => expectRollupsExact(t.db, step, MAILBOXES);

    const randomAnalysis = (mailbox: string, u: number) => {
      const verdict = rnd.pick(VERDICTS);
      return seedAnalysis(t.db, { mailbox, folder: 'INBOX', uidvalidity: 1, uid: u }, {
        status: rnd.pick(STATUSES),
        verdict,
        isPhishing: verdict === 'phishing',
        category: rnd.pick(CATEGORIES),
        cacheHit: rnd.next() < 0.2,
        promptTokens: rnd.next() < 0.1 ? null : Math.floor(rnd.next() * 1000),
        completionTokens: Math.floor(rnd.next() * 100),
        llmMs: rnd.next() < 0.05 ? null : Math.floor(rnd.next() ** 2 * 20_000),
      });
    };

    it('after inserts, and after rows move across days (updates of created_at)', async () => {
      for (let i = 0; i < 240; i++) await randomAnalysis(rnd.pick(MAILBOXES), ++uid);
      await expectExact('inserted');
      // One statement moving many rows to random days up to 12 days back, across UTC midnights.
      await t.db.rows(sql`update llm_email_analysis set created_at = now() - (random() * 12 * 86400) * interval '1 second' where id % 3 <> 0`);
      await expectExact('moved');
    });

    it('after replacements (a re-analysis changes status, verdict and category), deletes and content expiry', async () => {
      for (let i = 0; i < 60; i++) await randomAnalysis(rnd.pick(MAILBOXES), 1 + Math.floor(rnd.next() * uid));
      await expectExact('replaced');
      await t.db.rows(sql`delete from llm_email_analysis where id % 7 = 0`);
      await expectExact('deleted');
      await expireContent(t.db, 5);
      await expectExact('content expired');
    });

    it('after retention, and after a mailbox is erased (its summary row goes)', async () => {
      const purged = await purgeExpired(t.db, 6);
      expect(purged.analyses).toBeGreaterThan(0);
      await expectExact('retention');
      await eraseMailbox(t.db, MAILBOXES[1]!);
      await expectExact('erased');
      expect((await mailboxSummaries(t.db)).map((m) => m.mailbox)).not.toContain(MAILBOXES[1]);
      // The newest analysis of a mailbox deleted: its summary's newest is the one before.
      await t.db.rows(sql`delete from llm_email_analysis where id = (select id from llm_email_analysis where mailbox = ${MAILBOXES[0]} order by created_at desc limit 1)`);
      await expectExact('newest deleted');
      // A rebuild (after a bulk load with the triggers off) gives what the triggers kept.
      const kept = async () => [
        await t.db.rows(sql`select * from llm_stats_daily order by 1, 2, 3, 4, 5`),
        await t.db.rows(sql`select * from llm_stats_server_daily order by 1, 2, 3, 4`),
        await t.db.rows(sql`select * from llm_stats_mailbox order by 1`),
      ];
      const before = await kept();
      await rebuildRollups(t.db);
      expect(await kept()).toEqual(before);
      await expectExact('rebuilt');
    });
  });
}

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`queue counts on ${driver}`, () => {
    let t: TestDb;
    beforeAll(async () => {
      t = await openTestDb(driver);
    });
    afterAll(async () => t?.close());

    const scanned = async () =>
      Object.fromEntries((await t.db.rows<{ state: string; n: string }>(sql`select state, count(*) as n from llm_processing_queue group by state`)).map((r) => [r.state, Number(r.n)]));

    it('equal a count of the queue after pushes, duplicates, claims, ends, retries, deletes and compaction', async () => {
      const key = (m: string, uid: number) => ({ mailbox: m, folder: 'INBOX', uidvalidity: 1, uid, source: 'push' as const });
      await enqueueMany(t.db, Array.from({ length: 50 }, (_, i) => key(MAILBOXES[i % 4]!, i + 1)));
      await enqueue(t.db, key(MAILBOXES[0]!, 1)); // a duplicate push changes no count
      expect(await queueStateCounts(t.db)).toEqual(await scanned());
      const jobs = await claim(t.db, { workerId: 'w', limit: 20, leaseMs: 60_000 });
      expect(await queueStateCounts(t.db)).toEqual({ ...(await scanned()) });
      expect((await queueStateCounts(t.db)).processing).toBe(20);
      await extendLeases(t.db, jobs.map((j) => j.id), 'w', 60_000);
      await finishMany(t.db, 'w', jobs.slice(0, 10).map((j, i) => ({ job: j, state: i % 3 ? ('done' as const) : ('failed' as const), error: null })));
      await retry(t.db, jobs[10]!, 'later', 1_000);
      expect(await queueStateCounts(t.db)).toEqual(await scanned());
      const before = (await t.db.rows<{ n: string }>(sql`select count(*) as n from llm_queue_counts`))[0]!.n;
      expect(await compactQueueCounts(t.db)).toBe(Number(before));
      expect(Number((await t.db.rows<{ n: string }>(sql`select count(*) as n from llm_queue_counts`))[0]!.n)).toBeLessThanOrEqual(4);
      expect(await queueStateCounts(t.db)).toEqual(await scanned());
      await eraseMailbox(t.db, MAILBOXES[2]!);
      await t.db.rows(sql`delete from llm_processing_queue where state = 'done'`);
      expect(await queueStateCounts(t.db)).toEqual(await scanned());
      // What /stats shows for the whole server is the same.
      const stats = await getStats(t.db, { mailbox: null });
      expect(stats.queue.by_state).toEqual(await scanned());
      const all = await scanned();
      expect(stats.queue.depth).toBe((all.queued ?? 0) + (all.processing ?? 0));
    });
  });
}
