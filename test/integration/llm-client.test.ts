import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LlmClient, LlmError } from '../../src/analysis/llm.js';
import { buildPrompt } from '../../src/analysis/prompt.js';
import { analysisJsonSchema } from '../../src/analysis/result.js';
import { parseMessage } from '../../src/mail/parse.js';
import { startOllamaStandIn, type OllamaStandIn } from '../support/ollama-stand-in.js';

const SPAM = 'From: win@lottery.example\r\nTo: a@example.test\r\nSubject: You are a WINNER\r\n\r\nClick here for FREE cash! Act now, limited time. Earn money.\r\n';
const HAM = 'From: bob@example.test\r\nTo: a@example.test\r\nSubject: Lunch tomorrow\r\n\r\nShall we meet at noon? Bob\r\n';

async function promptOf(raw: string, replySuggestion = false) {
  return buildPrompt(await parseMessage(Buffer.from(raw)), { maxBodyChars: 4000, replySuggestion });
}

describe('LlmClient against the Ollama stand-in', () => {
  let ollama: OllamaStandIn;
  let client: LlmClient;
  beforeAll(async () => {
    ollama = await startOllamaStandIn();
  });
  afterAll(async () => ollama?.close());
  beforeEach(() => {
    ollama.set({ mode: 'ok', delayMs: 0, models: ['llama3.2:3b'] });
    ollama.state.chats.length = 0;
    // A fresh client each time: a failure in one test rests the host for the next.
    client = new LlmClient({ host: ollama.url, model: 'llama3.2:3b', timeoutMs: 1000 });
  });

  it('makes one structured call: schema as format, temperature 0, the same num_ctx always, no thinking', async () => {
    const { result, usage } = await client.analyse(await promptOf(SPAM));
    expect(result).toMatchObject({ verdict: 'spam', category: 'spam', reply_suggestion: null });
    expect(ollama.state.chats).toHaveLength(1);
    const req = ollama.state.chats[0];
    expect(req.format).toEqual(JSON.parse(JSON.stringify(analysisJsonSchema)));
    expect(req.options).toEqual({ temperature: 0, num_ctx: 4096, num_predict: 1024 });
    expect(req.think).toBe(false);
    expect(req.stream).toBe(false);
    expect(usage.attempts).toBe(1);
    expect(usage.promptTokens).toBeGreaterThan(100);
    expect(usage.completionTokens).toBeGreaterThan(10);
  });

  it('asks for a reply suggestion only when told to', async () => {
    expect((await client.analyse(await promptOf(HAM, true))).result.reply_suggestion).toBeTypeOf('string');
    expect((await client.analyse(await promptOf(HAM, false))).result.reply_suggestion).toBeNull();
  });

  it('repairs invalid output with one retry', async () => {
    ollama.set({ mode: 'invalid-once' });
    const { result, usage } = await client.analyse(await promptOf(HAM));
    expect(result.verdict).toBe('legit');
    expect(usage.attempts).toBe(2);
    expect(ollama.state.chats[1].messages.at(-1).content).toContain('That answer was invalid: not JSON');
  });

  it.each([
    ['invalid-json', 'not JSON'],
    ['schema-break', 'verdict'],
  ] as const)('fails permanently with the reason when output stays %s', async (mode, reason) => {
    ollama.set({ mode });
    const err = await client.analyse(await promptOf(HAM)).catch((e) => e);
    expect(err).toBeInstanceOf(LlmError);
    expect(err).toMatchObject({ code: 'LLM_INVALID_OUTPUT', transient: false });
    expect(err.message).toContain(reason);
    expect(ollama.state.chats).toHaveLength(2);
  });

  it.each([
    ['fail', 'LLM_SERVER_ERROR'],
    ['hang', 'LLM_TIMEOUT'],
  ] as const)('classifies %s as transient %s', async (mode, code) => {
    ollama.set({ mode });
    const started = performance.now();
    const err = await client.analyse(await promptOf(HAM)).catch((e) => e);
    expect(err).toMatchObject({ code, transient: true });
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('says when the model is missing, in analyse and in the readiness check', async () => {
    ollama.set({ models: ['qwen2.5:7b'] });
    expect(await client.analyse(await promptOf(HAM)).catch((e) => e)).toMatchObject({ code: 'LLM_MODEL_NOT_FOUND', transient: true });
    expect(await client.check().catch((e) => e)).toMatchObject({ code: 'LLM_MODEL_NOT_FOUND' });
    ollama.set({ models: ['llama3.2:3b'] });
    expect(await client.check()).toEqual({ model: 'llama3.2:3b', provider: 'ollama', numCtx: 4096, tokenizer: 'exact', version: '0.33.0' });
  });

  it('classifies an unreachable host as transient', async () => {
    const dead = new LlmClient({ host: 'http://127.0.0.1:1', model: 'llama3.2:3b', timeoutMs: 1000 });
    expect(await dead.analyse(await promptOf(HAM)).catch((e) => e)).toMatchObject({ code: 'LLM_UNREACHABLE', transient: true });
  });
});

describe('LlmClient with several Ollama hosts (OLLAMA_HOST=a,b)', () => {
  let a: OllamaStandIn;
  let b: OllamaStandIn;
  beforeAll(async () => {
    a = await startOllamaStandIn();
    b = await startOllamaStandIn();
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });
  beforeEach(() => {
    for (const s of [a, b]) {
      s.set({ mode: 'ok', delayMs: 0, models: ['llama3.2:3b'] });
      s.state.chats.length = 0;
    }
  });
  const client = (retryMs = 60_000) => new LlmClient({ host: `${a.url},${b.url}`, model: 'llama3.2:3b', timeoutMs: 2000, hostRetryBaseMs: retryMs });

  it('spreads concurrent calls over the least busy hosts', async () => {
    for (const s of [a, b]) s.set({ delayMs: 150 });
    const c = client();
    const prompt = await promptOf(HAM);
    await Promise.all(Array.from({ length: 8 }, () => c.analyse(prompt)));
    expect(a.state.chats.length + b.state.chats.length).toBe(8);
    expect(a.state.chats).toHaveLength(4);
    expect(b.state.chats).toHaveLength(4);
  });

  it('a failing host is taken out: every call succeeds on the other, and the failing one is not asked again while it rests', async () => {
    a.set({ mode: 'fail' });
    const c = client();
    const prompt = await promptOf(HAM);
    for (let i = 0; i < 6; i++) expect((await c.analyse(prompt)).result.verdict).toBe('legit');
    expect(a.state.chats).toHaveLength(1);
    expect(b.state.chats).toHaveLength(6);
    expect(c.hostStates).toEqual([
      { host: a.url, inFlight: 0, healthy: false, failures: 1 },
      { host: b.url, inFlight: 0, healthy: true, failures: 0 },
    ]);
  });

  it('a rested host is tried again later, and used once it works', async () => {
    a.set({ mode: 'fail' });
    const c = client(100);
    const prompt = await promptOf(HAM);
    await c.analyse(prompt);
    a.set({ mode: 'ok' });
    await new Promise((r) => setTimeout(r, 150));
    b.set({ delayMs: 100 }); // b busy: the recovered a takes the next call
    await Promise.all([c.analyse(prompt), c.analyse(prompt)]);
    expect(a.state.chats.length).toBeGreaterThanOrEqual(2); // the failed call and at least one after recovery
    expect(c.hostStates[0]).toMatchObject({ healthy: true, failures: 0 });
  });

  it('when every host fails, the error is transient (the job retries later)', async () => {
    a.set({ mode: 'fail' });
    b.set({ mode: 'fail' });
    const err = await client().analyse(await promptOf(HAM)).catch((e) => e);
    expect(err).toBeInstanceOf(LlmError);
    expect(err.transient).toBe(true);
  });

  it('check() names the host that lacks the model', async () => {
    b.set({ models: [] });
    await expect(client().check()).rejects.toThrow(`model llama3.2:3b is not pulled on ${b.url}`);
    b.set({ models: ['llama3.2:3b'] });
    expect(await client().check()).toMatchObject({ model: 'llama3.2:3b', hosts: [{ host: a.url }, { host: b.url }] });
  });
});

describe('LlmClient against an OpenAI-compatible server (LLM_PROVIDER=openai)', () => {
  let server: OllamaStandIn;
  beforeAll(async () => {
    server = await startOllamaStandIn();
  });
  afterAll(async () => server?.close());
  beforeEach(() => {
    server.set({ mode: 'ok', delayMs: 0, models: ['llama3.2:3b'], responseFormats: ['json_schema', 'json_object'], apiKey: undefined });
    server.state.chats.length = 0;
  });
  const client = (opts: { apiKey?: string; host?: string } = {}) =>
    new LlmClient({ provider: 'openai', host: opts.host ?? server.openaiUrl, apiKey: opts.apiKey, model: 'llama3.2:3b', timeoutMs: 2000 });

  it('one chat completion with the JSON schema as response_format, temperature 0, tokens from usage', async () => {
    const { result, usage } = await client().analyse(await promptOf(SPAM));
    expect(result).toMatchObject({ verdict: 'spam', category: 'spam' });
    expect(server.state.chats).toHaveLength(1);
    const req = server.state.chats[0];
    expect(req.api).toBe('openai');
    expect(req.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'mail_analysis', schema: JSON.parse(JSON.stringify(analysisJsonSchema)) } });
    expect(req).toMatchObject({ model: 'llama3.2:3b', temperature: 0, stream: false });
    expect(req.messages.map((m: { role: string }) => m.role)).toEqual(['system', 'user']);
    expect(usage).toMatchObject({ attempts: 1 });
    expect(usage.promptTokens).toBeGreaterThan(100);
    expect(usage.completionTokens).toBeGreaterThan(10);
    expect(await client().check()).toEqual({ model: 'llama3.2:3b', provider: 'openai', numCtx: 4096, tokenizer: 'exact' });
  });

  it('a server without JSON-schema output gets JSON mode, then plain output; what it took is remembered', async () => {
    server.set({ responseFormats: ['json_object'] });
    const c = client();
    const prompt = await promptOf(HAM);
    expect((await c.analyse(prompt)).result.verdict).toBe('legit');
    expect(server.state.chats.map((r) => r.response_format?.type)).toEqual(['json_schema', 'json_object']);
    await c.analyse(prompt);
    // JSON mode with the schema beside it: llama-server enforces it there.
    expect(server.state.chats.at(-1).response_format).toEqual({ type: 'json_object', schema: JSON.parse(JSON.stringify(analysisJsonSchema)) });

    server.set({ responseFormats: [] });
    server.state.chats.length = 0;
    const plain = client();
    expect((await plain.analyse(prompt)).result.verdict).toBe('legit');
    expect(server.state.chats.map((r) => r.response_format?.type ?? 'none')).toEqual(['json_schema', 'json_object', 'none']);
  });

  it('invalid output is repaired once, then fails permanently, as with Ollama', async () => {
    server.set({ mode: 'invalid-once' });
    expect((await client().analyse(await promptOf(HAM))).usage.attempts).toBe(2);
    server.set({ mode: 'invalid-json' });
    const err = await client().analyse(await promptOf(HAM)).catch((e) => e);
    expect(err).toMatchObject({ code: 'LLM_INVALID_OUTPUT', transient: false });
  });

  it('sends LLM_API_KEY as a bearer token; a wrong key, a missing model or a dead server is a transient error that says what to fix', async () => {
    server.set({ apiKey: 'sk-local-123' });
    expect((await client({ apiKey: 'sk-local-123' }).analyse(await promptOf(HAM))).result.verdict).toBe('legit');
    const unauthorised = await client({ apiKey: 'wrong' }).analyse(await promptOf(HAM)).catch((e) => e);
    expect(unauthorised).toMatchObject({ code: 'LLM_SERVER_ERROR', transient: true });
    expect(unauthorised.message).toContain('check LLM_API_KEY');
    expect(unauthorised.message).not.toContain('wrong');

    server.set({ apiKey: undefined, models: ['qwen2.5:7b', 'mistral:7b'] });
    const missing = await client().analyse(await promptOf(HAM)).catch((e) => e);
    expect(missing).toMatchObject({ code: 'LLM_MODEL_NOT_FOUND', transient: true });
    await expect(client().check()).rejects.toThrow(`model llama3.2:3b is not served by ${server.openaiUrl}`);

    const wrongPath = await client({ host: server.url }).analyse(await promptOf(HAM)).catch((e) => e);
    expect(wrongPath.message).toContain('is LLM_BASE_URL the API');
    const dead = await client({ host: 'http://127.0.0.1:1/v1' }).analyse(await promptOf(HAM)).catch((e) => e);
    expect(dead).toMatchObject({ code: 'LLM_UNREACHABLE', transient: true });
  });

  it('several base URLs share the work and fail over like Ollama hosts', async () => {
    const other = await startOllamaStandIn();
    try {
      server.set({ mode: 'fail' });
      const c = client({ host: `${server.openaiUrl},${other.openaiUrl}` });
      const prompt = await promptOf(HAM);
      for (let i = 0; i < 3; i++) expect((await c.analyse(prompt)).result.verdict).toBe('legit');
      expect(server.state.chats).toHaveLength(1);
      expect(other.state.chats).toHaveLength(3);
    } finally {
      await other.close();
    }
  });
});
