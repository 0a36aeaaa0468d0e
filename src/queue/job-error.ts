/**
 * What a job handler throws when it cannot finish: a code, and whether a later attempt may succeed
 * (`transient`: the worker retries with backoff) or not (the job fails at once with this reason).
 */
export class JobError<C extends string = string> extends Error {
  constructor(
    readonly code: C,
    message: string,
    readonly transient: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}
