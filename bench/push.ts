// Push ingestion and delivery-overhead benchmarks (issue: push receiver). See bench/README.md.
import { count, eq } from 'drizzle-orm';
import { openPostgres } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { processingQueue } from '../src/db/schema.js';
import { loadCorpus } from '../test/support/corpus.js';
import { freePort, startDovecot } from '../test/support/dovecot.js';
import { LmtpClient } from '../test/support/lmtp.js';
import { createTestDatabase } from '../test/support/services.js';
import { closedLoop, openLoop, spawnServer, stopServer, table, writeResult, type HttpTarget } from './lib.js';

const PASSWORD = 'bench-push-password';
const CLOSED_SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const OPEN_SECONDS = Number(process.env.BENCH_OPEN_SECONDS ?? 10);
const OPEN_RATE = 1000;
const CONCURRENCY = 32;
const DELIVERIES = Number(process.env.BENCH_DELIVERIES ?? 500);
const DELIVERY_ROUNDS = 3;

const body = (mailbox: string) => (i: number) =>
  JSON.stringify({
    user: mailbox,
    event: 'messageNew',
    folder: 'INBOX',
    'imap-uidvalidity': 1795249885,
    'imap-uid': i + 1,
    from: '=?UTF-8?B?SsO8cmdlbg==?= <j@example.net>',
    subject: 'Quarterly report',
    snippet: 'Please find the figures attached.',
    unseen: 1,
  });

/** Rows in the queue, all or one mailbox's. */
async function rowsIn(url: string, mailbox?: string) {
  const db = openPostgres(url, { max: 1 });
  try {
    const q = db.orm.select({ n: count() }).from(processingQueue);
    return (await (mailbox ? q.where(eq(processingQueue.mailbox, mailbox)) : q))[0]!.n;
  } finally {
    await db.close();
  }
}

type Server = 'baseline' | 'mailsight';
async function startServer(kind: Server, databaseUrl: string, port: number) {
  if (kind === 'baseline') return spawnServer('bench/baseline-push-server.ts', { DATABASE_URL: databaseUrl }, port);
  return spawnServer('src/main.ts', { DATABASE_URL: databaseUrl, PUSH_PASSWORD: PASSWORD, HOST: '127.0.0.1', LOG_LEVEL: 'info' }, port);
}

async function ingestion() {
  const results: Record<string, any> = {};
  for (const kind of ['baseline', 'mailsight'] as const) {
    const db = await createTestDatabase();
    if (kind === 'baseline') {
      const d = openPostgres(db.url, { max: 1 });
      await migrate(d, db.url);
      await d.close();
    }
    const port = await freePort();
    const child = await startServer(kind, db.url, port);
    const target: HttpTarget = {
      port,
      path: '/push/dovecot',
      method: 'PUT',
      headers: {
        'content-type': 'application/json; charset=utf-8',
        authorization: `Basic ${Buffer.from(`dovecot:${PASSWORD}`).toString('base64')}`,
      },
    };
    // Warm-up: JIT, connection pool.
    await closedLoop(target, CONCURRENCY, 2, body('warmup@example.test'));
    const closed = await closedLoop(target, CONCURRENCY, CLOSED_SECONDS, body('closed@example.test'));
    const open = await openLoop(target, OPEN_RATE, OPEN_SECONDS, body('open@example.test'));
    await stopServer(child);
    // Every accepted push has its own UID: accepted minus rows is what was lost.
    const rows = { closed: await rowsIn(db.url, 'closed@example.test'), open: await rowsIn(db.url, 'open@example.test') };
    const lost = closed.accepted - rows.closed + (open.statuses['202'] ?? 0) - rows.open;
    results[kind] = { closed, open, rows, lost };
    await db.drop();
  }
  return results;
}

async function deliveryOverhead() {
  const messages = loadCorpus(DELIVERIES);
  const runs: { kind: string; rate: number; queued?: number }[] = [];
  // Alternating rounds, medians: one 500-message run on this shared 2-core machine varies by +-20%.
  const kinds = Array.from({ length: DELIVERY_ROUNDS }, () => ['floor-204', 'mailsight'] as const).flat();
  for (const kind of kinds) {
    const port = await freePort();
    const db = kind === 'mailsight' ? await createTestDatabase() : undefined;
    const child =
      kind === 'mailsight'
        ? await startServer('mailsight', db!.url, port)
        : await spawnServer('bench/204-server.ts', {}, port);
    const dc = await startDovecot({
      users: ['bench@example.test'],
      push: { driver: 'ox', url: `http://127.0.0.1:${port}/push/dovecot`, username: 'dovecot', password: PASSWORD },
    });
    const lmtp = await LmtpClient.connect(dc.lmtpPort);
    const t0 = performance.now();
    for (const m of messages) await lmtp.deliver(m.raw, ['bench@example.test']);
    const seconds = (performance.now() - t0) / 1000;
    lmtp.close();
    await dc.stop();
    await stopServer(child);
    const run: { kind: string; rate: number; queued?: number } = { kind, rate: messages.length / seconds };
    if (db) {
      run.queued = await rowsIn(db.url);
      await db.drop();
    }
    runs.push(run);
  }
  const median = (k: string) => {
    const r = runs.filter((x) => x.kind === k).map((x) => x.rate).sort((a, b) => a - b);
    return r[Math.floor(r.length / 2)]!;
  };
  return { runs, floorRate: median('floor-204'), mailsightRate: median('mailsight'), ratio: median('mailsight') / median('floor-204') };
}

export async function runPushBench() {
  console.log(`push ingestion: closed loop c=${CONCURRENCY} for ${CLOSED_SECONDS}s, open loop ${OPEN_RATE}/s for ${OPEN_SECONDS}s`);
  const ing = await ingestion();
  const b = ing.baseline;
  const m = ing.mailsight;
  table([
    { server: 'bare hono+postgres.js', 'closed req/s': b.closed.rate, 'open p50 ms': b.open.p50, 'open p99 ms': b.open.p99, non202: b.closed.sent - b.closed.accepted, lost: b.lost },
    { server: 'mailsight', 'closed req/s': m.closed.rate, 'open p50 ms': m.open.p50, 'open p99 ms': m.open.p99, non202: m.closed.sent - m.closed.accepted, lost: m.lost },
  ]);
  const ratio = m.closed.rate / b.closed.rate;
  console.log(`ratio mailsight/baseline (closed loop): ${ratio.toFixed(2)} (target >= 0.70); rate target >= 2000/s`);
  console.log(`open loop p99: ${m.open.p99.toFixed(2)} ms (target <= 10 ms)`);

  console.log(`\ndelivery overhead: ${DELIVERIES} corpus messages over 1 LMTP connection through a real Dovecot`);
  const del = await deliveryOverhead();
  table(del.runs.map((r) => ({ webhook: r.kind, 'msg/s': r.rate, queued: r.queued ?? '-' })));
  console.log(`ratio of medians mailsight/floor: ${del.ratio.toFixed(2)} (target >= 0.90)`);

  const file = writeResult('push', {
    ingestion: { ...ing, ratio },
    delivery: del,
    targets: { closedRate: 2000, ratio: 0.7, openP99Ms: 10, deliveryRatio: 0.9 },
  });
  console.log(`\nwritten ${file}`);
}
