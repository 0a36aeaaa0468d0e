// A year of a big server's mail (issue: ten million analyses): `npm run bench data`.
// Builds the data set straight in Postgres with generate_series (not through the pipeline), then
// times each request, page and maintenance step on it. Sizes: BENCH_DATA_ROWS (default
// 1,000,000,10,000,000: each size in turn, in one run, so the ratio between them is of one run).
import { sql } from 'drizzle-orm';
import { claim } from '../src/analysis/jobs.js';
import { createApp } from '../src/app.js';
import { openPostgres, type Db } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { createLogger } from '../src/logger.js';
import { eraseMailbox } from '../src/queries/erase.js';
import { rebuildRollups } from '../src/db/rollups.js';
import { claim as claimJobs, nextCursor, release, type ClaimCursor } from '../src/queue/lifecycle.js';
import { knownMailboxes } from '../src/queue/reconcile.js';
import { purgeExpired } from '../src/queue/retention.js';
import { ensurePartitions, monthStart } from '../src/db/partitions.js';
import { createTestDatabase, testConfig } from '../test/support/services.js';
import { adminClient } from './admin-client.js';
import { percentile, table, writeResult } from './lib.js';

const SIZES = (process.env.BENCH_DATA_ROWS ?? '1000000,10000000').split(',').map(Number);
const MAILBOXES = Number(process.env.BENCH_DATA_MAILBOXES ?? 10_000);
const DAYS = 365;
const DAY_MS = 86_400_000;
/** Queued jobs at the largest size (1 million at 10 million analyses), in proportion below it. */
const QUEUED_PER_ANALYSIS = 0.1;
/** Runs per case. At 30, one slow run in 30 made a p95: the ratios between sizes were mostly noise. */
const REPEAT = Number(process.env.BENCH_DATA_REPEAT ?? 100);
const ADMIN = 'bench-admin-key-0123456789';
const PUSH_PASSWORD = 'bench-push-secret';

const mailbox = (i: number) => `u${i}@example.test`;

/**
 * Analyses over MAILBOXES mailboxes and DAYS days, oldest first. Mixes like the SpamAssassin
 * corpus's (about a third spam), and sealed content as ENCRYPTION_KEY leaves it: the text columns
 * empty, base64 blobs of the usual length in sealed_headers and sealed_content.
 */
