import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { LlmClient, OUTPUT_TOKENS } from '../../src/analysis/llm.js';
import { buildPrompt, type Prompt } from '../../src/analysis/prompt.js';
import { analysisJsonSchema } from '../../src/analysis/result.js';
import { tokenCounterFor } from '../../src/analysis/tokens.js';
import { parseMessage, type ParsedMessage } from '../../src/mail/parse.js';
import { loadCorpus } from '../support/corpus.js';
import { grammarProblem, startOllamaStandIn, type OllamaStandIn } from '../support/ollama-stand-in.js';

/**
 * The LLM client against the stand-in playing the servers people run, as their source behaves:
 * the grammar limit, old versions, reloads on a changed num_ctx, cut prompts and answers, thinking
 * models, busy and loading answers, slow pulls, and model names as Ollama matches them.
 */

const HAM = 'From: bob@example.test\r\nTo: a@example.test\r\nSubject: Lunch tomorrow\r\n\r\nShall we meet at noon? Bob\r\n';
/** A long Russian message: 4,000 characters that the old characters/4 estimate took for 1,000 tokens. */
const RUSSIAN = `From: ivan@example.test\r\nTo: a@example.test\r\nSubject: =?UTF-8?B?0J7RgtGH0LXRgg==?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${'Добрый день! Направляю вам отчёт о работе за прошлый квартал, прошу ознакомиться до пятницы. '.repeat(45)}\r\n`;

const build = (parsed: ParsedMessage) => (maxBodyChars: number) => buildPrompt(parsed, { maxBodyChars, replySuggestion: false });

describe('the output schema compiles on llama.cpp-based servers', () => {
  it('has no repetition bound at or over llama.cpp\'s 2,000 (MAX_REPETITION_THRESHOLD)', () => {
    expect(grammarProblem(analysisJsonSchema)).toBeUndefined();
  });

  it('the check is real: the schema as it was (reply_suggestion maxLength 2000) fails it', () => {
    const old = JSON.parse(JSON.stringify(analysisJsonSchema));
    old.properties.reply_suggestion.anyOf[0].maxLength = 2000;
    expect(grammarProblem(old)).toMatch(/reply_suggestion.*maxLength = 2000/);
  });
});

