import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { dovecotAvailable, freePort, startDovecot, type Dovecot } from '../support/dovecot.js';
import { LmtpClient } from '../support/lmtp.js';
import { MailsightProcess, processEnv } from '../support/mailsight-process.js';
import { testMessage } from '../support/message.js';
import { startOllamaStandIn, type OllamaStandIn } from '../support/ollama-stand-in.js';
import { createTestDatabase, describeWith, postgresAvailable } from '../support/services.js';
import { waitFor } from '../support/wait.js';

const ready = dovecotAvailable() && (await postgresAvailable());
const USERS = ['m1@example.test', 'm2@example.test', 'm3@example.test'];
const MESSAGES = 90;
const PUSH_PASSWORD = 'multi-push-secret';

describeWith('Dovecot and PostgreSQL', ready)('three mailsight processes on one Postgres', () => {
  let db: { url: string; drop: () => Promise<void> };
  let dc: Dovecot;
  let ollama: OllamaStandIn;
  let sql: postgres.Sql;
  const instances: MailsightProcess[] = [];
  let dataDir: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    // 100 ms a call: one process's 2 slots cannot keep up alone, so the others must take their share.
    ollama = await startOllamaStandIn({ delayMs: 100 });
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    // Dovecot pushes to the first; the queue (and LISTEN/NOTIFY) shares the work with the others.
    dc = await startDovecot({ users: USERS, push: { driver: 'ox', url: `http://127.0.0.1:${ports[0]}/push/dovecot`, username: 'dovecot', password: PUSH_PASSWORD } });
    dataDir = mkdtempSync(join(tmpdir(), 'mailsight-multi-'));
    const env = processEnv({
      databaseUrl: db.url,
      dataDir,
      dc,
      modelUrl: ollama.url,
      pushPassword: PUSH_PASSWORD,
      extra: { LLM_PROCESSING_INTERVAL: '2', LLM_CONCURRENT_JOBS: '2' },
    });
    // Started one after another: the first applies the migrations.
    for (const port of ports) instances.push(await MailsightProcess.start(port, env));
    sql = postgres(db.url, { max: 2, onnotice: () => {} });
  });
  afterAll(async () => {
    for (const i of instances) await i.kill('SIGKILL');
    await sql?.end({ timeout: 1 });
    await dc?.stop();
    await ollama?.close();
    await db?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const doneBy = async (i: MailsightProcess) => {
    const text = await (await fetch(`${i.baseUrl}/metrics`)).text();
    return Number(/^mailsight_jobs_total\{outcome="done"\} (\d+)/m.exec(text)?.[1] ?? 0);
  };

  it('share a burst: every message analysed once, by all three, the model asked once per message', async () => {
    const lmtp = await LmtpClient.connect(dc.lmtpPort);
    for (let i = 0; i < MESSAGES; i++) {
      const user = USERS[i % USERS.length]!;
      await lmtp.deliver(testMessage(`multi-${i}`, user, `multi ${i}`, `Message ${i}, shared work.`), [user]);
    }
    lmtp.close();
    // The decision goes into the audit trail just after the analysis row: wait for both.
    const [counts] = await waitFor(
      () => sql<{ rows: string; decisions: string; keys: string }[]>`
        select (select count(*) from llm_email_analysis where status = 'analyzed') as rows,
               (select count(*) from llm_audit_log where action = 'analyzed') as decisions,
               (select count(distinct (mailbox, uid)) from llm_audit_log where action = 'analyzed') as keys`,
      (r) => Number(r[0]!.rows) >= MESSAGES && Number(r[0]!.decisions) >= MESSAGES,
      60_000,
    );
    expect(counts).toEqual({ rows: String(MESSAGES), decisions: String(MESSAGES), keys: String(MESSAGES) });
    expect(ollama.state.chats).toHaveLength(MESSAGES);
    // Each process counts a job just after recording its end.
    const done = await waitFor(
      () => Promise.all(instances.map(doneBy)),
      (d) => d.reduce((a, b) => a + b, 0) >= MESSAGES,
      10_000,
    );
    expect(done.reduce((a, b) => a + b, 0)).toBe(MESSAGES);
    for (const n of done) expect(n, `jobs done per instance: ${done.join(', ')}`).toBeGreaterThan(0);
  });

  it('one sweeper at a time; when it is killed, another takes over', async () => {
    const leader = async () => {
      const [row] = await sql<{ owner: string | null; live: boolean }[]>`
        select value->>'owner' as owner, (value->>'until')::timestamptz > now() as live from llm_config where key = 'reconcile.leader'`;
      return row?.live ? row.owner : null;
    };
    const pidOf = (owner: string | null) => (owner ? Number(owner.split(':')[1]) : null);
    const first = pidOf(await waitFor(leader, (o) => o !== null, 10_000));
    const owners = new Set<number | null>();
    for (let i = 0; i < 10; i++) {
      owners.add(pidOf(await leader()));
      await new Promise((r) => setTimeout(r, 200));
    }
    expect([...owners]).toEqual([first]);
    const holder = instances.find((i) => i.pid === first)!;
    expect(holder).toBeDefined();
    await holder.kill('SIGKILL');
    // Its lease (two sweep periods, 4 s) runs out; a live instance takes it.
    const next = pidOf(await waitFor(leader, (o) => o !== null && pidOf(o) !== first, 15_000));
    expect(instances.filter((i) => i !== holder).map((i) => i.pid)).toContain(next);
  });
});
