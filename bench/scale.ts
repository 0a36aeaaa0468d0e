// Scale-out and fairness (issue: several instances, fair scheduling): `npm run bench scale`.
// 1) Throughput of 1, 2 and 3 mailsight processes on one Postgres sharing a model of 8 slots at
//    250 ms (ceiling 32 msg/s), against the single instance measured in the same run.
// 2) The latency of a new message in mailbox B while mailbox A has 1,000 queued, against the same
//    message's latency on an empty queue, and how many of A's jobs ran ahead of it.
import postgres from 'postgres';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NewJob } from '../src/queue/jobs.js';
import { freePort, startDovecot, type Dovecot } from '../test/support/dovecot.js';
import { MailsightProcess, processEnv } from '../test/support/mailsight-process.js';
import { createTestDatabase } from '../test/support/services.js';
import { deliverCorpus } from './pipeline.js';
import { spawnServer, stopServer, table, writeResult } from './lib.js';

const SLOTS = 8;
const MODEL_MS = 250;
const CEILING = (SLOTS * 1000) / MODEL_MS;
const JOBS_PER_INSTANCE = 4;
const MESSAGES = 320;
const FLOOD = 1000;
const PUSH_PASSWORD = 'bench-push-secret';
const AUTH = `Basic ${Buffer.from(`dovecot:${PUSH_PASSWORD}`).toString('base64')}`;
const MAILBOXES = Array.from({ length: 10 }, (_, i) => `scale${i + 1}@example.test`);
const A = 'flood@example.test';
const B = 'quiet@example.test';

function push(target: MailsightProcess, j: NewJob) {
  return fetch(`${target.baseUrl}/push/dovecot`, {
    method: 'PUT',
    headers: { authorization: AUTH, 'content-type': 'application/json; charset=utf-8' },
    body: JSON.stringify({ user: j.mailbox, event: 'messageNew', folder: 'INBOX', 'imap-uidvalidity': j.uidvalidity, 'imap-uid': j.uid }),
  }).then((r) => {
    if (r.status !== 202) throw new Error(`push answered ${r.status}`);
  });
}

/** Pushes in PUSHES_IN_FLIGHT lanes, each one push after another. */
const PUSHES_IN_FLIGHT = 8;
async function pushAll(jobs: NewJob[], send: (j: NewJob, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: PUSHES_IN_FLIGHT }, async () => {
      for (let i = next++; i < jobs.length; i = next++) await send(jobs[i]!, i);
    }),
  );
}

async function instances(n: number, dc: Dovecot, modelUrl: string, databaseUrl: string, dataDir: string) {
  const env = processEnv({
    databaseUrl,
    dataDir,
    dc,
    modelUrl,
    pushPassword: PUSH_PASSWORD,
    extra: { LLM_CONCURRENT_JOBS: String(JOBS_PER_INSTANCE), LLM_PROCESSING_INTERVAL: '3600' },
  });
  const out: MailsightProcess[] = [];
  for (let i = 0; i < n; i++) out.push(await MailsightProcess.start(await freePort(), env));
  return out;
}

