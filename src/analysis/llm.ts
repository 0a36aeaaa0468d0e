import type { Message } from 'ollama';
import { backendFor, type ChatAnswer, type ChatBackend, type LlmProvider, type PullProgress, type ThinkSetting } from './llm-backends.js';
import { LlmError } from './llm-error.js';
import { Rest } from '../util/backoff.js';
import { analysisJsonSchema, analysisResultSchema, type AnalysisResult } from './result.js';
import type { Config } from '../config.js';
import type { Prompt } from './prompt.js';
import { ESTIMATE, estimateTokens, hasExactTokenizer, TEMPLATE_TOKENS_PER_MESSAGE, tokenCounterFor, type TokenCounter } from './tokens.js';

export { LlmError, type LlmErrorCode } from './llm-error.js';

export interface LlmUsage {
  promptTokens: number;
  completionTokens: number;
  /** Wall time of the call(s), ms. */
  ms: number;
  /** Ollama's own total_duration, ms. */
  modelMs: number;
  attempts: number;
}

export interface LlmClientOptions {
  /** One server, or several comma-separated (OLLAMA_HOST; LLM_BASE_URL for the OpenAI API). */
  host: string;
  /** Ollama's API (default) or an OpenAI-compatible server's. */
  provider?: LlmProvider;
  /** Bearer key for an OpenAI-compatible server (LLM_API_KEY). */
  apiKey?: string;
  model: string;
  timeoutMs: number;
  /** How long a failed host rests before it is tried again (doubling per failure in a row, up to the max). */
  hostRetryBaseMs?: number;
  hostRetryMaxMs?: number;
  /** The context window asked for on every call (LLM_NUM_CTX); prompts are cut to fit it. */
  numCtx?: number;
  /** LLM_THINK (default false: thinking models answer at once). */
  think?: ThinkSetting;
}

/**
 * Tokens kept free for the answer, and the answer's limit (num_predict / max_tokens). The longest
 * answer the schema allows is about 3,500 characters of JSON; English runs about 4 characters a token.
 */
export const OUTPUT_TOKENS = 1024;
export const DEFAULT_NUM_CTX = 4096;
/** The smallest body worth sending when a prompt must be cut to fit (below it, the headers carry the verdict). */
const MIN_BODY_CHARS = 200;
/** A host that failed is left alone this long, doubling per failure in a row, up to hostRetryMaxMs. */
const HOST_RETRY_BASE_MS = 1_000;
const HOST_RETRY_MAX_MS = 30_000;

interface Host {
  url: string;
  backend: ChatBackend;
  inFlight: number;
  rest: Rest;
  /** The last failure that says the host cannot serve mailsight at all (too old, schema refused), for readiness. */
  unusable?: LlmError;
}

/** Errors that say the host (not the request) is the problem: try another one, and rest this one. */
const HOST_FAILURES = new Set(['LLM_UNREACHABLE', 'LLM_TIMEOUT', 'LLM_SERVER_ERROR', 'LLM_MODEL_NOT_FOUND', 'LLM_SERVER_TOO_OLD', 'LLM_SCHEMA_REJECTED']);
/** Host failures that no retry of the same request fixes: shown by readiness until a call works. */
const UNUSABLE = new Set(['LLM_SERVER_TOO_OLD', 'LLM_SCHEMA_REJECTED']);

/** A prompt that fits, and how to make a smaller one when the server still cut it. */
export interface PromptSource {
  prompt: Prompt;
  /** A smaller prompt (a shorter body), or undefined when there is none. */
  smaller?: () => Prompt | undefined;
}

function validate(content: string): { ok: true; result: AnalysisResult } | { ok: false; problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(content);
  } catch {
    // Not the parser's message: it quotes the model's output, which may echo the email.
    return { ok: false, problem: `not JSON (${content.length} characters)` };
  }
  const r = analysisResultSchema.safeParse(json);
  if (r.success) return { ok: true, result: r.data };
  return { ok: false, problem: r.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ') };
}

