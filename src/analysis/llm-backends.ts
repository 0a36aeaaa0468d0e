import { Ollama, type Message } from 'ollama';
import { LlmError } from './llm-error.js';

/**
 * The two ways to reach a model server: Ollama's own API, and the OpenAI-compatible one that vLLM,
 * llama.cpp's server and LM Studio serve. The LLM client (llm.ts) routes, retries and validates;
 * a backend makes one request and says in the shared error vocabulary what went wrong.
 */

export interface ChatRequest {
  model: string;
  messages: Message[];
  /** JSON schema the answer must match (structured output). */
  schema: object;
  /** Context window to ask for (Ollama only; the OpenAI API sizes it on the server). */
  numCtx: number;
}

export interface ChatAnswer {
  content: string;
  promptTokens: number;
  completionTokens: number;
  /** The server's own time for the call when it reports one (Ollama), else 0. */
  modelMs: number;
}

export interface ChatBackend {
  readonly url: string;
  chat(req: ChatRequest): Promise<ChatAnswer>;
  /** Whether the server has the model ready; throws when the server cannot be asked. */
  hasModel(model: string): Promise<boolean>;
  /** Fetches the model onto the server (Ollama); a permanent error where the API has no such thing. */
  pull(model: string): Promise<void>;
}

export type LlmProvider = 'ollama' | 'openai';

