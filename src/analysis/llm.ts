import { Ollama, type ChatResponse, type Message } from 'ollama';
import { JobError } from '../queue/job-error.js';
import { analysisJsonSchema, analysisResultSchema, type AnalysisResult } from './result.js';
import { estimateTokens, type Prompt } from './prompt.js';

export type LlmErrorCode =
  | 'LLM_UNREACHABLE'
  | 'LLM_TIMEOUT'
  | 'LLM_SERVER_ERROR'
  | 'LLM_MODEL_NOT_FOUND'
  | 'LLM_BAD_REQUEST'
  | 'LLM_INVALID_OUTPUT';

/** Transient errors retry later; permanent ones fail the job with their reason at once. */
export class LlmError extends JobError<LlmErrorCode> {}

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
  host: string;
  model: string;
  timeoutMs: number;
  /** Smallest and largest context window to ask for; the prompt's size decides between them. */
  minCtx?: number;
  maxCtx?: number;
}

const OUTPUT_TOKENS_BUDGET = 700;

/** Classifies whatever the ollama client threw. */
export function classifyLlmError(err: unknown): LlmError {
  if (err instanceof LlmError) return err;
  const e = err as { name?: string; status_code?: number; message?: string; cause?: { code?: string } };
  const message = e?.message ?? String(err);
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return new LlmError('LLM_TIMEOUT', 'Ollama did not answer in time', true, { cause: err });
  if (e?.name === 'ResponseError' && typeof e.status_code === 'number') {
    if (e.status_code === 404 && /model/i.test(message))
      return new LlmError('LLM_MODEL_NOT_FOUND', `model not available on Ollama (${message}); run \`ollama pull\``, true, { cause: err });
    if (e.status_code >= 500 || e.status_code === 429 || e.status_code === 503)
      return new LlmError('LLM_SERVER_ERROR', `Ollama answered ${e.status_code}: ${message}`, true, { cause: err });
    return new LlmError('LLM_BAD_REQUEST', `Ollama answered ${e.status_code}: ${message}`, false, { cause: err });
  }
  return new LlmError('LLM_UNREACHABLE', `cannot reach Ollama: ${e?.cause?.code ?? message}`, true, { cause: err });
}

function validate(content: string): { ok: true; result: AnalysisResult } | { ok: false; problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(content);
  } catch (err) {
    return { ok: false, problem: `not JSON (${(err as Error).message})` };
  }
  const r = analysisResultSchema.safeParse(json);
  if (r.success) return { ok: true, result: r.data };
  return { ok: false, problem: r.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ') };
}

export class LlmClient {
  private readonly ollama: Ollama;
  constructor(private readonly opts: LlmClientOptions) {
    const timeoutMs = opts.timeoutMs;
    this.ollama = new Ollama({
      host: opts.host,
      fetch: (input, init) =>
        fetch(input, {
          ...init,
          signal: init?.signal ? AbortSignal.any([init.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
        }),
    });
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

  private async chat(messages: Message[], numCtx: number): Promise<ChatResponse> {
    try {
      return await this.ollama.chat({
        model: this.opts.model,
        messages,
        format: analysisJsonSchema as object,
        stream: false,
        options: { temperature: 0, num_ctx: numCtx },
      });
    } catch (err) {
      throw classifyLlmError(err);
    }
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
      usage.promptTokens += res.prompt_eval_count ?? 0;
      usage.completionTokens += res.eval_count ?? 0;
      usage.modelMs += Math.round((res.total_duration ?? 0) / 1e6);
      const checked = validate(res.message.content);
      if (checked.ok) {
        usage.ms = Math.round(performance.now() - started);
        return { result: checked.result, usage };
      }
      lastProblem = checked.problem;
      messages.push(
        { role: 'assistant', content: res.message.content.slice(0, 4000) },
        { role: 'user', content: `That answer was invalid: ${checked.problem}. Answer again with only the JSON object that matches the schema.` },
      );
    }
    throw new LlmError('LLM_INVALID_OUTPUT', `model output invalid after a repair attempt: ${lastProblem}`, false);
  }

  /** For /ready: Ollama reachable and the model pulled. */
  async check(): Promise<{ model: string; version?: string }> {
    let models;
    try {
      models = await this.ollama.list();
    } catch (err) {
      throw classifyLlmError(err);
    }
    const want = this.opts.model.includes(':') ? this.opts.model : `${this.opts.model}:latest`;
    if (!models.models.some((m) => m.name === want || m.model === want)) {
      throw new LlmError('LLM_MODEL_NOT_FOUND', `model ${this.opts.model} is not pulled on ${this.opts.host}`, true);
    }
    return { model: this.opts.model };
  }
}
