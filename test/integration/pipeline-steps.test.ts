import { and, asc, eq } from 'drizzle-orm';
import { sql } from 'drizzle-orm';
import { beforeEach, describe, expect, it } from 'vitest';
import { claim, finishMany } from '../../src/analysis/jobs.js';
import { createPipeline } from '../../src/analysis/pipeline.js';
import { followMessage } from '../../src/analysis/store.js';
import { auditLog, emailAnalysis, processingQueue } from '../../src/db/schema.js';
import type { MessageKey } from '../../src/domain/message-key.js';
import { protectionFor } from '../../src/privacy/protection.js';
import { updatePreferences } from '../../src/queries/preferences.js';
import { jobRunner, message, PHISH, pipelineTestbed, UIDVALIDITY } from '../support/pipeline-harness.js';
import { silentLogger, testConfig } from '../support/services.js';

/** The pipeline's every branch, driven step by step (support/pipeline-harness.ts), on PGlite. */

describe('the pipeline, step by step (fake mailbox, stand-in model, PGlite)', () => {
  const bed = pipelineTestbed('pglite');
  beforeEach(() => {
    bed.ollama.set({ mode: 'ok' });
  });

  const chats = () => bed.ollama.state.chats.length;

  // Each test's message stands alone: the PHISH messages (one sender, one link host) would form a
  // campaign, whose clean-up has its own tests (campaigns.test.ts).
  const run = jobRunner(bed);
  const runJob: typeof run = (key, config = {}, from) => run(key, { campaigns: { enabled: false }, ...config }, from);
  const row = async (key: MessageKey) =>
    (await bed.t.db.orm.select().from(emailAnalysis).where(and(eq(emailAnalysis.mailbox, key.mailbox), eq(emailAnalysis.folder, key.folder), eq(emailAnalysis.uid, key.uid))))[0];
  const trail = async (key: MessageKey) =>
    (await bed.t.db.orm.select().from(auditLog).where(and(eq(auditLog.mailbox, key.mailbox), eq(auditLog.uid, key.uid), eq(auditLog.folder, key.folder))).orderBy(asc(auditLog.id))).map((a) => a.action);
  const keyFor = (mb: string, uid: number, folder = 'INBOX'): MessageKey => ({ mailbox: mb, folder, uidvalidity: UIDVALIDITY, uid });

  it('analyses a message: fetch, parse, one model call, the row and the decision on record', async () => {
    const key = keyFor('steps@example.test', 1);
    bed.mailbox.put(key, message('ok-1', 'Lunch on Friday', 'Shall we have lunch on Friday at noon?'));
    const before = chats();
    const out = await runJob(key);
    expect(out).toMatchObject({ state: 'done', llmCalls: 1, cacheHit: false });
    expect(chats() - before).toBe(1);
    expect(await row(key)).toMatchObject({ status: 'analyzed', verdict: 'legit', model: 'llama3.2:3b', cacheHit: false });
    // The stand-in calls it personal: its category keyword, planned only (DRY_RUN is the default).
    expect(await trail(key)).toEqual(['analyzed', 'would_flag']);
  });

  it('already decided and on record: done at once, no fetch, no call', async () => {
    const key = keyFor('steps@example.test', 1);
    await bed.t.db.rows(sql`update llm_processing_queue set state = 'queued' where mailbox = ${key.mailbox} and uid = 1`);
    const before = chats();
    const [job] = await claim(bed.t.db, { workerId: 'w', limit: 1, leaseMs: 60_000 });
    expect(job).toMatchObject({ analysisStatus: 'analyzed', decisionRecorded: true });
    const handler = createPipeline({ db: bed.t.db, source: bed.mailbox, llm: { model: 'x' } as never, config: testConfig(), logger: silentLogger, protection: protectionFor(testConfig()) });
    expect(await handler(job!)).toEqual({ state: 'done', detail: 'already analysed', llmCalls: 0 });
    await finishMany(bed.t.db, 'w', [{ job: job!, state: 'done', error: null }]);
    expect(bed.mailbox.fetched).toEqual([]);
    expect(chats()).toBe(before);
  });

  it('the same content in another mailbox: the stored answer, no call (content cache)', async () => {
    const key = keyFor('other@example.test', 1);
    bed.mailbox.put(key, message('ok-1', 'Lunch on Friday', 'Shall we have lunch on Friday at noon?'));
    const before = chats();
    expect(await runJob(key)).toMatchObject({ state: 'done', llmCalls: 0, cacheHit: true });
    expect(chats()).toBe(before);
    expect(await row(key)).toMatchObject({ status: 'analyzed', cacheHit: true });
  });

  it('opted out: skipped, nothing stored, the pushed headers forgotten', async () => {
    const key = keyFor('optout@example.test', 1);
    await updatePreferences(bed.t.db, key.mailbox, { opt_out: true });
    bed.mailbox.put(key, message('oo-1', 'Hello', 'Hi.'));
    expect(await runJob(key)).toEqual({ state: 'skipped', detail: 'the user opted out', llmCalls: 0 });
    expect(await row(key)).toBeUndefined();
    expect(bed.mailbox.fetched).toEqual([]);
  });

  it('auto_analysis off: recorded as skipped, not fetched; an API request still analyses', async () => {
    const key = keyFor('manual@example.test', 1);
    await updatePreferences(bed.t.db, key.mailbox, { auto_analysis: false });
    bed.mailbox.put(key, message('man-1', 'Report', 'The quarterly report is attached.'));
    expect(await runJob(key)).toMatchObject({ state: 'skipped', detail: 'auto_analysis is off for this mailbox', llmCalls: 0 });
    expect(await row(key)).toMatchObject({ status: 'skipped', skipReason: 'auto_analysis is off for this mailbox' });
    expect(bed.mailbox.fetched).toEqual([]);
    const asked = keyFor('manual@example.test', 2);
    bed.mailbox.put(asked, message('man-2', 'Report 2', 'The second report.'));
    expect(await runJob(asked, {}, 'api')).toMatchObject({ state: 'done', llmCalls: 1 });
  });

  it("a folder the server marks \\Junk: skipped by its SPECIAL-USE flag before any fetch", async () => {
    const key = keyFor('steps@example.test', 1, 'Quarantine');
    bed.mailbox.flags.set('Quarantine', ['\\Junk']);
    bed.mailbox.put(key, message('q-1', 'Offer', 'Cheap watches.'));
    expect(await runJob(key)).toMatchObject({ state: 'skipped', detail: expect.stringContaining('FOLDERS_EXCLUDE \\Junk'), llmCalls: 0 });
    expect(bed.mailbox.fetched).toEqual([]);
  });

  it('a message gone from the folder, or under a new UIDVALIDITY: gone and stale, no call', async () => {
    const before = chats();
    expect(await runJob(keyFor('steps@example.test', 40))).toMatchObject({ state: 'gone', llmCalls: 0 });
    const stale = keyFor('steps@example.test', 41);
    bed.mailbox.put(stale, message('st-1', 'Old', 'Old.'), UIDVALIDITY + 1);
    expect(await runJob(stale)).toMatchObject({ state: 'stale', detail: `UIDVALIDITY of INBOX is now ${UIDVALIDITY + 1}, was ${UIDVALIDITY}`, llmCalls: 0 });
    expect(chats()).toBe(before);
  });

  it('a skip rule settles the message on its signals: the rule and its verdict are stored, no call', async () => {
    const key = keyFor('steps@example.test', 2);
    bed.mailbox.put(key, message('r-1', 'Invoice', 'Invoice attached.', 'Partner <billing@partner.example>'));
    const before = chats();
    const rules = [{ name: 'allow-partner', match: { from: ['*@partner.example'] }, action: 'skip', verdict: 'legit' }];
    expect(await runJob(key, { rules })).toMatchObject({ state: 'skipped', detail: 'rule allow-partner', llmCalls: 0 });
    expect(chats()).toBe(before);
    expect(await row(key)).toMatchObject({ status: 'skipped', rule: 'allow-partner', verdict: 'legit', verdictSource: 'rule' });
    expect(await trail(key)).toEqual(['skipped', 'kept']);
  });

  it('load shedding: while the queue is behind, the summary is left out and says so', async () => {
    // Catch-up work has waited an hour (claimed after pushed mail: priority 2).
    await bed.t.db.rows(sql`insert into llm_processing_queue (mailbox, folder, uidvalidity, uid, source, priority, run_at) values ('behind@example.test', 'INBOX', 1, 1, 'backfill', 2, now() - interval '1 hour')`);
    const key = keyFor('steps@example.test', 3);
    bed.mailbox.put(key, message('sh-1', 'Team meeting moved', 'The team meeting moves to Thursday.'));
    expect(await runJob(key, { processing: { shedAfterSec: 60 } })).toMatchObject({ state: 'done', llmCalls: 1 });
    expect(await row(key)).toMatchObject({ status: 'analyzed', summary: null, leftOut: ['summary'] });
    await bed.t.db.rows(sql`delete from llm_processing_queue where mailbox = 'behind@example.test'`);
  });

  it('a model whose output stays unusable: failed with the reason, the floor verdict kept', async () => {
    const key = keyFor('steps@example.test', 4);
    // Strong deterministic evidence (DMARC failed, a sign-in link to a foreign site): the floor says phishing.
    bed.mailbox.put(
      key,
      [
        'From: Bank <noreply@bank.example>',
        'To: someone@example.test',
        'Subject: Shared document',
        'Message-ID: <mf-1@example.net>',
        'Authentication-Results: mx.example.test; spf=fail smtp.mailfrom=bank.example; dmarc=fail header.from=bank.example',
        'Content-Type: text/html; charset=utf-8',
        '',
        '<p>A document was shared with you.</p><p><a href="https://docs-share.example/auth">Sign in to view the document</a></p>',
        '',
      ].join('\r\n'),
    );
    bed.ollama.set({ mode: 'invalid-json' });
    const out = await runJob(key);
    expect(out).toMatchObject({ state: 'failed', llmCalls: 1 });
    expect(await row(key)).toMatchObject({ status: 'failed', error: out.detail, verdict: 'phishing' });
    expect(await trail(key)).toEqual(['error']);
  });

  it('a model that is down: the job throws (the worker retries it), nothing stored', async () => {
    const key = keyFor('steps@example.test', 5);
    bed.mailbox.put(key, message('down-1', 'Down', 'Nobody home.'));
    bed.ollama.set({ mode: 'fail' });
    await expect(runJob(key)).rejects.toMatchObject({ transient: true });
    expect(await row(key)).toBeUndefined();
    await bed.t.db.rows(sql`delete from llm_processing_queue where mailbox = ${key.mailbox} and uid = 5`);
  });

  it('DRY_RUN: the actions are planned and recorded, the mailbox is not touched', async () => {
    const key = keyFor('steps@example.test', 6);
    bed.mailbox.put(key, PHISH('dry-1'));
    const out = await runJob(key, { dryRun: true });
    expect(out).toMatchObject({ state: 'done', llmCalls: 1 });
    expect(bed.mailbox.acted).toEqual([]);
    expect(await trail(key)).toEqual(['analyzed', 'would_flag', 'would_move']);
    expect(await row(key)).toMatchObject({ verdict: 'phishing', movedToFolder: null });
  });

  it('acting: keywords and the move to Junk, recorded on the row and at once in the trail', async () => {
    const key = keyFor('steps@example.test', 7);
    bed.mailbox.put(key, PHISH('act-1'));
    const out = await runJob(key, { dryRun: false });
    expect(out).toMatchObject({ state: 'done', llmCalls: 1, records: [] });
    expect(bed.mailbox.acted).toHaveLength(1);
    expect(bed.mailbox.acted[0]!.plan).toMatchObject({ moveToJunk: true, keywords: expect.arrayContaining(['$Junk', '$Phishing']) });
    expect(await row(key)).toMatchObject({ verdict: 'phishing', movedToFolder: 'Junk', movedToUid: 77 });
    expect(await trail(key)).toEqual(['analyzed', 'flagged', 'moved']);
  });

  it("the sweep finds a message the user dragged back out of Junk (no push with the OX driver): it follows its analysis, no call, no move, and it is the user's word", async () => {
    const key = keyFor('rescue@example.test', 1);
    bed.mailbox.put(key, PHISH('rescue-1'));
    expect(await runJob(key, { dryRun: false })).toMatchObject({ state: 'done', llmCalls: 1 });
    expect(await row(key)).toMatchObject({ verdict: 'phishing', movedToFolder: 'Junk', movedToUid: 71 });
    // The user's drag: Junk 71 -> INBOX 9, which only the sweep sees.
    const back = keyFor('rescue@example.test', 9);
    bed.mailbox.move(keyFor('rescue@example.test', 71, 'Junk'), back);
    bed.mailbox.acted.length = 0;
    const before = chats();
    const out = await runJob(back, { dryRun: false }, 'reconcile');
    expect(out).toMatchObject({ state: 'done', llmCalls: 0 });
    expect(out.detail).toBe('followed the analysis of INBOX UID 1: moved or copied here by the user, who said legit');
    expect(chats()).toBe(before);
    expect(bed.mailbox.acted).toEqual([]);
    expect(await row(back)).toMatchObject({ verdict: 'phishing', cacheHit: true });
    const [fb] = await bed.t.db.rows<{ said: string; how: string; verdict: string }>(sql`select said, how, verdict from llm_feedback where mailbox = 'rescue@example.test'`);
    expect(fb).toEqual({ said: 'legit', how: 'move', verdict: 'phishing' });
  });

  it('the sweep finds a second copy of a message whose first is still in Junk: new mail, judged and moved', async () => {
    const key = keyFor('twice@example.test', 1);
    bed.mailbox.put(key, PHISH('twice-1'));
    await runJob(key, { dryRun: false });
    const again = keyFor('twice@example.test', 2);
    bed.mailbox.put(again, PHISH('twice-1'));
    bed.mailbox.acted.length = 0;
    expect(await runJob(again, { dryRun: false }, 'reconcile')).toMatchObject({ state: 'done', cacheHit: true });
    expect(bed.mailbox.acted).toHaveLength(1);
    expect(await row(again)).toMatchObject({ verdict: 'phishing', movedToFolder: 'Junk' });
  });

  it('a message the user moved is never queued again by the sweep: following it leaves a finished queue row', async () => {
    const key = keyFor('moved@example.test', 1);
    bed.mailbox.put(key, message('moved-1', 'Notes', 'The notes from today.'));
    await runJob(key);
    const there = keyFor('moved@example.test', 5, 'Archive');
    expect(await followMessage(bed.t.db, there, '<moved-1@example.net>')).toMatchObject({ kind: 'followed' });
    const [q] = await bed.t.db.orm.select().from(processingQueue).where(and(eq(processingQueue.mailbox, there.mailbox), eq(processingQueue.folder, 'Archive')));
    expect(q).toMatchObject({ state: 'done', source: 'push', uid: 5, lastError: 'followed the analysis of INBOX UID 1' });
  });
});
