import { Ollama, type Message } from 'ollama';
import { Agent, fetch as undiciFetch } from 'undici';
import { LlmError } from './llm-error.js';
import { sameOllamaModel } from './model-names.js';

/**
 * The two ways to reach a model server: Ollama's own API, and the OpenAI-compatible one that vLLM,
 * llama.cpp's server and LM Studio serve. The LLM client (llm.ts) routes, retries and validates;
 * a backend makes one request and says in the shared error vocabulary what went wrong.
 */

/** `LLM_THINK`: false (default), true, or gpt-oss's effort levels. */
export type ThinkSetting = 'false' | 'true' | 'low' | 'medium' | 'high';

export interface ChatRequest {
  model: string;
  messages: Message[];
  /** JSON schema the answer must match (structured output). */
  schema: object;
  /** Context window to ask for (Ollama's num_ctx; the same on every call, see LLM_NUM_CTX). */
  numCtx: number;
  /** The most tokens the answer may have (num_predict / max_tokens). */
  maxTokens: number;
  think: ThinkSetting;
}

export interface ChatAnswer {
  content: string;
  promptTokens: number;
  completionTokens: number;
  /** The server's own time for the call when it reports one (Ollama), else 0. */
  modelMs: number;
  /**
   * `prompt`: the server cut the prompt to fit its window (Ollama drops the start: the system
   * message first); `answer`: the answer stopped at its token limit. Neither is a usable result.
   */
  truncated?: 'prompt' | 'answer';
}

export interface ServerInfo {
  /** The server's version where it tells one (Ollama's /api/version). */
  version?: string;
  /** Whether the model is there (Ollama: pulled; OpenAI API: served). */
  hasModel: boolean;
  /** The name requests use, when the server serves one model under another name (llama-server's alias or file path). */
  servedAs?: string;
}

export interface PullProgress {
  status: string;
  completed?: number;
  total?: number;
}

export interface ChatBackend {
  readonly url: string;
  chat(req: ChatRequest): Promise<ChatAnswer>;
  /** Version and whether the model is there; throws when the server cannot be asked or is too old. */
  describe(model: string): Promise<ServerInfo>;
  /** Fetches the model onto the server (Ollama), reporting progress; a permanent error where the API has no such thing. */
  pull(model: string, onProgress?: (p: PullProgress) => void): Promise<void>;
}

export type LlmProvider = 'ollama' | 'openai';

/**
 * A fetch that gives up after `timeoutMs`, however long that is. Node's own fetch stops waiting for
 * response headers after 300 s whatever the signal says, and Ollama with `stream: false` sends its
 * headers only when the answer is complete: measured, a 400 s limit failed at 300.9 s with
 * UND_ERR_HEADERS_TIMEOUT. So the dispatcher's header and body timeouts are the limit itself.
 */
export function timedFetch(timeoutMs: number, opts: { stallMs?: number } = {}): typeof fetch {
  const dispatcher = new Agent({
    headersTimeout: opts.stallMs ?? timeoutMs,
    bodyTimeout: opts.stallMs ?? timeoutMs,
    connect: { timeout: Math.min(timeoutMs, 10_000) },
  });
  return ((input: any, init?: any) => {
    const limit = Number.isFinite(timeoutMs) ? AbortSignal.timeout(timeoutMs) : undefined;
    const signal = init?.signal && limit ? AbortSignal.any([init.signal, limit]) : (init?.signal ?? limit);
    return undiciFetch(input, { ...init, dispatcher, signal });
  }) as unknown as typeof fetch;
}

const isAbort = (err: unknown) => {
  const name = (err as { name?: string })?.name;
  const code = (err as { cause?: { code?: string } })?.cause?.code;
  return name === 'TimeoutError' || name === 'AbortError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
};

/** 400s that only the output schema (its grammar) or the structured-output request can cause. */
const SCHEMA_PROBLEM = /grammar|json.?schema|invalid format|\bformat\b|response_format|guided|sampler/i;

/** Ollama 0.5.0 took a JSON schema as `format` first; older servers only take "json". */
export const OLLAMA_MIN_VERSION = '0.5.0';