export async function build(db: Db, rows: number): Promise<number> {
  const t0 = performance.now();
  const step = `${(DAYS * 86_400) / rows} seconds`;
  // The months a year of service would have made as it went (the migration made this one and the next two).
  for (let i = 13; i > 0; i--) await ensurePartitions(db, monthStart(new Date(), -i));
  // A bulk load: the rollup triggers are off during it, and the rollups are computed once after.
  await db.rows(sql`alter table llm_email_analysis disable trigger user`);
  await db.rows(sql`
    insert into llm_email_analysis (mailbox, folder, uidvalidity, uid, message_id, status, category, tags, verdict, confidence,
      reasons, is_spam, is_phishing, phishing_score, verdict_source, priority, sensitive, language, signals, signal_reasons,
      sealed_headers, sealed_content, key_id, model, prompt_version, content_hash, cache_hit, prompt_tokens, completion_tokens,
      fetch_ms, llm_ms, total_ms, size_bytes, created_at, updated_at)
    select 'u' || (g % ${MAILBOXES}) || '@example.test', 'INBOX', 1, g / ${MAILBOXES} + 1, '<' || g || '@bench.example>',
      case when g % 97 = 0 then 'skipped' when g % 211 = 0 then 'failed' else 'analyzed' end,
      (array['work','personal','newsletter','marketing','finance','security','social','other'])[1 + g % 8], '{}'::text[],
      (array['legit','legit','legit','legit','legit','legit','spam','spam','spam','phishing','scam','unknown'])[1 + g % 12], 0.85,
      '[]'::jsonb, g % 12 in (6, 7, 8, 10), g % 12 = 9, case when g % 12 = 9 then 0.9 else 0.05 end, 'model', 1 + g % 10,
      case when g % 23 = 0 then '["credentials"]'::jsonb else '[]'::jsonb end, 'en',
      '{"links": 3, "auth": {"spf": "pass", "dkim": "pass", "dmarc": "pass"}}'::jsonb, '[]'::jsonb,
      'v1:k1:' || repeat('QUJD', 50), 'v1:k1:' || repeat('QUJD', 160), 'k1', 'llama3.2:3b', '2026-11-30.1', md5(g::text),
      g % 9 = 0, 900 + g % 400, 120 + g % 50, 5 + g % 20, 800 + g % 900, 850 + g % 950, 3000 + g % 40000,
      now() - (${rows} - g) * ${step}::interval, now() - (${rows} - g) * ${step}::interval
    from generate_series(1, ${rows}) g`);
  await db.rows(sql`alter table llm_email_analysis enable trigger user`);
  await rebuildRollups(db);
  // Two audit entries per analysis, as the pipeline writes them: the decision, and kept (or an action).
  await db.rows(sql`
    insert into llm_audit_log (mailbox, folder, uidvalidity, uid, message_id, verdict, confidence, action, reason, at)
    select a.mailbox, a.folder, a.uidvalidity, a.uid, a.message_id, a.verdict, a.confidence, x.action, 'verdict by the model', a.created_at
      from llm_email_analysis a
      cross join (values ('analyzed'), ('kept')) as x(action)`);
  const queued = Math.round(rows * QUEUED_PER_ANALYSIS);
  await db.rows(sql`
    insert into llm_processing_queue (mailbox, folder, uidvalidity, uid, state, source, priority, created_at, updated_at, run_at)
    select 'u' || (g % ${MAILBOXES}) || '@example.test', 'INBOX', 1, 10000000 + g, 'queued', 'backfill', 2, now(), now(), now()
      from generate_series(1, ${queued}) g`);
  await db.rows(sql`vacuum analyze llm_email_analysis`);
  await db.rows(sql`vacuum analyze llm_audit_log`);
  await db.rows(sql`vacuum analyze llm_processing_queue`);
  await db.rows(sql`vacuum analyze llm_stats_daily`);
  await db.rows(sql`vacuum analyze llm_stats_mailbox`);
  return (performance.now() - t0) / 1000;
}

/**
 * p50 and p95 of `fn` over `n` runs, after two untimed ones. When `fn` returns a function, that is
 * run untimed after each run (putting back what the measured step changed).
 */
async function timed(n: number, fn: () => Promise<unknown>) {
  return (await alternated(n, [fn], 1))[0]!;
}

function benchApp(db: Db) {
  const config = testConfig({ apiKey: ADMIN, push: { username: 'dovecot', password: PUSH_PASSWORD } });
  return createApp({ config, db, logger: createLogger('silent'), pushCredentials: { username: 'dovecot', password: PUSH_PASSWORD, generated: false } });
}

/** One push of a new message for `user`, as Dovecot's OX driver sends it. */
function pusher(app: ReturnType<typeof benchApp>, user: string) {
  const auth = `Basic ${Buffer.from(`dovecot:${PUSH_PASSWORD}`).toString('base64')}`;
  // UIDs above every analysed and queued one, under the same UIDVALIDITY.
  let uid = 100_000_000;
  return async () => {
    const res = await app.request('/push/dovecot', {
      method: 'PUT',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: JSON.stringify({ user, event: 'messageNew', folder: 'INBOX', 'imap-uidvalidity': 1, 'imap-uid': uid++ }),
    });
    if (res.status !== 202) throw new Error(`push: ${res.status}`);
  };
}

/**
 * p50 and p95 of each of `fns` over `n` runs each (after two untimed ones each), in alternating
 * rounds, so that all see the same machine: measured one after the other, minutes apart, the empty
 * database's push once came out 36 % faster, while in alternating rounds the two were within noise
 * of each other. A function that `fn` returns is run untimed after its run.
 */
async function alternated(n: number, fns: (() => Promise<unknown>)[], rounds = 5) {
  const once = async (fn: () => Promise<unknown>) => {
    const t0 = performance.now();
    const after = await fn();
    const ms = performance.now() - t0;
    if (typeof after === 'function') await after();
    return ms;
  };
  const ms: number[][] = fns.map(() => []);
  for (const fn of fns) for (let i = 0; i < 2; i++) await once(fn);
  for (let r = 0; r < rounds; r++) {
    for (const [i, fn] of fns.entries()) {
      for (let k = 0; k < Math.ceil(n / rounds); k++) ms[i]!.push(await once(fn));
    }
  }
  return ms.map((m) => {
    m.sort((a, b) => a - b);
    return { p50: percentile(m, 50), p95: percentile(m, 95) };
  });
}

