import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { dovecotAvailable } from '../support/dovecot.js';
import { LmtpClient } from '../support/lmtp.js';
import { testMessage } from '../support/message.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const ready = dovecotAvailable() && (await postgresAvailable());
const ALICE = 'alice@example.test';
const MODEL_MS = 400;
const ADMIN = 'shed-admin-key-0123456789abcdef';

describeWith('Dovecot and PostgreSQL', ready)('load shedding (LLM_SHED_AFTER_SEC)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ users: [ALICE], mailsight: { apiKey: ADMIN, processing: { shedAfterSec: 1, concurrentJobs: 1 } } });
    stack.ollama!.set({ delayMs: MODEL_MS });
    await stack.db.rows(sql`insert into llm_user_preferences (username, reply_suggestions) values (${ALICE}, true)`);
  });
  afterAll(async () => stack?.close());

  type Row = { uid: number; summary: string | null; reply_suggestion: string | null; verdict: string | null; left_out: string[] };
  const rows = () =>
    stack.db.rows<Row>(sql`select uid, summary, reply_suggestion, verdict, left_out from llm_email_analysis where mailbox = ${ALICE} order by uid`);

  it('while the oldest job waits longer than the limit, verdicts come without summary and reply; the rows say so; then full again', async () => {
    const lmtp = await LmtpClient.connect(stack.dc.lmtpPort);
    for (let i = 1; i <= 8; i++) await lmtp.deliver(testMessage(`shed-${i}`, ALICE, `Project update ${i}`, `Status of part ${i}: on track. Can you confirm?`), [ALICE]);
    lmtp.close();
    const all = await waitFor(rows, (r) => r.length === 8 && r.every((x) => x.verdict !== null), 30_000);

    // The first jobs ran before the backlog was a second old: whole.
    expect(all[0]).toMatchObject({ left_out: [], verdict: 'legit' });
    expect(all[0]!.summary).toContain('Project update 1');
    expect(all[0]!.reply_suggestion).toBeTruthy();
    // Later ones, behind a backlog of 400 ms jobs: verdicts only, and recorded as such.
    const shed = all.filter((r) => r.left_out.length > 0);
    expect(shed.length).toBeGreaterThanOrEqual(2);
    for (const r of shed) expect(r).toMatchObject({ left_out: ['summary', 'reply_suggestion'], summary: null, reply_suggestion: null, verdict: 'legit' });
    const briefPrompts = stack.ollama!.state.chats.filter((c) => JSON.stringify(c.messages).includes('Be brief: summary: \\"\\"'));
    expect(briefPrompts).toHaveLength(shed.length);

    // Caught up: the next message is analysed whole again.
    await new Promise((r) => setTimeout(r, 1_100));
    const lmtp2 = await LmtpClient.connect(stack.dc.lmtpPort);
    await lmtp2.deliver(testMessage('shed-9', ALICE, 'Project update 9', 'All done. Can you confirm?'), [ALICE]);
    lmtp2.close();
    const after = await waitFor(rows, (r) => r.length === 9 && r[8]!.verdict !== null);
    expect(after[8]).toMatchObject({ left_out: [] });
    expect(after[8]!.summary).toContain('Project update 9');

    // The API shows it.
    const api = await fetch(`${stack.ms.baseUrl}/api/v1/get/llm/analysis?mailbox=${ALICE}&email_id=${shed[0]!.uid}`, { headers: { 'x-api-key': ADMIN } });
    expect(((await api.json()) as any).analysis).toMatchObject({ left_out: ['summary', 'reply_suggestion'], summary: null, verdict: 'legit' });
  });
});