export class LlmClient {
  private readonly hosts: Host[];
  constructor(private readonly opts: LlmClientOptions) {
    this.hosts = opts.host
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean)
      .map((url) => ({
        url,
        backend: backendFor(opts.provider ?? 'ollama', url, opts.timeoutMs, opts.apiKey),
        inFlight: 0,
        rest: new Rest(opts.hostRetryBaseMs ?? HOST_RETRY_BASE_MS, opts.hostRetryMaxMs ?? HOST_RETRY_MAX_MS),
      }));
  }

  /** Each host's state, for /ready and the health endpoint. */
  get hostStates() {
    const now = Date.now();
    return this.hosts.map((h) => ({ host: h.url, inFlight: h.inFlight, healthy: h.rest.remaining(now) === 0, failures: h.rest.failuresInARow }));
  }

  /** The least busy healthy host not tried yet for this call. */
  private pick(tried: Set<Host>): Host | undefined {
    const now = Date.now();
    return this.hosts.filter((h) => !tried.has(h) && h.rest.remaining(now) === 0).sort((a, b) => a.inFlight - b.inFlight)[0];
  }

  /** How long until some host may be tried again: 0 when one may be tried now. */
  private outageMs(): number {
    const now = Date.now();
    return Math.min(...this.hosts.map((h) => h.rest.remaining(now)));
  }

  get model() {
    return this.opts.model;
  }

  get numCtx(): number {
    return this.opts.numCtx ?? DEFAULT_NUM_CTX;
  }

  /** Tokens a prompt (system + user, with the chat template's overhead) may have: the window less the answer's room. */
  get promptBudget(): number {
    return this.numCtx - OUTPUT_TOKENS - 2 * TEMPLATE_TOKENS_PER_MESSAGE;
  }

  private counter?: Promise<TokenCounter>;
  /** The model family's tokenizer where one is packaged (Llama 3), else the conservative estimate. */
  tokens(): Promise<TokenCounter> {
    this.counter ??= tokenCounterFor(this.opts.model).catch(() => ESTIMATE);
    return this.counter;
  }

  /**
   * The prompt `build` makes with the largest body that fits the context window, counted with the
   * model's tokenizer; `smaller` halves the body again, for when the server still cut it.
   */
  async fit(build: (maxBodyChars: number) => Prompt, maxBodyChars: number): Promise<PromptSource> {
    // The estimate is never below Llama 3's count (tokens.ts), so a prompt it fits needs no exact
    // count: the tokenizer (0.9 s to load, about 5 ms a prompt) is loaded and run only for the few
    // long prompts.
    const size = async (p: Prompt) => {
      const estimate = this.systemTokens(p.system, ESTIMATE) + estimateTokens(p.user);
      if (estimate <= this.promptBudget || !hasExactTokenizer(this.opts.model)) return estimate;
      const counter = await this.tokens();
      return this.systemTokens(p.system, counter) + counter.count(p.user);
    };
    let chars = maxBodyChars;
    let prompt = build(chars);
    for (let i = 0; i < 8; i++) {
      const need = await size(prompt);
      if (need <= this.promptBudget || chars <= MIN_BODY_CHARS) break;
      // Shrink in proportion to the excess, by at least a tenth, and try again.
      chars = Math.max(MIN_BODY_CHARS, Math.floor(chars * Math.min(0.9, (this.promptBudget / need) * 0.95)));
      prompt = build(chars);
    }
    const fitted = chars;
    return { prompt, smaller: () => (fitted > MIN_BODY_CHARS ? build(Math.max(MIN_BODY_CHARS, Math.floor(fitted / 2))) : undefined) };
  }

  /** The system prompt is the same for every message: counted once per counter. */
  private readonly systemCounts = new Map<TokenCounter, { text: string; tokens: number }>();
  private systemTokens(text: string, counter: TokenCounter): number {
    const known = this.systemCounts.get(counter);
    if (known?.text === text) return known.tokens;
    const tokens = counter.count(text);
    this.systemCounts.set(counter, { text, tokens });
    return tokens;
  }

  /**
   * One chat call on the least busy healthy host. A host that is down, overloaded or lacks the model
   * is rested (with backoff) and the call goes to the next one; when every host failed, the last
   * error is thrown (transient: the job retries later). While every host rests, calls fail at once.
   */
  private async chat(messages: Message[]): Promise<ChatAnswer> {
    // Every host rests after failing: an outage. The job comes back when the first rest ends, without
    // spending an attempt; the call that finds a host still failing spends one.
    const resting = this.outageMs();
    if (resting > 0) {
      throw new LlmError('LLM_UNREACHABLE', `every LLM host failed recently; trying again in ${Math.ceil(resting / 1000)} s`, true, { outageMs: resting });
    }
    const tried = new Set<Host>();
    let last: LlmError | undefined;
    for (let h = this.pick(tried); h; h = this.pick(tried)) {
      tried.add(h);
      h.inFlight++;
      try {
        const res = await h.backend.chat({
          model: this.opts.model,
          messages,
          schema: analysisJsonSchema as object,
          numCtx: this.numCtx,
          maxTokens: OUTPUT_TOKENS,
          think: this.opts.think ?? 'false',
        });
        h.rest.ok();
        h.unusable = undefined;
        return res;
      } catch (err) {
        last = err instanceof LlmError ? err : new LlmError('LLM_UNREACHABLE', `cannot reach ${h.url}: ${(err as Error).message}`, true, { cause: err });
        if (!HOST_FAILURES.has(last.code)) throw last;
        if (UNUSABLE.has(last.code)) h.unusable = last;
        h.rest.failed();
      } finally {
        h.inFlight--;
      }
    }
    throw last ?? new LlmError('LLM_UNREACHABLE', 'no LLM host configured', false);
  }

  /**
   * One structured call. Output that is not valid JSON or breaks the schema gets one retry with a
   * repair hint; a prompt the server cut, or an answer cut at its token limit, gets one retry with a
   * smaller prompt. Either way it then fails permanently with the reason: a cut answer is never
   * stored as a result.
   */
  async analyse(source: Prompt | PromptSource): Promise<{ result: AnalysisResult; usage: LlmUsage }> {
    const started = performance.now();
    const { prompt, smaller } = 'prompt' in source ? source : { prompt: source, smaller: undefined };
    let messages: Message[] = [
      { role: 'system', content: prompt.system },
      { role: 'user', content: prompt.user },
    ];
    const usage: LlmUsage = { promptTokens: 0, completionTokens: 0, ms: 0, modelMs: 0, attempts: 0 };
    let lastProblem = '';
    let repaired = false;
    let shrunk = false;
    for (;;) {
      const res = await this.chat(messages);
      usage.attempts++;
      usage.promptTokens += res.promptTokens;
      usage.completionTokens += res.completionTokens;
      usage.modelMs += res.modelMs;
      if (res.truncated) {
        const why =
          res.truncated === 'prompt'
            ? `the server cut the prompt to its window (${res.promptTokens} of ${this.numCtx} tokens)`
            : `the answer stopped at its limit of ${OUTPUT_TOKENS} tokens`;
        const next = shrunk ? undefined : smaller?.();
        if (!next) throw new LlmError('LLM_TRUNCATED', `${why}; not stored as a result (LLM_NUM_CTX is ${this.numCtx})`, false);
        shrunk = true;
        messages = [
          { role: 'system', content: next.system },
          { role: 'user', content: next.user },
        ];
        continue;
      }
      const checked = validate(res.content);
      if (checked.ok) {
        usage.ms = Math.round(performance.now() - started);
        return { result: checked.result, usage };
      }
      lastProblem = checked.problem;
      if (repaired) break;
      repaired = true;
      messages = [...messages.slice(0, 2), ...this.repairTurn(messages, res.content, checked.problem)];
    }
    throw new LlmError('LLM_INVALID_OUTPUT', `model output invalid after a repair attempt: ${lastProblem}`, false);
  }

  /**
   * The answer back with what was wrong, cut so the conversation still fits the window (the
   * prompt was sized for one turn; the echo of a long answer would push it out). Sized with the
   * estimate, never below the real count: no tokenizer load for it.
   */
  private repairTurn(messages: Message[], answer: string, problem: string): Message[] {
    const hint = `That answer was invalid: ${problem}. Answer again with only the JSON object that matches the schema.`;
    const used = messages.reduce((n, m) => n + estimateTokens(m.content), 0) + estimateTokens(hint) + 2 * TEMPLATE_TOKENS_PER_MESSAGE;
    const room = this.promptBudget - used;
    let echo = answer.slice(0, 4000);
    while (echo.length > 0 && estimateTokens(echo) > room) echo = echo.slice(0, Math.floor(echo.length * 0.75));
    return [
      { role: 'assistant', content: echo },
      { role: 'user', content: hint },
    ];
  }

  /** Pulls the model onto every Ollama server that lacks it (OLLAMA_AUTO_PULL), reporting progress per host. */
  async pull(onProgress?: (host: string, p: PullProgress) => void): Promise<void> {
    for (const h of this.hosts) {
      if (!(await h.backend.describe(this.opts.model)).hasModel) await h.backend.pull(this.opts.model, (p) => onProgress?.(h.url, p));
    }
  }

  /**
   * For /ready and `check`: every host reachable, recent enough, with the model present, and not
   * known to refuse the schema. With several hosts the first failure is reported (the others'
   * states are in `hosts`).
   */
  async check(): Promise<{ model: string; provider: LlmProvider; numCtx: number; tokenizer: string; version?: string; servedAs?: string; hosts?: ReturnType<LlmClient['hostStates']['slice']> }> {
    let version: string | undefined;
    let servedAs: string | undefined;
    for (const h of this.hosts) {
      let info;
      try {
        if (h.unusable) throw h.unusable;
        info = await h.backend.describe(this.opts.model);
      } catch (err) {
        const e = err as LlmError;
        throw this.hosts.length > 1 ? new LlmError(e.code, `${h.url}: ${e.message}`, e.transient, { cause: err }) : e;
      }
      const missing = this.opts.provider === 'openai' ? 'is not served by' : 'is not pulled on';
      if (!info.hasModel) throw new LlmError('LLM_MODEL_NOT_FOUND', `model ${this.opts.model} ${missing} ${h.url}`, true);
      version ??= info.version;
      if (info.servedAs && info.servedAs !== this.opts.model) servedAs = info.servedAs;
    }
    const tokenizer = hasExactTokenizer(this.opts.model) ? 'exact' : 'estimate';
    return {
      model: this.opts.model,
      provider: this.opts.provider ?? 'ollama',
      numCtx: this.numCtx,
      tokenizer,
      ...(version ? { version } : {}),
      ...(servedAs ? { servedAs } : {}),
      ...(this.hosts.length > 1 ? { hosts: this.hostStates } : {}),
    };
  }
}

/** The client the configuration asks for: Ollama at OLLAMA_HOST, or an OpenAI-compatible server at LLM_BASE_URL. */
export function llmClientFor(config: Config, timeoutMs = config.llm.timeoutMs): LlmClient {
  const o = config.llm;
  return new LlmClient({
    provider: o.provider,
    host: llmHostOf(config),
    apiKey: o.apiKey,
    model: o.model,
    timeoutMs,
    hostRetryMaxMs: o.hostRestMaxSec * 1000,
    numCtx: o.numCtx,
    think: o.think,
  });
}

/** Where the model is, for logs, health and `mailsight check`: the base URL(s) of the configured provider. */
export const llmHostOf = (config: Config) => (config.llm.provider === 'openai' ? config.llm.baseUrl! : config.llm.host);
