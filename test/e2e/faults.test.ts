import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, expect, it } from 'vitest';
import { dovecotAvailable, freePort, imapSession, startDovecot, type Dovecot } from '../support/dovecot.js';
import { LmtpClient } from '../support/lmtp.js';
import { MailsightProcess, processEnv } from '../support/mailsight-process.js';
import { testMessage } from '../support/message.js';
import { startOllamaStandIn, type OllamaStandIn } from '../support/ollama-stand-in.js';
import { privatePostgresAvailable, startPostgresServer, type PostgresServer } from '../support/postgres-server.js';
import { createTestDatabase, describeWith, postgresAvailable } from '../support/services.js';

/**
 * The fault suite: a burst of mail while something breaks, then a count. For every case the target
 * is analysed = delivered and nothing analysed twice. `npm test` runs each case small (150 messages,
 * 3 s outages); `npm run test:faults` runs them as the issue states them (1,000 messages, 60 s
 * outages) and writes bench/results/faults.json.
 */

const FULL = process.env.MAILSIGHT_FAULTS === 'full';
const BURST = FULL ? 1000 : 150;
const OUTAGE_MS = FULL ? 60_000 : 3_000;
/** How long a killed or stopped mailsight, Dovecot or Postgres stays down. */
const DOWN_MS = FULL ? 5_000 : 1_500;
const RECOVERY_LIMIT_MS = FULL ? 300_000 : 60_000;
const USERS = ['f1@example.test', 'f2@example.test', 'f3@example.test', 'f4@example.test', 'f5@example.test'];
const PUSH_PASSWORD = 'fault-push-secret';

const ready = dovecotAvailable() && privatePostgresAvailable() && (await postgresAvailable());

interface Figures {
  case: string;
  /** Deliveries LMTP acknowledged. */
  acknowledged: number;
  /** Stored in the mailboxes (IMAP): what must be analysed. */
  delivered: number;
  analysed: number;
  /** Messages whose decision was recorded more than once. */
  duplicated: number;
  /** Analysed messages whose decision is missing from the audit trail. */
  unrecorded: number;
  /** Messages the model was asked about more than once (a call cut off by the fault is asked again). */
  asked_again: number;
  /** From the end of the fault until every delivered message was analysed. */
  recover_sec: number;
  total_sec: number;
}
const results: Figures[] = [];

interface FaultStack {
  dc: Dovecot;
  ollama: OllamaStandIn;
  ms: MailsightProcess;
  pg?: PostgresServer;
  sql: postgres.Sql;
  close(): Promise<void>;
}