async function measure(db: Db, rows: number, emptyDb: Db) {
  const app = benchApp(db);
  const { get, page } = await adminClient(app, ADMIN);
  const busy = mailbox(7);
  const perMailbox = Math.floor(rows / MAILBOXES);
  // The cursor of page 100, or of the last page when the mailbox has fewer (at a million analyses a
  // mailbox holds 100, ten pages: an earlier version fell back to page 1 there, and compared page 100
  // at ten million with page 1).
  let cursor: string | null = null;
  let cursorPage = 1;
  for (; cursorPage < 100; cursorPage++) {
    const next: string | null = (await get(`/get/llm/analysis?mailbox=${busy}&limit=10${cursor ? `&cursor=${cursor}` : ''}`)).next_cursor;
    if (!next) break;
    cursor = next;
  }
  let claimCursor: ClaimCursor | undefined;
  let bareCursor: ClaimCursor | undefined;
  // The same push into this data set and into an empty database (the target: unchanged within noise).
  const [emptyPush, fullPush] = await alternated(REPEAT * 5, [pusher(benchApp(emptyDb), busy), pusher(app, busy)]);
  const cases: [string, () => Promise<unknown>][] = [
    [
      // As a worker claims: its cursor carried from claim to claim, so the window of mailboxes rotates.
      // The claim alone is timed; the jobs go back untimed, so that every claim sees the same queue.
      'claim (10 jobs)',
      async () => {
        const jobs = await claim(db, { workerId: 'bench', limit: 10, leaseMs: 60_000, after: claimCursor });
        claimCursor = nextCursor(jobs, claimCursor);
        return () => release(db, jobs.map((j) => j.id), 'bench');
      },
    ],
    [
      // The same claim without the pipeline's context (each job's analysis, audit entry and
      // preferences, looked up in every monthly partition): the fair walk over the mailboxes alone.
      'claim, fair walk only',
      async () => {
        const jobs = await claimJobs(db, { workerId: 'bench', limit: 10, leaseMs: 60_000, after: bareCursor });
        bareCursor = nextCursor(jobs, bareCursor);
        return () => release(db, jobs.map((j) => j.id), 'bench');
      },
    ],
    ['API: one message', () => get(`/get/llm/analysis?mailbox=${busy}&email_id=${Math.max(1, perMailbox >> 1)}`)],
    ['API: a page of a mailbox', () => get(`/get/llm/analysis?mailbox=${busy}`)],
    ['API: page 100 by cursor (or the last)', () => get(`/get/llm/analysis?mailbox=${busy}&limit=10${cursor ? `&cursor=${cursor}` : ''}`)],
    ['API: stats, one mailbox', () => get(`/get/llm/stats?mailbox=${busy}`)],
    ['API: stats, all', () => get('/get/llm/stats')],
    ['API: timeline (24 h)', () => get('/get/llm/stats?timeline_minutes=1440')],
    ['dashboard: overview 1 h', () => page('/dashboard?minutes=60')],
    ['dashboard: overview 6 h', () => page('/dashboard?minutes=360')],
    ['dashboard: overview 24 h', () => page('/dashboard?minutes=1440')],
    ['dashboard: mailbox', () => page(`/dashboard/mailbox/${encodeURIComponent(busy)}`)],
    ['dashboard: message', () => page(`/dashboard/mailbox/${encodeURIComponent(busy)}/message/INBOX/1/${Math.max(1, perMailbox >> 1)}`)],
    ['sweep step: the known mailboxes', () => knownMailboxes(db)],
  ];
  const out: Record<string, { p50: number; p95: number }> = { 'push insert, empty database': emptyPush!, 'push insert': fullPush! };
  for (const [name, fn] of cases) out[name] = await timed(REPEAT, fn);
  // Destructive, once each: a day's data by retention, and one mailbox. Retention removes whole UTC
  // days: a first pass (not timed) takes the part of the oldest day that the data set holds, the
  // timed one the whole day after it, as the daily pass of a server running for a year does.
  const [oldest] = await db.rows<{ at: Date | string }>(sql`select min(created_at) as at from llm_email_analysis`);
  const firstDay = Math.floor(new Date(oldest!.at).getTime() / DAY_MS) * DAY_MS;
  // retentionCutoff(1, now) is the start of the day before `now`'s.
  await purgeExpired(db, 1, new Date(firstDay + 2 * DAY_MS + 3_600_000));
  const t0 = performance.now();
  const purged = await purgeExpired(db, 1, new Date(firstDay + 3 * DAY_MS + 3_600_000));
  const retentionMs = performance.now() - t0;
  const [dead] = await db.rows<{ dead: string; part: string }>(sql`
    select n_dead_tup as dead, relname as part from pg_stat_user_tables
     where relname like 'llm_email_analysis_p%' order by n_dead_tup desc limit 1`);
  const t1 = performance.now();
  await eraseMailbox(db, mailbox(11));
  const eraseMs = performance.now() - t1;
  // A partitioned table has no storage of its own: its size is its partitions'.
  const [size] = await db.rows<{ analyses: string; audit: string; queue: string }>(sql`
    select (select sum(pg_total_relation_size(inhrelid)) from pg_inherits where inhparent = 'llm_email_analysis'::regclass) as analyses,
           (select sum(pg_total_relation_size(inhrelid)) from pg_inherits where inhparent = 'llm_audit_log'::regclass) as audit,
           pg_total_relation_size('llm_processing_queue') as queue`);
  return {
    cases: out,
    cursorPage,
    retention: { ms: retentionMs, removed: purged, deadRowsIn: dead ? { partition: dead.part, rows: Number(dead.dead) } : null },
    eraseMs,
    bytesPerAnalysis: { analyses: Number(size!.analyses) / rows, audit: Number(size!.audit) / rows, queue: Number(size!.queue) / rows },
  };
}

