import { describe, expect, it } from 'vitest';
import { backoffMs } from '../../src/util/backoff.js';

describe('backoffMs', () => {
  it('doubles per attempt, from half to all of the exponential step', () => {
    expect(backoffMs(1, 1000, 60_000, () => 0)).toBe(500);
    expect(backoffMs(1, 1000, 60_000, () => 1)).toBe(1000);
    expect(backoffMs(2, 1000, 60_000, () => 0)).toBe(1000);
    expect(backoffMs(4, 1000, 60_000, () => 1)).toBe(8000);
  });

  it('is capped, also for absurd attempt numbers', () => {
    expect(backoffMs(10, 1000, 60_000, () => 1)).toBe(60_000);
    expect(backoffMs(10_000, 1000, 60_000, () => 0.5)).toBe(45_000);
  });

  it('spreads a burst of failures instead of sending them back together', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffMs(3, 1000, 60_000)));
    expect(delays.size).toBeGreaterThan(25);
    for (const d of delays) expect(d).toBeGreaterThanOrEqual(2000);
  });
});
