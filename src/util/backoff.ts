/** Retry timing shared by the queue (a job's next attempt) and the clients of IMAP and the model (a service's rest). */

/**
 * Delay before retry number `attempt` (1 = after the first failure): base * 2^(attempt-1),
 * capped, then "equal jitter" (half fixed, half random) so a burst of failures spreads out
 * instead of returning together.
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  return Math.round(exp / 2 + (exp / 2) * random());
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