export async function runDataBench() {
  const results: Record<number, Awaited<ReturnType<typeof measure>> & { buildSeconds: number }> = {};
  for (const rows of SIZES) {
    const database = await createTestDatabase();
    const db = openPostgres(database.url, { max: 4 });
    // The baseline of "push insert unchanged": an empty database, measured beside the data set.
    const emptyDatabase = await createTestDatabase();
    const emptyDb = openPostgres(emptyDatabase.url, { max: 4 });
    try {
      await migrate(db, database.url);
      await migrate(emptyDb, emptyDatabase.url);
      const buildSeconds = await build(db, rows);
      console.log(`${rows.toLocaleString('en')} analyses over ${MAILBOXES.toLocaleString('en')} mailboxes built in ${buildSeconds.toFixed(0)} s`);
      results[rows] = { ...(await measure(db, rows, emptyDb)), buildSeconds };
    } finally {
      await db.close();
      await database.drop();
      await emptyDb.close();
      await emptyDatabase.drop();
    }
  }
  const [small, big] = SIZES;
  const names = Object.keys(results[small!]!.cases);
  table(
    names.map((name) => {
      const row: Record<string, string | number> = { request: name };
      for (const size of SIZES) {
        const c = results[size]!.cases[name]!;
        row[`p50 ${size / 1e6}M`] = c.p50;
        row[`p95 ${size / 1e6}M`] = c.p95;
      }
      if (big) row[`p95 ratio`] = results[big]!.cases[name]!.p95 / results[small!]!.cases[name]!.p95;
      return row;
    }),
  );
  for (const size of SIZES) {
    const r = results[size]!;
    console.log(
      `${size / 1e6}M: retention of one day ${r.retention.ms.toFixed(0)} ms (${r.retention.removed.analyses} analyses, ${r.retention.removed.audit} audit rows), ` +
        `erase of one mailbox ${r.eraseMs.toFixed(0)} ms, bytes per analysis: ${r.bytesPerAnalysis.analyses.toFixed(0)} (analyses) + ${r.bytesPerAnalysis.audit.toFixed(0)} (audit), built in ${r.buildSeconds.toFixed(0)} s`,
    );
  }
  console.log(`results: ${writeResult('data', { sizes: SIZES, mailboxes: MAILBOXES, results })}`);
}
