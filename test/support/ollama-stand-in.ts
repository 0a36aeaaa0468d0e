import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for Ollama speaking its real HTTP API (/api/chat, /api/tags, /api/show, /api/version),
 * answering deterministically from the message content. Tests steer it: slow, failing, hanging,
 * invalid JSON, schema-breaking output, or the model missing. Production code talks to it exactly
 * as to Ollama. It also speaks the OpenAI-compatible API that vLLM, llama.cpp's server and LM Studio
 * serve (/v1/chat/completions, /v1/models), with the same answers and modes, an optional bearer key,
 * and a choice of which response_format types it accepts.
 */

export type StandInMode = 'ok' | 'fail' | 'hang' | 'invalid-json' | 'schema-break' | 'invalid-once';

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
  };
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
  async function answerChat(body: any, res: ServerResponse) {
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
    if (!state.models.includes(body.model)) return 'no-model' as const;
    const started = process.hrtime.bigint();
    const messages: { role: string; content: string }[] = body.messages ?? [];
    const user = [...messages].reverse().find((m) => m.role === 'user' && m.content.includes('EMAIL-BEGIN-'))?.content ?? '';
    const answer = standInAnswer(user, /reply_suggestion: a short/.test(user));
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
    const promptChars = messages.reduce((n, m) => n + m.content.length, 0);
    return { content, promptTokens: Math.ceil(promptChars / 4), completionTokens: Math.ceil(content.length / 4), ns: Number(process.hrtime.bigint() - started) };
  }

  const server: Server = createServer(async (req, res) => {
    try {
      const url = req.url ?? '/';
      if (req.method === 'GET' && url === '/api/version') return send(res, 200, { version: '0.12.6' });
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
      if (req.method === 'POST' && url === '/api/pull') {
        // Ollama's pull, non-streaming: the model is there afterwards.
        const body = await readJson(req);
        state.pulls.push(body);
        const name = String(body.model ?? body.name);
        if (!state.models.includes(name)) state.models.push(name);
        return send(res, 200, { status: 'success' });
      }
      if (req.method === 'POST' && url === '/api/show') {
        const body = await readJson(req);
        if (!state.models.includes(body.model ?? body.name)) return send(res, 404, { error: `model '${body.model}' not found` });
        return send(res, 200, {
          modelfile: '# stand-in',
          parameters: 'temperature 0',
          template: '{{ .Prompt }}',
          details: { format: 'gguf', family: 'llama', parameter_size: '3.2B', quantization_level: 'Q4_K_M' },
          model_info: { 'llama.context_length': 131072 },
          capabilities: ['completion', 'tools'],
        });
      }
      if (req.method === 'POST' && url === '/api/chat') {
        const body = await readJson(req);
        state.chats.push(body);
        const answer = await answerChat(body, res);
        if (answer === 'hang') return;
        if (answer === 'fail') return send(res, 500, { error: 'stand-in told to fail' });
        if (answer === 'no-model') return send(res, 404, { error: `model "${body.model}" not found, try pulling it first` });
        return send(res, 200, {
          model: body.model,
          created_at: new Date().toISOString(),
          message: { role: 'assistant', content: answer.content },
          done: true,
          done_reason: 'stop',
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
        const type = body.response_format?.type;
        if (type && type !== 'text' && !state.responseFormats.includes(type)) {
          return send(res, 400, { error: { message: `response_format type ${type} is not supported by this server`, type: 'invalid_request_error', param: 'response_format' } });
        }
        const answer = await answerChat(body, res);
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
          choices: [{ index: 0, message: { role: 'assistant', content: answer.content }, finish_reason: 'stop' }],
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
