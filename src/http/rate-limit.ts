/**
 * Requests per API key: a token bucket per key, `perMinute` tokens refilled evenly, as many at most
 * (a burst). One key cannot flood the service (a hostile review sent 41 forced re-analyses in a
 * row); a request beyond the limit gets 429 with the seconds until a token is back.
 */
export class KeyRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  /** Keys tracked at most; the least recently used go first. */
  private static readonly MAX_TRACKED = 10_000;

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token for `key`: 0 when the request may go ahead, else the seconds to wait. */
  take(key: string): number {
    const now = this.now();
    const ratePerMs = this.perMinute / 60_000;
    let b = this.buckets.get(key);
    if (b) this.buckets.delete(key); // re-inserted below: Map order is recency order
    else b = { tokens: this.perMinute, at: now };
    b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * ratePerMs);
    b.at = now;
    this.buckets.set(key, b);
    if (this.buckets.size > KeyRateLimiter.MAX_TRACKED) this.buckets.delete(this.buckets.keys().next().value!);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / ratePerMs / 1000));
  }
}
