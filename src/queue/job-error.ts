/**
 * What a job handler throws when it cannot finish: a code, and whether a later attempt may succeed
 * (`transient`: the worker retries with backoff) or not (the job fails at once with this reason).
 * `outageMs` says the fault is a service the job needs being down (the LLM server, the IMAP server),
 * not the message: the job comes back after that long without spending an attempt, and the worker
 * pool stops claiming until then, so an outage of any length loses nothing and churns nothing.
 */
export class JobError<C extends string = string> extends Error {
  readonly outageMs?: number;
  constructor(
    readonly code: C,
    message: string,
    readonly transient: boolean,
    options?: { cause?: unknown; outageMs?: number },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.outageMs = options?.outageMs;
  }
}