/** A fetch that gives up after `timeoutMs` (and still honours the caller's own signal). */
export function timedFetch(timeoutMs: number): typeof fetch {
  return (input, init) =>
    fetch(input, {
      ...init,
      signal: init?.signal ? AbortSignal.any([init.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
    });
}

const isAbort = (err: unknown) => {
  const name = (err as { name?: string })?.name;
  return name === 'TimeoutError' || name === 'AbortError';
};

/** Classifies whatever the ollama client threw. */
export function classifyOllamaError(err: unknown): LlmError {
  if (err instanceof LlmError) return err;
  const e = err as { name?: string; status_code?: number; message?: string; cause?: { code?: string } };
  const message = e?.message ?? String(err);
  if (isAbort(err)) return new LlmError('LLM_TIMEOUT', 'Ollama did not answer in time', true, { cause: err });
  if (e?.name === 'ResponseError' && typeof e.status_code === 'number') {
    if (e.status_code === 404 && /model/i.test(message))
      return new LlmError('LLM_MODEL_NOT_FOUND', `model not available on Ollama (${message}); run \`ollama pull\``, true, { cause: err });
    if (e.status_code >= 500 || e.status_code === 429)
      return new LlmError('LLM_SERVER_ERROR', `Ollama answered ${e.status_code}: ${message}`, true, { cause: err });
    return new LlmError('LLM_BAD_REQUEST', `Ollama answered ${e.status_code}: ${message}`, false, { cause: err });
  }
  return new LlmError('LLM_UNREACHABLE', `cannot reach Ollama: ${e?.cause?.code ?? message}`, true, { cause: err });
}

export class OllamaBackend implements ChatBackend {
  private readonly ollama: Ollama;
  constructor(
    readonly url: string,
    timeoutMs: number,
  ) {
    this.ollama = new Ollama({ host: url, fetch: timedFetch(timeoutMs) });
  }

  async chat(req: ChatRequest): Promise<ChatAnswer> {
    try {
      const res = await this.ollama.chat({
        model: req.model,
        messages: req.messages,
        format: req.schema,
        stream: false,
        options: { temperature: 0, num_ctx: req.numCtx },
      });
      return {
        content: res.message.content,
        promptTokens: res.prompt_eval_count ?? 0,
        completionTokens: res.eval_count ?? 0,
        modelMs: Math.round((res.total_duration ?? 0) / 1e6),
      };
    } catch (err) {
      throw classifyOllamaError(err);
    }
  }

  async hasModel(model: string): Promise<boolean> {
    const wanted = model.includes(':') ? model : `${model}:latest`;
    try {
      const { models } = await this.ollama.list();
      return models.some((m) => m.name === wanted || m.model === wanted);
    } catch (err) {
      throw classifyOllamaError(err);
    }
  }

  async pull(model: string): Promise<void> {
    try {
      await this.ollama.pull({ model, stream: false });
    } catch (err) {
      throw classifyOllamaError(err);
    }
  }
}

/** How much of a structured-output request an OpenAI-compatible server accepted. */
type ResponseFormat = 'json_schema' | 'json_object' | 'none';
const WEAKER: Record<ResponseFormat, ResponseFormat | null> = { json_schema: 'json_object', json_object: 'none', none: null };

/**
 * An OpenAI-compatible server (`LLM_BASE_URL`, e.g. http://vllm:8000/v1). Structured output where
 * the server supports it: a JSON schema first; a server that refuses that gets JSON mode, then plain
 * output (the client validates every answer against the schema either way). What a server accepted
 * is remembered, so the refusal costs one request once.
 */
export class OpenAiBackend implements ChatBackend {
  private format: ResponseFormat = 'json_schema';
  private readonly fetch: typeof fetch;
  constructor(
    readonly url: string,
    timeoutMs: number,
    private readonly apiKey?: string,
  ) {
    this.fetch = timedFetch(timeoutMs);
  }

  /** The response_format this server is sent now (tests, and the health details). */
  get responseFormat(): ResponseFormat {
    return this.format;
  }

  private async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: any; text: string }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    let res: Response;
    try {
      res = await this.fetch(`${this.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      if (isAbort(err)) throw new LlmError('LLM_TIMEOUT', `${this.url} did not answer in time`, true, { cause: err });
      const code = (err as { cause?: { code?: string } })?.cause?.code;
      throw new LlmError('LLM_UNREACHABLE', `cannot reach ${this.url}: ${code ?? (err as Error).message}`, true, { cause: err });
    }
    const text = await res.text();
    let json: any = null;
    try {
      json = JSON.parse(text);
    } catch {
      // an HTML error page, or nothing
    }
    return { status: res.status, json, text };
  }

  private failure(status: number, json: any, text: string): LlmError {
    const message: string = json?.error?.message ?? json?.message ?? (typeof json?.error === 'string' ? json.error : text.slice(0, 200));
    const said = `${this.url} answered ${status}: ${message}`;
    if (status === 401 || status === 403) return new LlmError('LLM_SERVER_ERROR', `${said}; check LLM_API_KEY`, true);
    if (status === 404 && (json?.error?.code === 'model_not_found' || /model/i.test(message)))
      return new LlmError('LLM_MODEL_NOT_FOUND', `${said}; load the model on the server or set OLLAMA_MODEL to one it serves`, true);
    if (status === 404) return new LlmError('LLM_SERVER_ERROR', `${said}; is LLM_BASE_URL the API's base (usually ending in /v1)?`, true);
    if (status >= 500 || status === 429) return new LlmError('LLM_SERVER_ERROR', said, true);
    return new LlmError('LLM_BAD_REQUEST', said, false);
  }

  private responseFormatFor(schema: object) {
    if (this.format === 'json_schema') return { type: 'json_schema', json_schema: { name: 'mail_analysis', schema } };
    if (this.format === 'json_object') return { type: 'json_object' };
    return undefined;
  }

  async chat(req: ChatRequest): Promise<ChatAnswer> {
    for (;;) {
      const response_format = this.responseFormatFor(req.schema);
      const { status, json, text } = await this.request('POST', '/chat/completions', {
        model: req.model,
        messages: req.messages,
        temperature: 0,
        stream: false,
        ...(response_format ? { response_format } : {}),
      });
      if (status === 200) {
        const content = json?.choices?.[0]?.message?.content;
        if (typeof content !== 'string') throw new LlmError('LLM_SERVER_ERROR', `${this.url} answered without a message`, true);
        return { content, promptTokens: json.usage?.prompt_tokens ?? 0, completionTokens: json.usage?.completion_tokens ?? 0, modelMs: 0 };
      }
      // A server that does not know this response_format: ask again with the next weaker one.
      const weaker = WEAKER[this.format];
      if ((status === 400 || status === 422) && weaker && /response_format|json_schema|json_object|grammar|guided/i.test(text)) {
        this.format = weaker;
        continue;
      }
      throw this.failure(status, json, text);
    }
  }

  async hasModel(model: string): Promise<boolean> {
    const { status, json, text } = await this.request('GET', '/models');
    if (status !== 200) throw this.failure(status, json, text);
    return Array.isArray(json?.data) && json.data.some((m: { id?: string }) => m.id === model);
  }

  async pull(model: string): Promise<void> {
    throw new LlmError('LLM_BAD_REQUEST', `an OpenAI-compatible server cannot be asked to fetch a model: load ${model} on ${this.url} yourself`, false);
  }
}

export function backendFor(provider: LlmProvider, url: string, timeoutMs: number, apiKey?: string): ChatBackend {
  return provider === 'openai' ? new OpenAiBackend(url, timeoutMs, apiKey) : new OllamaBackend(url, timeoutMs);
}