async function faultStack(opts: { privatePostgres?: boolean } = {}): Promise<FaultStack> {
  const ollama = await startOllamaStandIn();
  const pg = opts.privatePostgres ? await startPostgresServer() : undefined;
  const db = pg ? { url: pg.url, drop: async () => {} } : await createTestDatabase();
  const port = await freePort();
  const dc = await startDovecot({ users: USERS, push: { driver: 'ox', url: `http://127.0.0.1:${port}/push/dovecot`, username: 'dovecot', password: PUSH_PASSWORD } });
  const dataDir = mkdtempSync(join(tmpdir(), 'mailsight-fault-'));
  // Seconds, not minutes: the sweep, leases and rests sized so a test sees recovery.
  const env = processEnv({
    databaseUrl: db.url,
    dataDir,
    dc,
    modelUrl: ollama.url,
    pushPassword: PUSH_PASSWORD,
    extra: {
      OLLAMA_TIMEOUT_MS: '2000',
      LLM_PROCESSING_INTERVAL: '2',
      LLM_LEASE_SEC: '5',
      LLM_RETRY_BASE_MS: '200',
      LLM_RETRY_MAX_MS: '2000',
      LLM_HOST_REST_MAX_SEC: '2',
      LLM_CONCURRENT_JOBS: '4',
    },
  });
  const ms = await MailsightProcess.start(port, env);
  const sql = postgres(db.url, { max: 2, onnotice: () => {}, connect_timeout: 2 });
  return {
    dc,
    ollama,
    ms,
    pg,
    sql,
    async close() {
      await ms.kill('SIGKILL');
      await sql.end({ timeout: 1 });
      await dc.stop();
      await ollama.close();
      if (pg) await pg.stop();
      else await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The burst's figures from the database: analyses, decisions recorded more than once for one message
 * (a duplicate), and analyses whose decision is missing from the audit trail. While the database is
 * down for a moment: unknown (-1).
 */
async function counts(s: FaultStack, tag: string) {
  try {
    const [row] = await s.sql<{ analysed: string; duplicated: string; unrecorded: string }[]>`
      with mine as (
        select mailbox, folder, uidvalidity, uid from llm_email_analysis where status = 'analyzed' and subject like ${`${tag} %`}
      ), decisions as (
        select m.mailbox, m.uid, count(l.id) as n from mine m
          left join llm_audit_log l on l.mailbox = m.mailbox and l.folder = m.folder and l.uidvalidity = m.uidvalidity
                                   and l.uid = m.uid and l.action = 'analyzed'
         group by m.mailbox, m.uid
      )
      select (select count(*) from mine) as analysed,
             (select count(*) from decisions where n > 1) as duplicated,
             (select count(*) from decisions where n = 0) as unrecorded`;
    return { analysed: Number(row!.analysed), duplicated: Number(row!.duplicated), unrecorded: Number(row!.unrecorded) };
  } catch {
    return { analysed: -1, duplicated: -1, unrecorded: -1 };
  }
}

/**
 * Delivers `BURST` messages over two LMTP connections, round-robin over the mailboxes, and calls
 * `fault` once 40% are in. Delivery waits while `gate` is closed (an MTA queues while Dovecot is down).
 */
async function burst(s: FaultStack, tag: string, fault: (gate: { close(): void; open(): void }) => Promise<void>) {
  let gateOpen: Promise<void> = Promise.resolve();
  let release = () => {};
  const gate = {
    close() {
      gateOpen = new Promise<void>((r) => (release = r));
    },
    open() {
      release();
    },
  };
  let delivered = 0;
  let faultRun: Promise<void> | undefined;
  const next = { i: 0 };
  await Promise.all(
    [0, 1].map(async () => {
      let lmtp = await LmtpClient.connect(s.dc.lmtpPort);
      for (let i = next.i++; i < BURST; i = next.i++) {
        const user = USERS[i % USERS.length]!;
        const raw = testMessage(`${tag}-${i}`, user, `${tag} ${i}`, `Message ${i} of the burst. Can you confirm the figures?`);
        for (;;) {
          await gateOpen;
          try {
            await lmtp.deliver(raw, [user]);
            break;
          } catch {
            // Dovecot went away under us: reconnect and deliver again, as an MTA retries.
            await new Promise((r) => setTimeout(r, 200));
            lmtp = await LmtpClient.connect(s.dc.lmtpPort).catch(() => lmtp);
          }
        }
        delivered++;
        if (delivered === Math.floor(BURST * 0.4)) faultRun = fault(gate);
      }
      lmtp.close();
    }),
  );
  await faultRun;
  return delivered;
}

/**
 * What Dovecot stored of the burst, over IMAP: the count that must be analysed. It can exceed what
 * LMTP acknowledged: a delivery cut off by Dovecot's crash may be stored and, unacknowledged,
 * delivered again, as an MTA does.
 */
async function storedCount(s: FaultStack, tag: string): Promise<number> {
  let n = 0;
  for (const user of USERS) {
    const client = await imapSession(s.dc, user);
    try {
      await client.mailboxOpen('INBOX', { readOnly: true });
      n += ((await client.search({ subject: `${tag} ` }, { uid: true })) || []).length;
    } finally {
      await client.logout();
    }
  }
  return n;
}

async function warmUp(s: FaultStack) {
  const lmtp = await LmtpClient.connect(s.dc.lmtpPort);
  for (const u of USERS) await lmtp.deliver(testMessage(`warm-${u}`, u, 'warm up', 'First message of the mailbox.'), [u]);
  lmtp.close();
  await waitUntil(async () => (await counts(s, 'warm')).analysed === USERS.length, 30_000);
}

async function waitUntil(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function runCase(name: string, tag: string, opts: { privatePostgres?: boolean }, fault: (s: FaultStack, gate: { close(): void; open(): void }) => Promise<void>) {
  const s = await faultStack(opts);
  try {
    await warmUp(s);
    const started = Date.now();
    let faultEnded = 0;
    const acknowledged = await burst(s, tag, async (gate) => {
      await fault(s, gate);
      faultEnded = Date.now();
    });
    const delivered = await storedCount(s, tag);
    const complete = await waitUntil(async () => {
      const c = await counts(s, tag);
      return c.analysed >= delivered && c.unrecorded === 0;
    }, RECOVERY_LIMIT_MS);
    const done = Date.now();
    const { analysed, duplicated, unrecorded } = await counts(s, tag);
    const asked = new Map<string, number>();
    for (const c of s.ollama.state.chats) {
      const subject = /Subject: (\S+ \d+)\n/.exec(JSON.stringify(c.messages).replaceAll('\\n', '\n'))?.[1];
      if (subject?.startsWith(tag)) asked.set(subject, (asked.get(subject) ?? 0) + 1);
    }
    const figures: Figures = {
      case: name,
      acknowledged,
      delivered,
      analysed,
      duplicated,
      unrecorded,
      asked_again: [...asked.values()].filter((n) => n > 1).length,
      recover_sec: Math.round((done - faultEnded) / 100) / 10,
      total_sec: Math.round((done - started) / 100) / 10,
    };
    results.push(figures);
    if (!complete) console.error(`${name}: not complete; mailsight said:\n${s.ms.output.slice(-3000)}`);
    expect(figures).toMatchObject({ analysed: delivered, duplicated: 0, unrecorded: 0 });
  } finally {
    await s.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeWith('Dovecot and PostgreSQL (a private server too)', ready)(`fault suite (${FULL ? 'full' : 'fast'}: ${BURST} messages, ${OUTAGE_MS / 1000} s outages)`, () => {
  afterAll(() => {
    if (results.length === 0) return;
    const cols = Object.keys(results[0]!) as (keyof Figures)[];
    const width = cols.map((c) => Math.max(c.length, ...results.map((r) => String(r[c]).length)));
    const line = (vals: string[]) => vals.map((v, i) => v.padEnd(width[i]!)).join('  ');
    console.log(['', line(cols), line(width.map((w) => '-'.repeat(w))), ...results.map((r) => line(cols.map((c) => String(r[c]))))].join('\n'));
    if (FULL) {
      const dir = new URL('../../bench/results/', import.meta.url).pathname;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'faults.json'), `${JSON.stringify({ at: new Date().toISOString(), burst: BURST, outage_ms: OUTAGE_MS, results }, null, 2)}\n`);
    }
  });

  it('mailsight killed (-9) mid-burst and started again', async () => {
    await runCase('kill -9 of mailsight', 'kill', {}, async (s) => {
      await s.ms.kill('SIGKILL');
      await sleep(DOWN_MS);
      await s.ms.start();
    });
  }, RECOVERY_LIMIT_MS + 60_000);

  it('PostgreSQL restarted mid-burst', async () => {
    await runCase('Postgres restarted', 'pgrestart', { privatePostgres: true }, async (s) => {
      await s.pg!.restart({ downMs: DOWN_MS });
    });
  }, RECOVERY_LIMIT_MS + 60_000);

  it('Dovecot restarted mid-burst', async () => {
    await runCase('Dovecot restarted', 'dcrestart', {}, async (s, gate) => {
      gate.close();
      try {
        await s.dc.restart({ downMs: DOWN_MS });
      } finally {
        gate.open();
      }
    });
  }, RECOVERY_LIMIT_MS + 60_000);

  it(`Ollama failing for ${OUTAGE_MS / 1000} s`, async () => {
    await runCase(`Ollama failing ${OUTAGE_MS / 1000} s`, 'ofail', {}, async (s) => {
      s.ollama.set({ mode: 'fail' });
      await sleep(OUTAGE_MS);
      s.ollama.set({ mode: 'ok' });
    });
  }, RECOVERY_LIMIT_MS + OUTAGE_MS + 60_000);

  it(`Ollama hanging for ${OUTAGE_MS / 1000} s`, async () => {
    await runCase(`Ollama hanging ${OUTAGE_MS / 1000} s`, 'ohang', {}, async (s) => {
      s.ollama.set({ mode: 'hang' });
      await sleep(OUTAGE_MS);
      s.ollama.set({ mode: 'ok' });
    });
  }, RECOVERY_LIMIT_MS + OUTAGE_MS + 60_000);

  it('pushes lost while mailsight is down (webhook refused) as mail arrives', async () => {
    await runCase('push lost (webhook down)', 'lost', {}, async (s) => {
      await s.ms.kill('SIGTERM');
      await sleep(DOWN_MS);
      await s.ms.start();
    });
  }, RECOVERY_LIMIT_MS + 60_000);
});
