// Query API latency on a realistic table (`npm run bench api`): no target in the issue; figures for operators.
import { sql } from 'drizzle-orm';
import { createApp } from '../src/app.js';
import { openPostgres } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { createLogger } from '../src/logger.js';
import { createTestDatabase, testConfig } from '../test/support/services.js';
import { adminClient } from './admin-client.js';
import { table, writeResult } from './lib.js';

const MAILBOXES = 200;
const PER_MAILBOX = 500;
const BIG_MAILBOX_ROWS = 50_000;
const REPEAT = 50;
const ADMIN = 'bench-admin-key-0123456789';

/** Seeds analyses with SQL (a realistic spread of verdicts, categories, priorities, sensitive data). */
async function seed(db: ReturnType<typeof openPostgres>) {
  const insert = (mailbox: string, n: number) => sql`
    insert into llm_email_analysis (mailbox, folder, uidvalidity, uid, status, subject, summary, category, tags, verdict,
      confidence, reasons, is_spam, is_phishing, priority, sensitive, model, prompt_version, prompt_tokens, completion_tokens,
      llm_ms, total_ms, cache_hit, created_at)
    select ${mailbox}, 'INBOX', 1, g, 'analyzed', 'subject ' || g, 'summary of message ' || g,
      (array['work','personal','newsletter','marketing','finance','security'])[1 + g % 6], array['a','b'],
      (array['legit','legit','legit','spam','phishing'])[1 + g % 5], 0.9, '["r1","r2"]'::jsonb,
      g % 5 = 3, g % 5 = 4, 1 + g % 10, case when g % 17 = 0 then '["credentials"]'::jsonb else '[]'::jsonb end,
      'llama3.2:3b', 'v1', 900 + g % 400, 120 + g % 50, 800 + g % 900, 850 + g % 950, g % 9 = 0,
      now() - (${n} - g) * interval '1 minute'
    from generate_series(1, ${n}) g`;
  for (let m = 0; m < MAILBOXES; m++) await db.rows(insert(`user${m}@example.test`, PER_MAILBOX));
  await db.rows(insert('big@example.test', BIG_MAILBOX_ROWS));
  await db.rows(sql`analyze llm_email_analysis`);
}

export async function runApiBench() {
  const database = await createTestDatabase();
  const db = openPostgres(database.url, { max: 4 });
  try {
    await migrate(db, database.url);
    await seed(db);
    const total = MAILBOXES * PER_MAILBOX + BIG_MAILBOX_ROWS;
    const app = createApp({ config: testConfig({ apiKey: ADMIN }), db, logger: createLogger('silent'), pushCredentials: null });
    // The API, and the dashboard's pages signed in as the admin: the same services, rendered to HTML.
    const { get, page } = await adminClient(app, ADMIN);
    // A cursor deep into the big mailbox: 100 pages of 200 in.
    let cursor: string | null = null;
    for (let i = 0; i < 100; i++) cursor = (await get(`/get/llm/analysis?mailbox=big@example.test&limit=200${cursor ? `&cursor=${cursor}` : ''}`)).next_cursor;
    const cases: [string, string, ((path: string) => Promise<unknown>)?][] = [
      ['one message', '/get/llm/analysis?mailbox=big@example.test&email_id=31337'],
      ['first page (50)', '/get/llm/analysis?mailbox=big@example.test'],
      ['page 101 (200, cursor)', `/get/llm/analysis?mailbox=big@example.test&limit=200&cursor=${cursor}`],
      ['filtered: phishing, priority>=8', '/get/llm/analysis?mailbox=big@example.test&is_phishing=true&min_priority=8'],
      ['filtered: sensitive', '/get/llm/analysis?mailbox=big@example.test&sensitive=true'],
      ['stats, one mailbox (50k rows)', '/get/llm/stats?mailbox=big@example.test'],
      ['stats, every mailbox', '/get/llm/stats'],
      ['dashboard overview (last hour)', '/dashboard', page],
      ['dashboard overview (24 hours)', '/dashboard?minutes=1440', page],
      ['dashboard mailbox page (50k rows)', '/dashboard/mailbox/big%40example.test', page],
      ['dashboard message page', '/dashboard/mailbox/big%40example.test/message/INBOX/1/31337', page],
    ];
    const rows: Record<string, string | number>[] = [];
    for (const [name, path, fetchIt = get] of cases) {
      for (let i = 0; i < 3; i++) await fetchIt(path);
      const ms: number[] = [];
      for (let i = 0; i < REPEAT; i++) {
        const t0 = performance.now();
        await fetchIt(path);
        ms.push(performance.now() - t0);
      }
      ms.sort((a, b) => a - b);
      rows.push({ request: name, 'p50 ms': ms[Math.floor(REPEAT / 2)]!, 'p95 ms': ms[Math.floor(REPEAT * 0.95)]! });
    }
    console.log(`query API on ${total.toLocaleString('en')} analyses (${MAILBOXES} mailboxes of ${PER_MAILBOX}, one of ${BIG_MAILBOX_ROWS}), Postgres, in-process requests`);
    table(rows);
    console.log(`\nwritten ${writeResult('api', { rows: total, cases: rows })}`);
  } finally {
    await db.close();
    await database.drop();
  }
}
