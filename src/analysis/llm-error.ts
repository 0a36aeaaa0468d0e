import { JobError } from '../queue/job-error.js';

export type LlmErrorCode =
  | 'LLM_UNREACHABLE'
  | 'LLM_TIMEOUT'
  | 'LLM_SERVER_ERROR'
  | 'LLM_MODEL_NOT_FOUND'
  | 'LLM_BAD_REQUEST'
  | 'LLM_INVALID_OUTPUT';

/** Transient errors retry later; permanent ones fail the job with their reason at once. */
export class LlmError extends JobError<LlmErrorCode> {}