async function waitCount(sql: postgres.Sql, query: () => Promise<number>, want: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = await query();
    if (n >= want) return;
    if (Date.now() > deadline) throw new Error(`only ${n} of ${want} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function throughput(n: number, dc: Dovecot, modelUrl: string, jobs: NewJob[]) {
  const db = await createTestDatabase();
  const dataDir = mkdtempSync(join(tmpdir(), 'mailsight-scale-'));
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  const procs = await instances(n, dc, modelUrl, db.url, dataDir);
  try {
    const started = performance.now();
    // Pushes spread over the instances, as a load balancer in front of them would, a few at a time
    // as Dovecot's delivery processes send them.
    await pushAll(jobs, (j, i) => push(procs[i % procs.length]!, j));
    const analysed = async () => Number((await sql<{ n: string }[]>`select count(*) as n from llm_email_analysis`)[0]!.n);
    await waitCount(sql, analysed, jobs.length, 300_000);
    const seconds = (performance.now() - started) / 1000;
    const [twice] = await sql<{ n: string }[]>`
      select count(*) as n from (select 1 from llm_audit_log where action = 'analyzed' group by mailbox, uid having count(*) > 1) x`;
    return { seconds, perSec: jobs.length / seconds, duplicated: Number(twice!.n) };
  } finally {
    for (const p of procs) await p.kill('SIGKILL');
    await sql.end({ timeout: 1 });
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Queue-to-analysis time of B's message (database clock on both ends), and A's analyses in between. */
async function latencyOf(sql: postgres.Sql, job: NewJob) {
  const at = () => sql<{ queued: Date; analysed: Date | null }[]>`
    select q.created_at as queued, a.created_at as analysed from llm_processing_queue q
      left join llm_email_analysis a using (mailbox, folder, uidvalidity, uid)
     where q.mailbox = ${job.mailbox} and q.uid = ${job.uid}`;
  await waitCount(sql, async () => ((await at())[0]?.analysed ? 1 : 0), 1, 120_000);
  const [row] = await at();
  const [ahead] = await sql<{ n: string }[]>`
    select count(*) as n from llm_email_analysis where mailbox = ${A} and created_at > ${row!.queued} and created_at < ${row!.analysed!}`;
  return { ms: row!.analysed!.getTime() - row!.queued.getTime(), aheadOfIt: Number(ahead!.n) };
}

async function fairness(dc: Dovecot, modelUrl: string, flood: NewJob[], quietFirst: NewJob) {
  const db = await createTestDatabase();
  const dataDir = mkdtempSync(join(tmpdir(), 'mailsight-fair-'));
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  const [ms] = await instances(1, dc, modelUrl, db.url, dataDir);
  try {
    await push(ms!, quietFirst);
    const alone = await latencyOf(sql, quietFirst);
    await pushAll(flood, (j) => push(ms!, j));
    // Let the flood get going, then a new message is delivered to B and pushed.
    await new Promise((r) => setTimeout(r, 2_000));
    const quiet = await deliverCorpus(dc, 1, MESSAGES + FLOOD + 1, [B]);
    const fresh = quiet.reduce((a, b) => (b.uid > a.uid ? b : a));
    await push(ms!, fresh);
    const behind = await latencyOf(sql, fresh);
    const [left] = await sql<{ n: string }[]>`select count(*) as n from llm_processing_queue where mailbox = ${A} and state = 'queued'`;
    return { alone, behind, floodQueued: Number(left!.n) };
  } finally {
    await ms!.kill('SIGKILL');
    await sql.end({ timeout: 1 });
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function runScaleBench() {
  const dc = await startDovecot({ users: [...MAILBOXES, A, B] });
  const modelPort = await freePort();
  const model = await spawnServer('bench/stand-in-server.ts', { STANDIN_DELAY_MS: String(MODEL_MS), STANDIN_SLOTS: String(SLOTS) }, modelPort, '/api/version');
  const modelUrl = `http://127.0.0.1:${modelPort}`;
  try {
    const jobs = await deliverCorpus(dc, MESSAGES, 0, MAILBOXES);
    const runs = [];
    for (const n of [1, 2, 3]) runs.push({ n, ...(await throughput(n, dc, modelUrl, jobs)) });
    const base = runs[0]!.perSec;
    table(
      runs.map((r) => ({
        instances: r.n,
        'jobs in flight': Math.min(r.n * JOBS_PER_INSTANCE, SLOTS),
        messages: MESSAGES,
        seconds: r.seconds,
        'msg/s': r.perSec,
        'vs 1 instance': r.perSec / base,
        'of ceiling': r.perSec / CEILING,
        duplicated: r.duplicated,
      })),
    );
    console.log(`\nmodel: ${SLOTS} slots at ${MODEL_MS} ms (ceiling ${CEILING} msg/s); ${JOBS_PER_INSTANCE} jobs per instance\n`);

    const flood = await deliverCorpus(dc, FLOOD, MESSAGES, [A]);
    const [quietFirst] = await deliverCorpus(dc, 1, MESSAGES + FLOOD, [B]);
    const f = await fairness(dc, modelUrl, flood, quietFirst!);
    table([
      { 'mailbox B, new message': 'on an empty queue', 'latency ms': f.alone.ms, "A's analyses meanwhile": 0, 'A queued': 0 },
      { 'mailbox B, new message': `behind A's ${FLOOD}`, 'latency ms': f.behind.ms, "A's analyses meanwhile": f.behind.aheadOfIt, 'A queued': f.floodQueued },
    ]);
    const fifoMs = (FLOOD / (JOBS_PER_INSTANCE * 1000 / MODEL_MS)) * 1000;
    console.log(`\nratio behind/alone: ${(f.behind.ms / f.alone.ms).toFixed(2)}; first-come-first-served would have made B wait about ${Math.round(fifoMs / 1000)} s`);
    const file = writeResult('scale', {
      model: { slots: SLOTS, ms: MODEL_MS, ceilingPerSec: CEILING },
      jobsPerInstance: JOBS_PER_INSTANCE,
      throughput: runs.map((r) => ({ instances: r.n, messages: MESSAGES, seconds: r.seconds, perSec: r.perSec, vsOneInstance: r.perSec / base, ofCeiling: r.perSec / CEILING, duplicated: r.duplicated })),
      fairness: { flood: FLOOD, aloneMs: f.alone.ms, behindFloodMs: f.behind.ms, ratio: f.behind.ms / f.alone.ms, floodJobsAhead: f.behind.aheadOfIt, floodStillQueued: f.floodQueued, fifoEstimateMs: fifoMs },
    });
    console.log(`written ${file}`);
  } finally {
    await stopServer(model);
    await dc.stop();
  }
}
