import parsePrometheus from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/queries/keys.js';
import { API_PRIORITY_PER_MAILBOX } from '../../src/queries/request-analysis.js';
import { createApp } from '../../src/app.js';
import { KeyRateLimiter } from '../../src/http/rate-limit.js';
import { claim } from '../../src/queue/lifecycle.js';
import { enqueue } from '../../src/queue/jobs.js';
import { seedAnalysis } from '../support/seed.js';
import { DRIVERS, describeWith, openTestDb, postgresAvailable, silentLogger, testConfig, type TestDb } from '../support/services.js';

/**
 * One key must not starve everyone: a mailbox key sent 41 forced re-analyses, which all ran ahead
 * of pushed mail, and another mailbox's new message took 10.4 s instead of 0.7 s.
 */

const pgUp = await postgresAvailable();
const UIDVALIDITY = 1700000000;
const ADMIN = 'admin-key-for-fairness-tests-012';

describe('KeyRateLimiter', () => {
  it('lets a burst of the limit through, then one request per refill interval, per key', () => {
    let now = 0;
    const l = new KeyRateLimiter(60, () => now); // one a second
    for (let i = 0; i < 60; i++) expect(l.take('a')).toBe(0);
    expect(l.take('a')).toBe(1);
    expect(l.take('b')).toBe(0);
    now += 1_000;
    expect(l.take('a')).toBe(0);
    expect(l.take('a')).toBe(1);
  });
});

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`fair API use on ${driver}`, () => {
    let t: TestDb;
    let aliceKey: string;
    let bobKey: string;
    beforeAll(async () => {
      t = await openTestDb(driver);
      aliceKey = (await createApiKey(t.db, 'alice@example.test')).key;
      bobKey = (await createApiKey(t.db, 'bob@example.test')).key;
      for (let uid = 1; uid <= 8; uid++) await seedAnalysis(t.db, { mailbox: 'alice@example.test', folder: 'INBOX', uidvalidity: UIDVALIDITY, uid });
    });
    afterAll(async () => t?.close());

    const app = (apiRateLimit: number) => createApp({ config: testConfig({ apiKey: ADMIN, apiRateLimit }), db: t.db, logger: silentLogger, pushCredentials: null });
    const get = (a: ReturnType<typeof createApp>, key: string) => a.request('/api/v1/get/llm/stats', { headers: { 'x-api-key': key } });

    it('a key over API_RATE_LIMIT gets 429 with Retry-After, counted in /metrics; another key is unaffected', async () => {
      const a = app(5);
      for (let i = 0; i < 5; i++) expect((await get(a, aliceKey)).status).toBe(200);
      const refused = await get(a, aliceKey);
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect((await refused.json()).error).toMatchObject({ code: 'TOO_MANY_REQUESTS', message: expect.stringContaining('API_RATE_LIMIT') });
      expect((await get(a, bobKey)).status).toBe(200);
      const metrics = parsePrometheus(await (await a.request('/metrics')).text());
      expect(metrics.find((m: any) => m.name === 'mailsight_api_rate_limited_total').metrics[0].value).toBe('1');
    });

    it(`forced re-analyses run ahead of pushed mail ${API_PRIORITY_PER_MAILBOX} at a time per mailbox; beyond that they take turns with other mailboxes`, async () => {
      const a = app(1_000);
      for (let uid = 1; uid <= 8; uid++) {
        const res = await a.request('/api/v1/add/llm/analyze', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': aliceKey },
          body: JSON.stringify({ mailbox: 'alice@example.test', email_id: uid, force: true }),
        });
        expect(res.status).toBe(202);
      }
      await enqueue(t.db, { mailbox: 'bob@example.test', folder: 'INBOX', uidvalidity: UIDVALIDITY, uid: 1, source: 'push' });
      const order: string[] = [];
      for (let i = 0; i < 9; i++) {
        const [job] = await claim(t.db, { workerId: 'w', limit: 1, leaseMs: 60_000 });
        order.push(`${job!.mailbox.split('@')[0]}/${job!.uid}`);
      }
      // Alice's first requests first; then Bob's new mail takes its turn among hers.
      expect(order.slice(0, API_PRIORITY_PER_MAILBOX)).toEqual(['alice/1', 'alice/2']);
      expect(order.indexOf('bob/1')).toBeLessThanOrEqual(API_PRIORITY_PER_MAILBOX + 1);
    });
  });
}
