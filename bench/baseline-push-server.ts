// The floor mailsight's push endpoint is measured against: bare Hono + postgres.js doing the same
// single INSERT (no auth, no validation, no logging). SYNCHRONOUS_COMMIT=off commits as mailsight's
// push connections do by default (PUSH_SYNCHRONOUS_COMMIT=false); unset, Postgres's default (on).
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import postgres from 'postgres';

const synchronousCommit = process.env.SYNCHRONOUS_COMMIT;
const sql = postgres(process.env.DATABASE_URL!, {
  max: 10,
  onnotice: () => {},
  ...(synchronousCommit ? { connection: { synchronous_commit: synchronousCommit } } : {}),
});
const app = new Hono();
app.get('/health', (c) => c.json({ ok: true }));
app.on(['PUT', 'POST'], '/push/dovecot', async (c) => {
  const b = await c.req.json();
  const rows = await sql`
    insert into llm_processing_queue (mailbox, folder, uidvalidity, uid, source)
    values (${b.user}, ${b.folder}, ${b['imap-uidvalidity']}, ${b['imap-uid']}, 'push')
    on conflict do nothing returning id`;
  return c.json({ new: rows.length > 0 }, 202);
});
serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: '127.0.0.1' });
process.on('SIGTERM', () => sql.end().then(() => process.exit(0)));
