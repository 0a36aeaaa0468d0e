import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for Ollama speaking its real HTTP API (/api/chat, /api/tags, /api/show, /api/version,
 * /api/pull), answering deterministically from the message content. Tests steer it: slow, failing,
 * hanging, busy, invalid JSON, schema-breaking output, or the model missing. Production code talks
 * to it exactly as to Ollama. It also speaks the OpenAI-compatible API that vLLM, llama.cpp's server
 * and LM Studio serve (/v1/chat/completions, /v1/models), with the same answers and modes, an
 * optional bearer key, and a choice of which response_format types it accepts.
 *
 * Where the real servers constrain or cut, it does too, each as their source does:
 * - the output schema is compiled the way llama.cpp's json-schema-to-grammar and grammar parser do:
 *   a repetition bound of 2,000 or more (MAX_REPETITION_THRESHOLD in llama-grammar.cpp) fails, and
 *   Ollama answers 400 "Failed to initialize samplers: failed to parse grammar";
 * - an Ollama older than 0.5 takes `format` only as a string: an object is a 400;
 * - a request whose num_ctx differs from the loaded model's reloads the model (Ollama's scheduler
 *   compares the runner's options): other requests wait for it, and it is counted;
 * - a prompt longer than num_ctx is cut from the front to num_ctx tokens (Ollama's runner: "truncating
 *   input prompt"), so the system message goes first; prompt_eval_count is then num_ctx;
 * - an answer longer than num_predict, or than what is left of num_ctx, stops there with
 *   done_reason "length" (finish_reason "length" on the OpenAI API); thinking counts against it;
 * - a thinking model (qwen3, deepseek-r1) thinks unless `think: false` is sent;
 * - "server busy" (503, Ollama's full queue) and "Loading model" (503, llama-server starting);
 * - pulls that take time, stream progress, and are cancelled when the client goes away.
 * Tokens are counted as a llama tokenizer roughly would: 4 ASCII characters a token, one per other character.
 */

export type StandInMode = 'ok' | 'fail' | 'hang' | 'invalid-json' | 'schema-break' | 'invalid-once' | 'busy' | 'loading';

/** llama.cpp's src/llama-grammar.cpp: a repetition of this many or more fails to parse. */
export const LLAMA_GRAMMAR_MAX_REPETITION = 2000;

/**
 * Why llama.cpp's grammar cannot be built from this JSON schema, or undefined when it can.
 * json-schema-to-grammar turns maxLength/minLength into `char{min,max}` and maxItems/minItems into
 * a bounded repetition of the item; the grammar parser refuses any bound at or over
 * MAX_REPETITION_THRESHOLD (times the rules repeated, one here).
 */
export function grammarProblem(schema: unknown, limit = LLAMA_GRAMMAR_MAX_REPETITION, path = '$'): string | undefined {
  if (!schema || typeof schema !== 'object') return undefined;
  const node = schema as Record<string, unknown>;
  for (const key of ['maxLength', 'minLength', 'maxItems', 'minItems']) {
    const n = node[key];
    if (typeof n === 'number' && n >= limit) return `${path}.${key} = ${n}: number of repetitions exceeds sane defaults`;
  }
  for (const [key, child] of Object.entries(node)) {
    if (child && typeof child === 'object') {
      const found = Array.isArray(child)
        ? child.map((c, i) => grammarProblem(c, limit, `${path}.${key}[${i}]`)).find(Boolean)
        : grammarProblem(child, limit, `${path}.${key}`);
      if (found) return found;
    }
  }
  return undefined;
}

/** The stand-in's token count: about what a llama tokenizer gives for English, one a character beyond ASCII. */
export function standInTokens(text: string): number {
  let ascii = 0;
  let other = 0;
  for (const ch of text) (ch.charCodeAt(0) < 0x80 ? ascii++ : other++);
  return Math.ceil(ascii / 4) + other;
}

export interface StandInState {
  mode: StandInMode;
  delayMs: number;
  models: string[];
  /** Every /api/chat request body received, in order. */
  chats: any[];
  /** Every /api/pull request body received. */
  pulls: any[];
  /** OpenAI API: the response_format types accepted (others get 400, as from a server without them). */
  responseFormats: ('json_schema' | 'json_object')[];
  /** OpenAI API: the bearer key it wants; none: no auth. */
  apiKey?: string;
  /** What /api/version reports. */
  version: string;
  /** Models that think unless told `think: false`. */
  thinkingModels: string[];
  /** Tokens a thinking model thinks before it answers. */
  thinkTokens: number;
  /** How long a model (re)load takes, ms. */
  reloadMs: number;
  /** The num_ctx each model is loaded with (Ollama); the context size of the OpenAI-compatible server. */
  loaded: Map<string, number>;
  openaiCtx: number;
  /** Loads (first use of a model) and reloads (a changed num_ctx). */
  loads: number;
  reloads: number;
  /** Prompts cut to num_ctx, answers cut at their limit. */
  truncated: { prompt: number; answer: number };
  /** How long a pull takes, ms; pulls given up by their client. */
  pullMs: number;
  pullsCancelled: number;
  /** The grammar's repetition limit: llama.cpp's 2,000, or lower to play a server that refuses the schema. */
  grammarMaxRepetition: number;
}

const SPAM_WORDS = /\b(free|click here|viagra|winner|won|cash|\$\$\$|limited time|act now|unsubscribe|100% guaranteed|earn money|credit|mortgage|lowest rates?)\b/gi;
const PHISH_WORDS = /\b(verify your account|confirm your (password|identity)|account (is )?(suspended|locked)|login to restore|update your billing)\b/i;

/** The deterministic "model": a few transparent rules over the fenced email. */
export function standInAnswer(userContent: string, wantsReply: boolean) {
  const m = /EMAIL-BEGIN-(\w+)\n([\s\S]*)\nEMAIL-END-\1/.exec(userContent);
  const email = m ? m[2]! : userContent;
  const subject = /^Subject: (.*)$/m.exec(email)?.[1] ?? '';
  const body = email.split(/\nBody[^\n]*:\n/)[1] ?? '';
  const spamHits = (email.match(SPAM_WORDS) ?? []).length;
  const phishing = PHISH_WORDS.test(email);
  const verdict = phishing ? 'phishing' : spamHits >= 3 ? 'spam' : 'legit';
  const firstSentence = body.replace(/\s+/g, ' ').trim().split(/(?<=[.!?])\s/)[0]?.slice(0, 200) ?? '';
  return {
    summary: `Message about "${subject.slice(0, 80)}". ${firstSentence}`.trim(),
    category: verdict === 'legit' ? (/\b(list|digest|newsletter)\b/i.test(email) ? 'newsletter' : 'personal') : 'spam',
    tags: [...new Set(subject.toLowerCase().match(/[a-z]{5,}/g) ?? [])].slice(0, 3),
    verdict,
    confidence: verdict === 'legit' ? 0.6 : Math.min(0.99, 0.5 + spamHits * 0.1 + (phishing ? 0.3 : 0)),
    reasons: verdict === 'legit' ? ['no spam indicators'] : [phishing ? 'asks to verify an account' : `${spamHits} spam phrases`],
    priority: /\b(urgent|asap|immediately)\b/i.test(email) ? 8 : verdict === 'legit' ? 5 : 1,
    priority_reason: 'keyword rules of the stand-in',
    sensitive: /\b\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}\b/.test(body) ? ['payment_card'] : [],
    language: 'en',
    reply_suggestion: wantsReply && verdict === 'legit' ? 'Thank you, I will get back to you.' : null,
  };
}

async function readJson(req: IncomingMessage): Promise<any> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

function send(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

export interface OllamaStandIn {
  url: string;
  state: StandInState;
  set(patch: Partial<Omit<StandInState, 'chats' | 'pulls'>>): void;
  /** The OpenAI-compatible base URL (LLM_BASE_URL). */
  openaiUrl: string;
  close(): Promise<void>;
}

export async function startOllamaStandIn(opts: { models?: string[]; port?: number; delayMs?: number; slots?: number } = {}): Promise<OllamaStandIn> {
  const state: StandInState = {
    mode: 'ok',
    delayMs: opts.delayMs ?? 0,
    models: opts.models ?? ['llama3.2:3b'],
    chats: [],
    pulls: [],
    responseFormats: ['json_schema', 'json_object'],
    version: '0.33.0',
    thinkingModels: ['qwen3:4b', 'deepseek-r1:8b'],
    thinkTokens: 400,
    reloadMs: 50,
    loaded: new Map(),
    openaiCtx: 8192,
    loads: 0,
    reloads: 0,
    truncated: { prompt: 0, answer: 0 },
    pullMs: 0,
    pullsCancelled: 0,
    grammarMaxRepetition: LLAMA_GRAMMAR_MAX_REPETITION,
  };
  /** The model a request names, found as Ollama finds it: any case, with or without `library/` and `:latest`. */
  const served = (name: string) => {
    const plain = (n: string) => {
      const lower = String(n).toLowerCase().replace(/^registry\.ollama\.ai\//, '').replace(/^library\//, '');
      return lower.includes(':') ? lower : `${lower}:latest`;
    };
    // The OpenAI-compatible servers match ids exactly.
    return state.models.find((m) => m === name || plain(m) === plain(name));
  };
  /** A model (re)load in progress: requests wait for it, as Ollama's scheduler holds them. */
  let loading: Promise<void> = Promise.resolve();
  async function ensureLoaded(model: string, numCtx: number) {
    await loading;
    const current = state.loaded.get(model);
    if (current === numCtx) return;
    if (current === undefined) state.loads++;
    else state.reloads++;
    state.loaded.set(model, numCtx);
    loading = new Promise((r) => setTimeout(r, state.reloadMs));
    await loading;
  }
  const hanging = new Set<ServerResponse>();
  let invalidServed = false;

  // Like OLLAMA_NUM_PARALLEL: at most `slots` calls are worked on at once, the others wait their turn.
  let busy = 0;
  const waiting: (() => void)[] = [];
  const takeSlot = async () => {
    if (!opts.slots) return;
    while (busy >= opts.slots) await new Promise<void>((r) => waiting.push(r));
    busy++;
  };
  const freeSlot = () => {
    if (!opts.slots) return;
    busy--;
    waiting.shift()?.();
  };

  /** The model's side of a chat call, for either API: after the delay, per the mode. */
  async function answerChat(body: any, res: ServerResponse, limits: { ctx: number; maxTokens: number; think: boolean }) {
    if (state.delayMs) {
      await takeSlot();
      try {
        await new Promise((r) => setTimeout(r, state.delayMs));
      } finally {
        freeSlot();
      }
    }
    if (state.mode === 'hang') {
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return 'hang' as const;
    }
    if (state.mode === 'fail') return 'fail' as const;
    if (!served(body.model)) return 'no-model' as const;
    const started = process.hrtime.bigint();
    const messages: { role: string; content: string }[] = body.messages ?? [];
    // The runner sees the conversation as one sequence; over the window, it keeps its last ctx tokens.
    const promptTokens = messages.reduce((n, m) => n + standInTokens(m.content) + 5, 0);
    let visible = messages.map((m) => m.content).join('\n');
    let evalPrompt = promptTokens;
    if (promptTokens > limits.ctx) {
      state.truncated.prompt++;
      evalPrompt = limits.ctx;
      visible = visible.slice(Math.floor((visible.length * (promptTokens - limits.ctx)) / promptTokens));
    }
    const system = messages.find((m) => m.role === 'system')?.content ?? '';
    const guarded = system.length > 0 && visible.includes(system.slice(0, 200));
    const lastUser = [...messages].reverse().find((m) => m.role === 'user' && m.content.includes('EMAIL-BEGIN-'))?.content ?? '';
    // A cut prompt: the model answers from what is left of it.
    const user = evalPrompt < promptTokens ? visible : lastUser;
    const answer = standInAnswer(user, /reply_suggestion: a short/.test(user));
    // Without its system message the model follows whatever the email says: it cannot be trusted.
    if (!guarded) answer.reasons = [...answer.reasons, 'no system message seen'];
    // Asked to be brief (load shedding): no summary, as a model following the prompt would answer.
    if (user.includes('Be brief: summary: ""')) answer.summary = '';
    let content = JSON.stringify(answer);
    const isRepair = messages.length > 2;
    if (state.mode === 'invalid-json') content = '{"summary": "unterminated';
    if (state.mode === 'schema-break') content = JSON.stringify({ ...answer, verdict: 'maybe', priority: 42 });
    if (state.mode === 'invalid-once' && !isRepair && !invalidServed) {
      invalidServed = true;
      content = 'Sure! Here is the JSON: {';
    }
    const thinking = limits.think && state.thinkingModels.includes(body.model) ? 'Let me look at who sent this and what it asks for. '.repeat(Math.ceil(state.thinkTokens / 12)) : '';
    const thinkTokens = thinking ? state.thinkTokens : 0;
    // Thinking and answer share the output limit and what is left of the window.
    const room = Math.min(limits.maxTokens > 0 ? limits.maxTokens : Infinity, limits.ctx - evalPrompt) - thinkTokens;
    let completionTokens = standInTokens(content);
    let doneReason = 'stop';
    if (completionTokens > room) {
      state.truncated.answer++;
      content = room > 0 ? content.slice(0, room * 4) : '';
      completionTokens = Math.max(0, room);
      doneReason = 'length';
    }
    return { content, thinking, doneReason, promptTokens: evalPrompt, completionTokens: completionTokens + thinkTokens, ns: Number(process.hrtime.bigint() - started) };
  }

  /** Ollama's /api/pull: progress while the layers download; a client gone before the end cancels it. */
  async function pull(body: any, req: IncomingMessage, res: ServerResponse) {
    state.pulls.push(body);
    const name = String(body.model ?? body.name);
    let gone = false;
    res.on('close', () => {
      if (!res.writableEnded) gone = true;
    });
    const stream = body.stream !== false;
    if (stream) res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const line = (o: object) => stream && !gone && res.write(`${JSON.stringify(o)}\n`);
    line({ status: 'pulling manifest' });
    const total = 2_019_393_189;
    for (let step = 1; step <= 10; step++) {
      await new Promise((r) => setTimeout(r, state.pullMs / 10));
      if (gone) {
        state.pullsCancelled++;
        return;
      }
      line({ status: 'pulling dde5aa3fc5ff', digest: 'sha256:dde5aa3fc5ff', total, completed: Math.round((total * step) / 10) });
    }
    line({ status: 'verifying sha256 digest' });
    line({ status: 'writing manifest' });
    if (!state.models.includes(name)) state.models.push(name);
    if (stream) res.end(`${JSON.stringify({ status: 'success' })}\n`);
    else send(res, 200, { status: 'success' });
  }

  const server: Server = createServer(async (req, res) => {
    try {
      const url = req.url ?? '/';
      if (req.method === 'GET' && url === '/api/version') return send(res, 200, { version: state.version });
      if (req.method === 'GET' && url === '/stand-in/stats') {
        return send(res, 200, { loads: state.loads, reloads: state.reloads, truncated: state.truncated, chats: state.chats.length, pullsCancelled: state.pullsCancelled });
      }
      if (req.method === 'GET' && url === '/api/tags') {
        return send(res, 200, {
          models: state.models.map((name) => ({
            name,
            model: name,
            modified_at: '2026-11-01T00:00:00Z',
            size: 2_019_393_189,
            digest: 'a80c4f17acd5'.padEnd(64, '0'),
            details: { format: 'gguf', family: 'llama', parameter_size: '3.2B', quantization_level: 'Q4_K_M' },
          })),
        });
      }
      if (req.method === 'POST' && url === '/api/pull') return await pull(await readJson(req), req, res);
      if (req.method === 'POST' && url === '/api/show') {
        const body = await readJson(req);
        if (!state.models.includes(body.model ?? body.name)) return send(res, 404, { error: `model '${body.model}' not found` });
        const thinks = state.thinkingModels.includes(body.model ?? body.name);
        return send(res, 200, {
          modelfile: '# stand-in',
          parameters: 'temperature 0',
          template: '{{ .Prompt }}',
          details: { format: 'gguf', family: 'llama', parameter_size: '3.2B', quantization_level: 'Q4_K_M' },
          model_info: { 'llama.context_length': 131072 },
          capabilities: ['completion', 'tools', ...(thinks ? ['thinking'] : [])],
        });
      }
      if (req.method === 'POST' && url === '/api/chat') {
        const body = await readJson(req);
        state.chats.push(body);
        if (state.mode === 'busy') return send(res, 503, { error: 'server busy, please try again.  maximum pending requests exceeded' });
        if (typeof body.format === 'object' && body.format !== null) {
          if (compareVersion(state.version, '0.5.0') < 0) return send(res, 400, { error: 'json: cannot unmarshal object into Go struct field ChatRequest.format of type string' });
          if (grammarProblem(body.format, state.grammarMaxRepetition)) return send(res, 400, { error: 'Failed to initialize samplers: failed to parse grammar' });
        }
        const ctx = Number(body.options?.num_ctx ?? 4096);
        if (served(body.model)) await ensureLoaded(served(body.model)!, ctx);
        const answer = await answerChat(body, res, { ctx, maxTokens: Number(body.options?.num_predict ?? -1), think: body.think !== false });
        if (answer === 'hang') return;
        if (answer === 'fail') return send(res, 500, { error: 'stand-in told to fail' });
        if (answer === 'no-model') return send(res, 404, { error: `model "${body.model}" not found, try pulling it first` });
        return send(res, 200, {
          model: body.model,
          created_at: new Date().toISOString(),
          message: { role: 'assistant', content: answer.content, ...(answer.thinking ? { thinking: answer.thinking } : {}) },
          done: true,
          done_reason: answer.doneReason,
          total_duration: answer.ns + state.delayMs * 1e6,
          load_duration: 1_000_000,
          prompt_eval_count: answer.promptTokens,
          prompt_eval_duration: 2_000_000,
          eval_count: answer.completionTokens,
          eval_duration: 3_000_000,
        });
      }
      if (url.startsWith('/v1/') && state.apiKey && req.headers.authorization !== `Bearer ${state.apiKey}`) {
        return send(res, 401, { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } });
      }
      if (req.method === 'GET' && url === '/v1/models') {
        return send(res, 200, { object: 'list', data: state.models.map((id) => ({ id, object: 'model', created: 1_795_000_000, owned_by: 'stand-in' })) });
      }
      if (req.method === 'POST' && url === '/v1/chat/completions') {
        const body = await readJson(req);
        state.chats.push({ ...body, api: 'openai' });
        if (state.mode === 'loading') return send(res, 503, { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } });
        const type = body.response_format?.type;
        if (type && type !== 'text' && !state.responseFormats.includes(type)) {
          return send(res, 400, { error: { message: `response_format type ${type} is not supported by this server`, type: 'invalid_request_error', param: 'response_format' } });
        }
        const schema = body.response_format?.json_schema?.schema ?? body.response_format?.schema;
        if (schema && grammarProblem(schema, state.grammarMaxRepetition)) return send(res, 400, { error: { code: 400, message: 'failed to parse grammar', type: 'invalid_request_error' } });
        const promptTokens = (body.messages ?? []).reduce((n: number, m: { content: string }) => n + standInTokens(m.content) + 5, 0);
        // llama-server refuses a prompt over its context instead of cutting it.
        if (promptTokens > state.openaiCtx) {
          return send(res, 400, { error: { code: 400, message: 'the request exceeds the available context size, try increasing it', type: 'exceed_context_size_error' } });
        }
        const answer = await answerChat(body, res, { ctx: state.openaiCtx, maxTokens: Number(body.max_tokens ?? -1), think: false });
        if (answer === 'hang') return;
        if (answer === 'fail') return send(res, 500, { error: { message: 'stand-in told to fail', type: 'server_error' } });
        if (answer === 'no-model') {
          return send(res, 404, { error: { message: `The model \`${body.model}\` does not exist.`, type: 'invalid_request_error', code: 'model_not_found' } });
        }
        return send(res, 200, {
          id: `chatcmpl-${state.chats.length}`,
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model: body.model,
          choices: [{ index: 0, message: { role: 'assistant', content: answer.content }, finish_reason: answer.doneReason }],
          usage: { prompt_tokens: answer.promptTokens, completion_tokens: answer.completionTokens, total_tokens: answer.promptTokens + answer.completionTokens },
        });
      }
      send(res, 404, { error: `stand-in: no route ${req.method} ${url}` });
    } catch (err) {
      send(res, 400, { error: (err as Error).message });
    }
  });
  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    openaiUrl: `http://127.0.0.1:${port}/v1`,
    state,
    set(patch) {
      Object.assign(state, patch);
      if (patch.mode && patch.mode !== 'invalid-once') invalidServed = false;
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** -1, 0 or 1 over dotted version numbers. */
function compareVersion(a: string, b: string): number {
  const pa = a.split('.').map((n) => Number.parseInt(n, 10) || 0);
  const pb = b.split('.').map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) < (pb[i] ?? 0) ? -1 : 1;
  return 0;
}
