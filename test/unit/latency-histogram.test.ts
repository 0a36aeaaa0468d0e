import { describe, expect, it } from 'vitest';
import { histogramPercentile } from '../../src/queries/stats.js';

describe('histogramPercentile', () => {
  it('is the upper bound of the bin that holds the nearest rank', () => {
    // Bins 10, 20, 30 end at 1.05^10 = 1.63, 1.05^20 = 2.65 and 1.05^30 = 4.32 ms.
    const h = new Map([
      [30, 2],
      [10, 1],
      [20, 1],
    ]);
    expect(histogramPercentile(h, 0.5)).toBe(3); // rank 2 of 4: bin 20
    expect(histogramPercentile(h, 0.95)).toBe(4); // rank 4: bin 30
    expect(histogramPercentile(h, 0)).toBe(2); // rank 1: bin 10
  });

  it('has 5 % resolution over the range LLM calls take', () => {
    // 1.05^189 = 10,111 ms: a ten-second call is reported within 5 % above.
    expect(histogramPercentile(new Map([[189, 5]]), 0.5)).toBe(10_111);
    expect(histogramPercentile(new Map([[0, 1]]), 0.95)).toBe(1);
  });

  it('is null for an empty histogram', () => {
    expect(histogramPercentile(new Map(), 0.5)).toBeNull();
  });
});