/** -1, 0 or 1, comparing dotted version numbers (a suffix such as `-rc1` is ignored). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/).slice(0, 3).map((n) => Number.parseInt(n, 10) || 0);
  const pb = b.split(/[.+-]/).slice(0, 3).map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) < (pb[i] ?? 0) ? -1 : 1;
  return 0;
}

/** Classifies whatever the ollama client threw. */
export function classifyOllamaError(err: unknown, url = '(OLLAMA_HOST)'): LlmError {
  if (err instanceof LlmError) return err;
  const e = err as { name?: string; status_code?: number; message?: string; cause?: { code?: string } };
  const message = e?.message ?? String(err);
  if (isAbort(err)) return new LlmError('LLM_TIMEOUT', `Ollama at ${url} did not answer in time`, true, { cause: err });
  if (e?.name === 'ResponseError' && typeof e.status_code === 'number') {
    if (e.status_code === 404 && /model/i.test(message))
      return new LlmError('LLM_MODEL_NOT_FOUND', `model not available on Ollama at ${url} (${message}); run \`ollama pull\``, true, { cause: err });
    if (e.status_code >= 500 || e.status_code === 429) return new LlmError('LLM_SERVER_ERROR', `Ollama at ${url} answered ${e.status_code}: ${message}`, true, { cause: err });
    if (SCHEMA_PROBLEM.test(message)) {
      return new LlmError(
        'LLM_SCHEMA_REJECTED',
        `Ollama at ${url} refused mailsight's output schema (${message}): the same for every message, so the jobs wait; upgrade Ollama, or report it to mailsight with the server's version`,
        true,
        { cause: err },
      );
    }
    return new LlmError('LLM_BAD_REQUEST', `Ollama at ${url} answered ${e.status_code}: ${message}`, false, { cause: err });
  }
  return new LlmError('LLM_UNREACHABLE', `cannot reach Ollama at ${url}: ${networkCode(err) ?? message}`, true, { cause: err });
}

/** The socket error under a fetch failure (undici nests it: TypeError -> cause, or an AggregateError's errors). */
function networkCode(err: unknown): string | undefined {
  for (let e = err as { code?: string; cause?: unknown; errors?: unknown[] } | undefined, depth = 0; e && depth < 4; depth++) {
    if (typeof e.code === 'string' && !e.code.startsWith('UND_ERR_')) return e.code;
    e = (e.cause ?? e.errors?.[0]) as typeof e;
  }
  return undefined;
}

/** How long what a server said of itself (its version, the model it serves) is trusted before it is asked again. */
const SERVER_RECHECK_MS = 10 * 60_000;
/** A pull may take hours on a slow link; it fails only when no progress arrives for this long. */
const PULL_STALL_MS = 5 * 60_000;

export class OllamaBackend implements ChatBackend {
  private readonly ollama: Ollama;
  private readonly puller: Ollama;
  private version?: { value: string; at: number };
  constructor(
    readonly url: string,
    timeoutMs: number,
  ) {
    this.ollama = new Ollama({ host: url, fetch: timedFetch(timeoutMs) });
    // No overall limit for a pull, only for a stall: Ollama cancels a pull whose client went away.
    this.puller = new Ollama({ host: url, fetch: timedFetch(Number.POSITIVE_INFINITY, { stallMs: PULL_STALL_MS }) });
  }

  /** The server's version; refuses one too old for a schema as `format` (it would 400 every call). */
  private async assertCompatible(): Promise<string> {
    if (this.version && Date.now() - this.version.at < SERVER_RECHECK_MS) return this.version.value;
    let value: string;
    try {
      value = (await this.ollama.version()).version;
    } catch (err) {
      throw classifyOllamaError(err, this.url);
    }
    if (compareVersions(value, '0.0.1') >= 0 && compareVersions(value, OLLAMA_MIN_VERSION) < 0) {
      this.version = undefined;
      throw new LlmError(
        'LLM_SERVER_TOO_OLD',
        `Ollama ${value} at ${this.url} is too old: structured output with a JSON schema needs Ollama ${OLLAMA_MIN_VERSION} or later; upgrade it`,
        true,
      );
    }
    this.version = { value, at: Date.now() };
    return value;
  }