describe('LlmClient and the servers people run', () => {
  let ollama: OllamaStandIn;
  beforeAll(async () => {
    ollama = await startOllamaStandIn();
  });
  afterAll(async () => ollama?.close());
  beforeEach(() => {
    ollama.set({ mode: 'ok', delayMs: 0, models: ['llama3.2:3b', 'qwen3:4b'], version: '0.33.0', grammarMaxRepetition: 2000, pullMs: 0 });
    ollama.state.chats.length = 0;
    ollama.state.loaded.clear();
    Object.assign(ollama.state, { loads: 0, reloads: 0, truncated: { prompt: 0, answer: 0 } });
  });
  const client = (opts: Partial<ConstructorParameters<typeof LlmClient>[0]> = {}) =>
    new LlmClient({ host: ollama.url, model: 'llama3.2:3b', timeoutMs: 2000, ...opts });

  it('current Ollama compiles the schema; a server with a lower grammar limit refuses it, and that is the server\'s fault, not the message\'s', async () => {
    const prompt = buildPrompt(await parseMessage(Buffer.from(HAM)), { maxBodyChars: 4000, replySuggestion: true });
    expect((await client().analyse(prompt)).result.verdict).toBe('legit');
    ollama.set({ grammarMaxRepetition: 1000 });
    const c = client();
    const err = await c.analyse(prompt).catch((e) => e);
    expect(err).toMatchObject({ code: 'LLM_SCHEMA_REJECTED', transient: true });
    expect(err.message).toMatch(/refused mailsight's output schema \(Failed to initialize samplers: failed to parse grammar\).*jobs wait/);
    // Readiness says so too, until a call works again.
    expect(await c.check().catch((e) => e)).toMatchObject({ code: 'LLM_SCHEMA_REJECTED' });
  });

  it('an Ollama older than 0.5 is refused with the version needed, in check and in calls (the jobs wait)', async () => {
    ollama.set({ version: '0.4.7' });
    const c = client();
    const checked = await c.check().catch((e) => e);
    expect(checked).toMatchObject({ code: 'LLM_SERVER_TOO_OLD' });
    expect(checked.message).toContain('Ollama 0.4.7');
    expect(checked.message).toContain('needs Ollama 0.5.0 or later');
    const call = await c.analyse(buildPrompt(await parseMessage(Buffer.from(HAM)), { maxBodyChars: 4000, replySuggestion: false })).catch((e) => e);
    expect(call).toMatchObject({ code: 'LLM_SERVER_TOO_OLD', transient: true });
    expect(ollama.state.chats).toHaveLength(0);
  });

  it('one num_ctx for every prompt size: no model reload over 40 corpus messages', async () => {
    const c = client();
    for (const m of loadCorpus(40)) {
      const parsed = await parseMessage(m.raw);
      await c.analyse(await c.fit(build(parsed), 4000));
    }
    expect(new Set(ollama.state.chats.map((r) => r.options.num_ctx))).toEqual(new Set([4096]));
    expect(ollama.state.loads).toBe(1);
    expect(ollama.state.reloads).toBe(0);
  });

  it('the stand-in is faithful there: sizing num_ctx per prompt, as before, costs reloads', async () => {
    for (const numCtx of [2048, 4096, 2048]) await client({ numCtx }).analyse(buildPrompt(await parseMessage(Buffer.from(HAM)), { maxBodyChars: 4000, replySuggestion: false }));
    expect(ollama.state.reloads).toBe(2);
  });

  it('a long Russian message is cut to fit the window, counted with the Llama 3 tokenizer: nothing cut by the server, the system message seen', async () => {
    const c = client({ numCtx: 2048 });
    const parsed = await parseMessage(Buffer.from(RUSSIAN));
    const counter = await tokenCounterFor('llama3.2:3b');
    const whole = build(parsed)(4000);
    expect(counter.count(whole.system) + counter.count(whole.user)).toBeGreaterThan(2048 - OUTPUT_TOKENS);
    const fitted = await c.fit(build(parsed), 4000);
    expect(counter.count(fitted.prompt.system) + counter.count(fitted.prompt.user)).toBeLessThanOrEqual(c.promptBudget);
    expect(fitted.prompt.bodyCut).toBe(true);
    const { result } = await c.analyse(fitted);
    expect(ollama.state.truncated.prompt).toBe(0);
    expect(result.reasons).not.toContain('no system message seen');
  });

  it('a prompt the server still cuts is retried smaller, and a cut answer is never stored as a result', async () => {
    const c = client({ numCtx: 1200 });
    const parsed = await parseMessage(Buffer.from(RUSSIAN));
    // Sent unfitted: Ollama cuts it from the front (the system message first) and says only prompt_eval_count = num_ctx.
    const whole: Prompt = build(parsed)(4000);
    const err = await c.analyse(whole).catch((e) => e);
    expect(err).toMatchObject({ code: 'LLM_TRUNCATED', transient: false });
    expect(err.message).toMatch(/cut the prompt to its window \(1200 of 1200 tokens\)/);
    expect(ollama.state.truncated.prompt).toBe(1);
    // With a way to shrink, the retry fits.
    const { usage } = await c.analyse({ prompt: whole, smaller: () => build(parsed)(600) });
    expect(usage.attempts).toBe(2);
    expect(ollama.state.truncated.prompt).toBe(2);
  });

  it('thinking models: think is false by default; with LLM_THINK=true the thinking eats the answer\'s budget and the cut answer fails', async () => {
    const prompt = buildPrompt(await parseMessage(Buffer.from(HAM)), { maxBodyChars: 4000, replySuggestion: false });
    const quiet = await client({ model: 'qwen3:4b' }).analyse(prompt);
    expect(quiet.result.verdict).toBe('legit');
    expect(ollama.state.chats.at(-1).think).toBe(false);
    ollama.set({ thinkTokens: 1000 });
    const err = await client({ model: 'qwen3:4b', think: 'true' }).analyse(prompt).catch((e) => e);
    expect(ollama.state.chats.at(-1).think).toBe(true);
    expect(err).toMatchObject({ code: 'LLM_TRUNCATED', transient: false });
    expect(err.message).toContain(`the answer stopped at its limit of ${OUTPUT_TOKENS} tokens`);
  });

  it('model names as Ollama matches them: any case, with library/ and :latest', async () => {
    ollama.set({ models: ['llama3.2:3b', 'mistral:latest'] });
    for (const model of ['Llama3.2:3B', 'library/llama3.2:3b', 'registry.ollama.ai/library/llama3.2:3b', 'mistral', 'MISTRAL:latest']) {
      expect(await client({ model }).check()).toMatchObject({ model });
    }
    await expect(client({ model: 'llama3.2:1b' }).check()).rejects.toThrow('is not pulled');
  });

  it('"server busy" (a full queue) is a transient server error', async () => {
    ollama.set({ mode: 'busy' });
    const err = await client().analyse(buildPrompt(await parseMessage(Buffer.from(HAM)), { maxBodyChars: 4000, replySuggestion: false })).catch((e) => e);
    expect(err).toMatchObject({ code: 'LLM_SERVER_ERROR', transient: true });
    expect(err.message).toContain('server busy');
  });

  it('a pull streams its progress and has no overall time limit; a pull whose client goes away is cancelled', async () => {
    ollama.set({ models: [], pullMs: 1_500 });
    const progress: string[] = [];
    // The client's call timeout (300 ms here) does not apply to a pull.
    await client({ timeoutMs: 300 }).pull((_host, p) => progress.push(`${p.status}${p.total ? ` ${Math.round((100 * (p.completed ?? 0)) / p.total)}%` : ''}`));
    expect(progress[0]).toBe('pulling manifest');
    expect(progress).toContain('pulling dde5aa3fc5ff 50%');
    expect(progress.at(-1)).toBe('success');
    expect(ollama.state.models).toContain('llama3.2:3b');

    ollama.set({ models: [] });
    const gone = new AbortController();
    const res = fetch(`${ollama.url}/api/pull`, { method: 'POST', body: JSON.stringify({ model: 'llama3.2:3b' }), signal: gone.signal }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    gone.abort();
    await res;
    await new Promise((r) => setTimeout(r, 1_500));
    expect(ollama.state.pullsCancelled).toBe(1);
    expect(ollama.state.models).not.toContain('llama3.2:3b');
  });
});

describe('LlmClient and OpenAI-compatible servers', () => {
  let server: OllamaStandIn;
  beforeAll(async () => {
    server = await startOllamaStandIn();
  });
  afterAll(async () => server?.close());
  const client = (model = 'llama3.2:3b') => new LlmClient({ provider: 'openai', host: server.openaiUrl, model, timeoutMs: 2000 });

  it('a single-model llama-server listing its model by file path is accepted, and asked by that name', async () => {
    server.set({ mode: 'ok', models: ['/models/Llama-3.2-3B-Instruct-Q4_K_M.gguf'] });
    server.state.chats.length = 0;
    expect(await client().check()).toMatchObject({ model: 'llama3.2:3b', servedAs: '/models/Llama-3.2-3B-Instruct-Q4_K_M.gguf' });
    await client().analyse(buildPrompt(await parseMessage(Buffer.from(HAM)), { maxBodyChars: 4000, replySuggestion: false }));
    expect(server.state.chats.at(-1)).toMatchObject({ model: '/models/Llama-3.2-3B-Instruct-Q4_K_M.gguf', max_tokens: OUTPUT_TOKENS });
  });

  it('a weaker response_format is remembered for the server, and the schema tried again after 10 minutes', async () => {
    server.set({ mode: 'ok', models: ['llama3.2:3b'], responseFormats: ['json_object'] });
    server.state.chats.length = 0;
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const c = client();
      const prompt = buildPrompt(await parseMessage(Buffer.from(HAM)), { maxBodyChars: 4000, replySuggestion: false });
      for (let i = 0; i < 3; i++) await c.analyse(prompt);
      // Asked once with json_schema, then json_object from then on: the refusal cost one request.
      expect(server.state.chats.map((r) => r.response_format.type)).toEqual(['json_schema', 'json_object', 'json_object', 'json_object']);
      server.set({ responseFormats: ['json_schema', 'json_object'] }); // the server was upgraded meanwhile
      vi.setSystemTime(Date.now() + 11 * 60_000);
      server.state.chats.length = 0;
      for (let i = 0; i < 2; i++) await c.analyse(prompt);
      expect(server.state.chats.map((r) => r.response_format.type)).toEqual(['json_schema', 'json_schema']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('"Loading model" (llama-server starting) is transient', async () => {
    server.set({ mode: 'loading', models: ['llama3.2:3b'] });
    const err = await client().analyse(buildPrompt(await parseMessage(Buffer.from(HAM)), { maxBodyChars: 4000, replySuggestion: false })).catch((e) => e);
    expect(err).toMatchObject({ code: 'LLM_SERVER_ERROR', transient: true });
    expect(err.message).toContain('Loading model');
  });

  it('a prompt over the server\'s context is refused by it (llama-server does not cut): the error says to set LLM_NUM_CTX', async () => {
    server.set({ mode: 'ok', models: ['llama3.2:3b'], openaiCtx: 1000 });
    const err = await client().analyse(buildPrompt(await parseMessage(Buffer.from(RUSSIAN)), { maxBodyChars: 4000, replySuggestion: false })).catch((e) => e);
    expect(err).toMatchObject({ code: 'LLM_TRUNCATED', transient: false });
    expect(err.message).toContain('LLM_NUM_CTX');
    server.set({ openaiCtx: 8192 });
  });
});
