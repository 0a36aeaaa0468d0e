import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertAnalysis } from '../../src/analysis/store.js';
import { openPostgres, txRows } from '../../src/db/client.js';
import { ensurePartitions, partitionsOf } from '../../src/db/partitions.js';
import { writeAudit } from '../../src/analysis/audit.js';
import { eraseMailbox } from '../../src/queries/erase.js';
import { purgeExpired, retentionCutoff } from '../../src/queue/retention.js';
import { expectRollupsExact } from '../support/rollups.js';
import { seedAnalysis } from '../support/seed.js';
import { DRIVERS, describeWith, openTestDb, postgresAvailable, type TestDb } from '../support/services.js';

/**
 * Analyses and audit entries live in monthly partitions (drizzle/0015): months are made ahead of
 * time (across a year end too), a message keeps one row whichever month holds it, and retention
 * removes whole UTC days, dropping the months wholly past its cutoff, with the rollups kept exact.
 */

const pgUp = await postgresAvailable();
const MAILBOXES = ['p@example.test', 'q@example.test'];
const DAY_MS = 86_400_000;
const key = (mailbox: string, uid: number) => ({ mailbox, folder: 'INBOX', uidvalidity: 7, uid });

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`monthly partitions on ${driver}`, () => {
    let t: TestDb;
    let uid = 0;
    beforeAll(async () => {
      t = await openTestDb(driver);
    });
    afterAll(async () => t?.close());

    const where = async (k: ReturnType<typeof key>) =>
      (await t.db.rows<{ part: string }>(sql`select tableoid::regclass::text as part from llm_email_analysis where mailbox = ${k.mailbox} and uid = ${k.uid}`)).map((r) => r.part);

    /** An analysis created at `at` (written by the pipeline's store, then dated: the row moves to its month). */
    async function analysisAt(mailbox: string, at: Date, over = {}) {
      const k = key(mailbox, ++uid);
      await seedAnalysis(t.db, k, over);
      await t.db.rows(sql`update llm_email_analysis set created_at = ${at.toISOString()}::timestamptz where mailbox = ${mailbox} and uid = ${k.uid}`);
      await writeAudit(t.db, { ...k, action: 'analyzed', reason: 'test' });
      await t.db.rows(sql`update llm_audit_log set at = ${at.toISOString()}::timestamptz where mailbox = ${mailbox} and uid = ${k.uid}`);
      return k;
    }

    it('makes this month and the next two at migration, and the months ahead across a year end', async () => {
      const names = (await partitionsOf(t.db.rows.bind(t.db), 'llm_email_analysis')).map((p) => p.name);
      const month = (plus: number) => {
        const d = new Date();
        const m = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + plus, 1));
        return `llm_email_analysis_p${m.getUTCFullYear()}${String(m.getUTCMonth() + 1).padStart(2, '0')}`;
      };
      expect(names).toEqual(expect.arrayContaining([month(0), month(1), month(2), 'llm_email_analysis_default']));

      // Mid-December 2031: December, January and February, for both tables; asked again, nothing new.
      const made = await ensurePartitions(t.db, new Date('2031-12-15T12:00:00Z'));
      expect(made.sort()).toEqual(
        ['llm_audit_log_p203112', 'llm_audit_log_p203201', 'llm_audit_log_p203202', 'llm_email_analysis_p203112', 'llm_email_analysis_p203201', 'llm_email_analysis_p203202'].sort(),
      );
      expect(await ensurePartitions(t.db, new Date('2031-12-31T23:59:59.999Z'))).toEqual([]);
      // Each instant lands in its own UTC month, on either side of the new year.
      const last = await analysisAt(MAILBOXES[0]!, new Date('2031-12-31T23:59:59.999Z'));
      const first = await analysisAt(MAILBOXES[0]!, new Date('2032-01-01T00:00:00.000Z'));
      expect(await where(last)).toEqual(['llm_email_analysis_p203112']);
      expect(await where(first)).toEqual(['llm_email_analysis_p203201']);
      await expectRollupsExact(t.db, 'across the year end', MAILBOXES);
    });

    it('moves what the default partition caught into its month when the month is made', async () => {
      const early = await analysisAt(MAILBOXES[1]!, new Date('2032-05-20T08:00:00Z'));
      expect(await where(early)).toEqual(['llm_email_analysis_default']);
      const before = await t.db.rows(sql`select * from llm_stats_daily where mailbox = ${MAILBOXES[1]} order by day, status, verdict, category`);
      expect(await ensurePartitions(t.db, new Date('2032-05-01T00:00:00Z'))).toContain('llm_email_analysis_p203205');
      expect(await where(early)).toEqual(['llm_email_analysis_p203205']);
      const audit = await t.db.rows<{ part: string }>(sql`select tableoid::regclass::text as part from llm_audit_log where mailbox = ${MAILBOXES[1]} and uid = ${early.uid}`);
      expect(audit.map((r) => r.part)).toEqual(['llm_audit_log_p203205']);
      // Moved, not written: the rollups did not change.
      expect(await t.db.rows(sql`select * from llm_stats_daily where mailbox = ${MAILBOXES[1]} order by day, status, verdict, category`)).toEqual(before);
      await expectRollupsExact(t.db, 'moved out of the default partition', MAILBOXES);
    });

    it('keeps one row per message whichever month holds it: a re-analysis replaces the row in its old month', async () => {
      const old = await analysisAt(MAILBOXES[0]!, new Date(Date.now() - 70 * DAY_MS), { verdict: 'legit' });
      const [row] = await t.db.rows<{ id: number; created_at: Date }>(sql`select id, created_at from llm_email_analysis where mailbox = ${old.mailbox} and uid = ${old.uid}`);
      await seedAnalysis(t.db, old, { verdict: 'phishing', isPhishing: true });
      const rows = await t.db.rows<{ id: number; created_at: Date; verdict: string }>(sql`
        select id, created_at, verdict from llm_email_analysis where mailbox = ${old.mailbox} and uid = ${old.uid}`);
      expect(rows).toEqual([{ id: row!.id, created_at: row!.created_at, verdict: 'phishing' }]);
      // Writers racing on one new key (a retry beside a forced re-analysis): still one row.
      const racing = key(MAILBOXES[1]!, ++uid);
      await Promise.all(Array.from({ length: 8 }, (_, i) => upsertAnalysis(t.db, { ...racing, status: 'analyzed', verdict: i % 2 ? 'spam' : 'legit', model: 'm' })));
      const [n] = await t.db.rows<{ n: number }>(sql`select count(*)::int as n from llm_email_analysis where mailbox = ${racing.mailbox} and uid = ${racing.uid}`);
      expect(n!.n).toBe(1);
      await expectRollupsExact(t.db, 'replaced across months', MAILBOXES);
    });

    it('removes whole UTC days past the limit: the row a millisecond before the cutoff goes, the one at the cutoff stays; whole months are dropped', async () => {
      const days = 40;
      const cutoff = retentionCutoff(days);
      expect(cutoff.getTime() % DAY_MS).toBe(0);
      expect(Date.now() - cutoff.getTime()).toBeGreaterThanOrEqual(days * DAY_MS);
      expect(Date.now() - cutoff.getTime()).toBeLessThan((days + 1) * DAY_MS);
      // Months from five before the cutoff, so that some lie wholly before it.
      await ensurePartitions(t.db, new Date(cutoff.getTime() - 150 * DAY_MS));
      await ensurePartitions(t.db, new Date(cutoff.getTime() - 60 * DAY_MS));
      await ensurePartitions(t.db, cutoff);
      const gone = [
        await analysisAt(MAILBOXES[0]!, new Date(cutoff.getTime() - 1)),
        await analysisAt(MAILBOXES[0]!, new Date(cutoff.getTime() - 100 * DAY_MS), { verdict: 'phishing', isPhishing: true }),
        await analysisAt(MAILBOXES[1]!, new Date(cutoff.getTime() - 130 * DAY_MS)),
        // Older than any month made: the default partition holds it.
        await analysisAt(MAILBOXES[1]!, new Date('2019-03-03T03:03:03Z')),
      ];
      const kept = [await analysisAt(MAILBOXES[0]!, cutoff), await analysisAt(MAILBOXES[1]!, new Date(cutoff.getTime() + 1))];
      const monthsBefore = (await partitionsOf(t.db.rows.bind(t.db), 'llm_email_analysis')).filter((p) => p.to && p.to <= cutoff).map((p) => p.name);
      expect(monthsBefore.length).toBeGreaterThanOrEqual(3);

      const purged = await purgeExpired(t.db, days);
      expect(purged.analyses).toBeGreaterThanOrEqual(gone.length);
      expect(purged.audit).toBeGreaterThanOrEqual(gone.length);
      for (const k of gone) expect(await where(k), `uid ${k.uid}`).toEqual([]);
      for (const k of kept) expect(await where(k), `uid ${k.uid}`).toHaveLength(1);
      const [oldest] = await t.db.rows<{ a: Date | null; b: Date | null }>(sql`
        select (select min(created_at) from llm_email_analysis) as a, (select min(at) from llm_audit_log) as b`);
      expect(new Date(oldest!.a!).getTime()).toBeGreaterThanOrEqual(cutoff.getTime());
      expect(new Date(oldest!.b!).getTime()).toBeGreaterThanOrEqual(cutoff.getTime());
      // Every month wholly before the cutoff is gone, of both tables; the rollups equal the rows left.
      const left = [...(await partitionsOf(t.db.rows.bind(t.db), 'llm_email_analysis')), ...(await partitionsOf(t.db.rows.bind(t.db), 'llm_audit_log'))];
      expect(left.filter((p) => p.to && p.to <= cutoff)).toEqual([]);
      expect(purged.partitions).toBe(monthsBefore.length * 2);
      const [stale] = await t.db.rows<{ n: number }>(sql`
        select (select count(*) from llm_stats_daily where day < ${cutoff.toISOString().slice(0, 10)}::date)::int
             + (select count(*) from llm_stats_server_daily where day < ${cutoff.toISOString().slice(0, 10)}::date)::int as n`);
      expect(stale!.n).toBe(0);
      await expectRollupsExact(t.db, 'after retention', MAILBOXES);
      // Nothing more to do on the same day.
      expect(await purgeExpired(t.db, days)).toEqual({ analyses: 0, queue: 0, audit: 0, feedback: 0, partitions: 0 });
    });

    it('erases a mailbox from every month and the default partition', async () => {
      const m = 'erase-me@example.test';
      await ensurePartitions(t.db, new Date(Date.now() - 35 * DAY_MS));
      for (const at of [new Date(), new Date(Date.now() - 35 * DAY_MS), new Date('2018-01-01T00:00:00Z')]) await analysisAt(m, at);
      const { deleted } = await eraseMailbox(t.db, m);
      expect(deleted).toMatchObject({ analyses: 3, audit: 3 });
      const [n] = await t.db.rows<{ n: number }>(sql`
        select (select count(*) from llm_email_analysis where mailbox = ${m})::int + (select count(*) from llm_audit_log where mailbox = ${m})::int as n`);
      expect(n!.n).toBe(0);
      await expectRollupsExact(t.db, 'erased', MAILBOXES);
    });

    if (driver === 'postgres') {
      it('when a month cannot be dropped now (a long reader holds the table), removes the days of the boundary month and keeps the rollups exact', async () => {
        const days = 10;
        const cutoff = retentionCutoff(days);
        await ensurePartitions(t.db, new Date(cutoff.getTime() - 45 * DAY_MS));
        const wholeMonth = await analysisAt(MAILBOXES[0]!, new Date(Date.UTC(cutoff.getUTCFullYear(), cutoff.getUTCMonth() - 1, 10)));
        const boundary = await analysisAt(MAILBOXES[1]!, new Date(cutoff.getTime() - 1));
        const reader = openPostgres(t.url!, { max: 1 });
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let holding!: () => void;
        const started = new Promise<void>((r) => (holding = r));
        const reading = reader.orm.transaction(async (tx) => {
          await txRows(tx, sql`select count(*) from llm_email_analysis`);
          holding();
          await held;
        });
        try {
          await started;
          const purged = await purgeExpired(t.db, days);
          expect(purged.partitions).toBe(0);
          expect(await where(boundary)).toEqual([]);
          expect(await where(wholeMonth)).toHaveLength(1);
          await expectRollupsExact(t.db, 'months kept for now', MAILBOXES);
        } finally {
          release();
          await reading;
          await reader.close();
        }
        // The next pass drops them.
        const next = await purgeExpired(t.db, days);
        expect(next.partitions).toBeGreaterThan(0);
        expect(await where(wholeMonth)).toEqual([]);
        await expectRollupsExact(t.db, 'months dropped later', MAILBOXES);
      });
    }
  });
}

describe('retentionCutoff', () => {
  it('is the start of a UTC day, whole days back', () => {
    const now = new Date('2027-01-01T00:30:00Z');
    expect(retentionCutoff(1, now).toISOString()).toBe('2026-12-31T00:00:00.000Z');
    expect(retentionCutoff(30, now).toISOString()).toBe('2026-12-02T00:00:00.000Z');
    expect(retentionCutoff(30, new Date('2027-01-01T00:00:00Z')).toISOString()).toBe('2026-12-02T00:00:00.000Z');
  });
});
