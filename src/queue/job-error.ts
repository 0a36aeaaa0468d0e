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

/**
 * How long a service that keeps failing is left alone: `baseMs` after the first failure in a row,
 * doubling per failure, up to `maxMs`.
 */
export class Rest {
  private failures = 0;
  private until = 0;
  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
  ) {}

  failed(now = Date.now()): void {
    this.failures++;
    this.until = now + Math.min(this.maxMs, this.baseMs * 2 ** (this.failures - 1));
  }

  ok(): void {
    this.failures = 0;
    this.until = 0;
  }

  /** Milliseconds left to rest; 0 when it may be tried. */
  remaining(now = Date.now()): number {
    return Math.max(0, this.until - now);
  }

  get failuresInARow(): number {
    return this.failures;
  }
}
