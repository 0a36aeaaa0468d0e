import type { Message } from 'ollama';
import { backendFor, type ChatAnswer, type ChatBackend, type LlmProvider } from './llm-backends.js';
import { LlmError } from './llm-error.js';
import { Rest } from '../queue/job-error.js';
import { analysisJsonSchema, analysisResultSchema, type AnalysisResult } from './result.js';
import type { Config } from '../config.js';
import { estimateTokens, type Prompt } from './prompt.js';

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
  /** Smallest and largest context window to ask for; the prompt's size decides between them. */
  minCtx?: number;
  maxCtx?: number;
}

const OUTPUT_TOKENS_BUDGET = 700;
/** A host that failed is left alone this long, doubling per failure in a row, up to hostRetryMaxMs. */
const HOST_RETRY_BASE_MS = 1_000;
const HOST_RETRY_MAX_MS = 30_000;

interface Host {
  url: string;
  backend: ChatBackend;
  inFlight: number;
  rest: Rest;
}

/** Errors that say the host (not the request) is the problem: try another one, and rest this one. */
const HOST_FAILURES = new Set(['LLM_UNREACHABLE', 'LLM_TIMEOUT', 'LLM_SERVER_ERROR', 'LLM_MODEL_NOT_FOUND']);

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

  /** Context window: the prompt plus room for the answer, rounded up to a power of two. */
  contextFor(prompt: Prompt): number {
    const need = estimateTokens(prompt.system) + estimateTokens(prompt.user) + OUTPUT_TOKENS_BUDGET;
    let ctx = this.opts.minCtx ?? 2048;
    while (ctx < need && ctx < (this.opts.maxCtx ?? 16384)) ctx *= 2;
    return ctx;
  }

  /**
   * One chat call on the least busy healthy host. A host that is down, overloaded or lacks the model
   * is rested (with backoff) and the call goes to the next one; when every host failed, the last
   * error is thrown (transient: the job retries later). While every host rests, calls fail at once.
   */
  private async chat(messages: Message[], numCtx: number): Promise<ChatAnswer> {
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
        const res = await h.backend.chat({ model: this.opts.model, messages, schema: analysisJsonSchema as object, numCtx });
        h.rest.ok();
        return res;
      } catch (err) {
        last = err instanceof LlmError ? err : new LlmError('LLM_UNREACHABLE', `cannot reach ${h.url}: ${(err as Error).message}`, true, { cause: err });
        if (!HOST_FAILURES.has(last.code)) throw last;
        h.rest.failed();
      } finally {
        h.inFlight--;
      }
    }
    throw last ?? new LlmError('LLM_UNREACHABLE', 'no LLM host configured', false);
  }

  /**
   * One structured call; output that is not valid JSON or breaks the schema gets one retry with a
   * repair hint, then fails permanently with the reason.
   */
  async analyse(prompt: Prompt): Promise<{ result: AnalysisResult; usage: LlmUsage }> {
    const started = performance.now();
    const numCtx = this.contextFor(prompt);
    const messages: Message[] = [
      { role: 'system', content: prompt.system },
      { role: 'user', content: prompt.user },
    ];
    const usage: LlmUsage = { promptTokens: 0, completionTokens: 0, ms: 0, modelMs: 0, attempts: 0 };
    let lastProblem = '';
    for (let attempt = 1; attempt <= 2; attempt++) {
      const res = await this.chat(messages, numCtx);
      usage.attempts = attempt;
      usage.promptTokens += res.promptTokens;
      usage.completionTokens += res.completionTokens;
      usage.modelMs += res.modelMs;
      const checked = validate(res.content);
      if (checked.ok) {
        usage.ms = Math.round(performance.now() - started);
        return { result: checked.result, usage };
      }
      lastProblem = checked.problem;
      messages.push(
        { role: 'assistant', content: res.content.slice(0, 4000) },
        { role: 'user', content: `That answer was invalid: ${checked.problem}. Answer again with only the JSON object that matches the schema.` },
      );
    }
    throw new LlmError('LLM_INVALID_OUTPUT', `model output invalid after a repair attempt: ${lastProblem}`, false);
  }

  /** Pulls the model onto every Ollama server that lacks it (OLLAMA_AUTO_PULL); waits until it is there. */
  async pull(): Promise<void> {
    for (const h of this.hosts) {
      if (!(await h.backend.hasModel(this.opts.model))) await h.backend.pull(this.opts.model);
    }
  }

  /**
   * For /ready: every host reachable with the model present. With several hosts the first failure is
   * reported (the others' states are in `hosts`).
   */
  async check(): Promise<{ model: string; provider: LlmProvider; hosts?: ReturnType<LlmClient['hostStates']['slice']> }> {
    for (const h of this.hosts) {
      let present;
      try {
        present = await h.backend.hasModel(this.opts.model);
      } catch (err) {
        const e = err as LlmError;
        throw this.hosts.length > 1 ? new LlmError(e.code, `${h.url}: ${e.message}`, e.transient, { cause: err }) : e;
      }
      const missing = this.opts.provider === 'openai' ? 'is not served by' : 'is not pulled on';
      if (!present) throw new LlmError('LLM_MODEL_NOT_FOUND', `model ${this.opts.model} ${missing} ${h.url}`, true);
    }
    return { model: this.opts.model, provider: this.opts.provider ?? 'ollama', ...(this.hosts.length > 1 ? { hosts: this.hostStates } : {}) };
  }
}

/** The client the configuration asks for: Ollama at OLLAMA_HOST, or an OpenAI-compatible server at LLM_BASE_URL. */
export function llmClientFor(config: Config, timeoutMs = config.ollama.timeoutMs): LlmClient {
  const o = config.ollama;
  return new LlmClient({ provider: o.provider, host: llmHostOf(config), apiKey: o.apiKey, model: o.model, timeoutMs, hostRetryMaxMs: o.hostRestMaxSec * 1000 });
}

/** Where the model is, for logs, health and `mailsight check`: the base URL(s) of the configured provider. */
export const llmHostOf = (config: Config) => (config.ollama.provider === 'openai' ? config.ollama.baseUrl! : config.ollama.host);