  async chat(req: ChatRequest): Promise<ChatAnswer> {
    await this.assertCompatible();
    try {
      const res = await this.ollama.chat({
        model: req.model,
        messages: req.messages,
        format: req.schema,
        stream: false,
        think: req.think === 'false' ? false : req.think === 'true' ? true : req.think,
        options: { temperature: 0, num_ctx: req.numCtx, num_predict: req.maxTokens },
      });
      const promptTokens = res.prompt_eval_count ?? 0;
      return {
        content: res.message.content,
        promptTokens,
        completionTokens: res.eval_count ?? 0,
        modelMs: Math.round((res.total_duration ?? 0) / 1e6),
        // Ollama cuts a prompt longer than num_ctx to num_ctx tokens and says nothing but this
        // (the answer then has no room either: the prompt is the cause to report).
        truncated: promptTokens >= req.numCtx ? 'prompt' : res.done_reason === 'length' ? 'answer' : undefined,
      };
    } catch (err) {
      throw classifyOllamaError(err, this.url);
    }
  }

  async describe(model: string): Promise<ServerInfo> {
    const version = await this.assertCompatible();
    try {
      const { models } = await this.ollama.list();
      return { version, hasModel: models.some((m) => sameOllamaModel(m.name, model) || sameOllamaModel(m.model, model)) };
    } catch (err) {
      throw classifyOllamaError(err, this.url);
    }
  }

  async pull(model: string, onProgress?: (p: PullProgress) => void): Promise<void> {
    try {
      const stream = await this.puller.pull({ model, stream: true });
      for await (const part of stream) {
        onProgress?.({ status: part.status, completed: part.completed, total: part.total });
        if ((part as { error?: string }).error) throw new LlmError('LLM_SERVER_ERROR', `pull of ${model} failed: ${(part as { error?: string }).error}`, true);
      }
    } catch (err) {
      throw classifyOllamaError(err, this.url);
    }
  }
}

/** How much of a structured-output request an OpenAI-compatible server accepted. */
type ResponseFormat = 'json_schema' | 'json_object' | 'none';
const WEAKER: Record<ResponseFormat, ResponseFormat | null> = { json_schema: 'json_object', json_object: 'none', none: null };
/** A server that refused a response_format is asked with it again after this long (it may have been upgraded). */
const FORMAT_REPROBE_MS = 10 * 60_000;
/** 400s of a prompt longer than the server's window (llama-server, vLLM). */
const PROMPT_TOO_LONG = /context (length|size|window)|maximum context|too many tokens|exceeds the (available )?context|prompt is too long/i;

/**
 * An OpenAI-compatible server (`LLM_BASE_URL`, e.g. http://vllm:8000/v1). Structured output where
 * the server supports it: a JSON schema first; a server that refuses that gets JSON mode with the
 * schema alongside (llama-server enforces it there), then plain output (the client validates every
 * answer against the schema either way). What this server accepted is remembered for
 * FORMAT_REPROBE_MS, then the stronger format is tried again.
 */
export class OpenAiBackend implements ChatBackend {
  private format: ResponseFormat = 'json_schema';
  private formatSince = 0;
  private served?: { id: string | undefined; at: number };
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
    if (this.format !== 'json_schema' && Date.now() - this.formatSince > FORMAT_REPROBE_MS) this.format = 'json_schema';
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
      throw new LlmError('LLM_UNREACHABLE', `cannot reach ${this.url}: ${networkCode(err) ?? (err as Error).message}`, true, { cause: err });
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

