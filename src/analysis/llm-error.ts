import { JobError } from '../queue/job-error.js';

export type LlmErrorCode =
  | 'LLM_UNREACHABLE'
  | 'LLM_TIMEOUT'
  | 'LLM_SERVER_ERROR'
  | 'LLM_MODEL_NOT_FOUND'
  /** The server is older than structured output needs (Ollama before 0.5). */
  | 'LLM_SERVER_TOO_OLD'
  /** The server refused mailsight's output schema (a grammar it cannot compile): the server's or mailsight's fault, never a message's. */
  | 'LLM_SCHEMA_REJECTED'
  | 'LLM_BAD_REQUEST'
  /** The prompt did not fit the context window, or the answer was cut at its token limit. */
  | 'LLM_TRUNCATED'
  | 'LLM_INVALID_OUTPUT';

/** Transient errors retry later; permanent ones fail the job with their reason at once. */
export class LlmError extends JobError<LlmErrorCode> {}
