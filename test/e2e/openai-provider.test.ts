import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { dovecotAvailable } from '../support/dovecot.js';
import { deliver } from '../support/lmtp.js';
import { testMessage } from '../support/message.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const ready = dovecotAvailable() && (await postgresAvailable());
const ALICE = 'alice@example.test';
const KEY = 'sk-local-e2e-key';
const OPENAI_ADMIN = 'openai-e2e-admin-key-0123456789';

describeWith('Dovecot and PostgreSQL', ready)('the pipeline on an OpenAI-compatible server (LLM_PROVIDER=openai)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ users: [ALICE] });
    stack.ollama!.set({ apiKey: KEY, responseFormats: ['json_object'] });
    await stack.restart({ apiKey: OPENAI_ADMIN, llm: { provider: 'openai', baseUrl: stack.ollama!.openaiUrl, apiKey: KEY } });
  });
  afterAll(async () => stack?.close());

  it('a delivered message is analysed through /v1/chat/completions, once, and /ready reports the server', async () => {
    await deliver(stack.dc.lmtpPort, testMessage('oa-1', ALICE, 'Verify your account today', 'Your account is suspended. Verify your account at our portal.'), [ALICE]);
    const [row] = await waitFor(
      () => stack.db.rows<{ status: string; verdict: string; model: string; prompt_tokens: number }>(
        sql`select status, verdict, model, prompt_tokens from llm_email_analysis where mailbox = ${ALICE}`,
      ),
      (rows) => rows.length === 1,
      20_000,
    );
    expect(row).toMatchObject({ status: 'analyzed', verdict: 'phishing', model: 'llama3.2:3b' });
    expect(Number(row!.prompt_tokens)).toBeGreaterThan(100);
    const calls = stack.ollama!.state.chats;
    expect(calls.every((c) => c.api === 'openai')).toBe(true);
    // This server knows only JSON mode: the schema request was refused once, then JSON mode was used.
    expect(calls.map((c) => c.response_format?.type)).toEqual(['json_schema', 'json_object']);

    const readyRes = await fetch(`${stack.ms.baseUrl}/ready`);
    expect(readyRes.status).toBe(200);
    // /ready says only that it works; the admin's health endpoint says which server and model.
    expect(((await readyRes.json()) as any).components.ollama).toEqual({ ok: true, latencyMs: expect.any(Number) });
    const health: any = await (await fetch(`${stack.ms.baseUrl}/api/v1/get/llm/health`, { headers: { 'x-api-key': OPENAI_ADMIN } })).json();
    expect(health.components.ollama).toMatchObject({ ok: true, provider: 'openai', host: stack.ollama!.openaiUrl, model: 'llama3.2:3b' });
  });
});