  private failure(status: number, json: any, text: string, path: string): LlmError {
    const message: string = json?.error?.message ?? json?.message ?? (typeof json?.error === 'string' ? json.error : text.slice(0, 200));
    const said = `${this.url} answered ${status}: ${message}`;
    if (status === 401 || status === 403) return new LlmError('LLM_SERVER_ERROR', `${said}; check LLM_API_KEY`, true);
    // A 404 for /models itself means the base URL is wrong, whatever its text says.
    if (status === 404 && path !== '/models' && (json?.error?.code === 'model_not_found' || /model/i.test(message)))
      return new LlmError('LLM_MODEL_NOT_FOUND', `${said}; load the model on the server or set OLLAMA_MODEL to one it serves`, true);
    if (status === 404) return new LlmError('LLM_SERVER_ERROR', `${said}; is LLM_BASE_URL the API's base (usually ending in /v1)?`, true);
    if (status >= 500 || status === 429) return new LlmError('LLM_SERVER_ERROR', said, true);
    if (PROMPT_TOO_LONG.test(message)) return new LlmError('LLM_TRUNCATED', `${said}; the prompt does not fit the server's context window: set LLM_NUM_CTX to it`, false);
    if (SCHEMA_PROBLEM.test(message)) return new LlmError('LLM_SCHEMA_REJECTED', `${said}; the same for every message, so the jobs wait`, true);
    return new LlmError('LLM_BAD_REQUEST', said, false);
  }

  private responseFormatFor(schema: object) {
    const format = this.responseFormat;
    if (format === 'json_schema') return { type: 'json_schema', json_schema: { name: 'mail_analysis', schema } };
    // llama-server takes a schema beside JSON mode and enforces it; others ignore the extra field.
    if (format === 'json_object') return { type: 'json_object', schema };
    return undefined;
  }

  /** The model id to send: the configured one, or the only one a single-model server (llama-server) serves. */
  private async modelFor(model: string): Promise<string> {
    if (!this.served || Date.now() - this.served.at > SERVER_RECHECK_MS) await this.describe(model);
    return this.served?.id ?? model;
  }

  async chat(req: ChatRequest): Promise<ChatAnswer> {
    const model = await this.modelFor(req.model);
    for (;;) {
      const response_format = this.responseFormatFor(req.schema);
      const { status, json, text } = await this.request('POST', '/chat/completions', {
        model,
        messages: req.messages,
        temperature: 0,
        max_tokens: req.maxTokens,
        stream: false,
        ...(response_format ? { response_format } : {}),
      });
      if (status === 200) {
        const choice = json?.choices?.[0];
        const content = choice?.message?.content;
        if (typeof content !== 'string') throw new LlmError('LLM_SERVER_ERROR', `${this.url} answered without a message`, true);
        return {
          content,
          promptTokens: json.usage?.prompt_tokens ?? 0,
          completionTokens: json.usage?.completion_tokens ?? 0,
          modelMs: 0,
          truncated: choice.finish_reason === 'length' ? 'answer' : undefined,
        };
      }
      // A server that does not know this response_format: ask again with the next weaker one.
      const weaker = WEAKER[this.format];
      if ((status === 400 || status === 422) && weaker && /response_format|json_schema|json_object|grammar|guided/i.test(text)) {
        this.format = weaker;
        this.formatSince = Date.now();
        continue;
      }
      throw this.failure(status, json, text, '/chat/completions');
    }
  }

  async describe(model: string): Promise<ServerInfo> {
    const { status, json, text } = await this.request('GET', '/models');
    if (status !== 200) throw this.failure(status, json, text, '/models');
    const ids: string[] = Array.isArray(json?.data) ? json.data.map((m: { id?: string }) => String(m.id)) : [];
    const exact = ids.find((id) => id === model) ?? ids.find((id) => id.toLowerCase() === model.toLowerCase());
    // A single-model server (llama-server) lists its model under --alias or the file path: it is the model.
    const only = ids.length === 1 ? ids[0] : undefined;
    this.served = { id: exact ?? only, at: Date.now() };
    return { hasModel: Boolean(exact ?? only), servedAs: exact ?? only };
  }

  async pull(model: string): Promise<void> {
    throw new LlmError('LLM_BAD_REQUEST', `an OpenAI-compatible server cannot be asked to fetch a model: load ${model} on ${this.url} yourself`, false);
  }
}

export function backendFor(provider: LlmProvider, url: string, timeoutMs: number, apiKey?: string): ChatBackend {
  return provider === 'openai' ? new OpenAiBackend(url, timeoutMs, apiKey) : new OllamaBackend(url, timeoutMs);
}
