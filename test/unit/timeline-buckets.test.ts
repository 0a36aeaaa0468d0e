import { describe, expect, it } from 'vitest';
import { timelineBucketSec } from '../../src/queries/stats.js';
import { MAX_TIMELINE_MINUTES } from '../../src/routes/stats.js';

describe('timelineBucketSec', () => {
  it('is whole minutes under a day, about the asked number of buckets', () => {
    expect(timelineBucketSec(60, 30)).toBe(120);
    expect(timelineBucketSec(360, 30)).toBe(720);
    expect(timelineBucketSec(1, 30)).toBe(60);
  });

  it('is whole hours from a day on, so that those windows read the hourly rollups', () => {
    expect(timelineBucketSec(1_440, 30)).toBe(3_600);
    expect(timelineBucketSec(MAX_TIMELINE_MINUTES, 30)).toBe(6 * 3_600);
    expect(timelineBucketSec(3 * 1_440, 30)).toBe(3 * 3_600);
  });
});
