/**
 * Delay before retry number `attempt` (1 = after the first failure): base * 2^(attempt-1),
 * capped, then "equal jitter" (half fixed, half random) so a burst of failures spreads out
 * instead of returning together.
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  return Math.round(exp / 2 + (exp / 2) * random());
}
