import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { openPostgres } from '../../src/db/client.js';
import { createLogger } from '../../src/logger.js';
import { startService } from '../../src/service.js';
import { Browser } from '../support/browser.js';
import { seedAnalysis } from '../support/seed.js';
import { DRIVERS, describeWith, openTestDb, postgresAvailable, silentLogger, testConfig, type TestDb } from '../support/services.js';

/**
 * The smaller defects of the hostile review, as a table: each request, and the answer it must get
 * (before: a 500, a 404 where the README promises 405, or a value that should have been refused).
 */

const pgUp = await postgresAvailable();
const ADMIN = 'admin-key-for-hostile-tests-0123';
const MAILBOX = 'alice@example.test';

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`hostile inputs on ${driver}`, () => {
    let t: TestDb;
    let app: ReturnType<typeof createApp>;
    let browser: Browser;
    beforeAll(async () => {
      t = await openTestDb(driver);
      await seedAnalysis(t.db, { mailbox: MAILBOX, folder: 'INBOX', uidvalidity: 1700000000, uid: 1 });
      app = createApp({ config: testConfig({ apiKey: ADMIN }), db: t.db, logger: silentLogger, pushCredentials: null });
      browser = new Browser(app);
      expect((await browser.signIn(ADMIN)).status).toBe(303);
    });
    afterAll(async () => t?.close());

    const api = (method: string, path: string) => app.request(`/api/v1${path}`, { method, headers: { 'x-api-key': ADMIN } });

    it.each([
      ['DELETE', '/get/llm/stats', 405, 'GET'],
      ['PUT', '/add/llm/analyze', 405, 'POST'],
      ['GET', '/edit/llm/preferences', 405, 'POST'],
      ['GET', '/no/such/route', 404, null],
    ])('%s %s answers %i', async (method, path, status, allow) => {
      const res = await api(method, path);
      expect(res.status).toBe(status);
      expect(res.headers.get('allow')).toBe(allow);
      expect((await res.json()).error.code).toBe(status === 405 ? 'METHOD_NOT_ALLOWED' : 'NOT_FOUND');
    });

    it.each([
      ['1e3', 400],
      ['0x10', 400],
      [' 60', 400],
      ['60.5', 400],
      ['0', 400],
      ['60', 200],
    ])('timeline_minutes=%j answers %i', async (value, status) => {
      expect((await api('GET', `/get/llm/stats?timeline_minutes=${encodeURIComponent(value)}`)).status).toBe(status);
    });

    it.each([
      [`/dashboard/mailbox/${MAILBOX}?since=2026-99-99`, 400],
      [`/dashboard/mailbox/${MAILBOX}?until=2026-13-01`, 400],
      [`/dashboard/mailbox/${MAILBOX}?since=2026-02-30`, 400],
      [`/dashboard/mailbox/${MAILBOX}?since=2026-02-28`, 200],
      ['/dashboard/mailbox/alice%00@example.test', 400],
      ['/dashboard/mailbox/ALICE@example.test', 200],
    ])('%s answers %i', async (path, status) => {
      expect((await browser.get(path)).status).toBe(status);
    });
  });
}

describeWith('PostgreSQL', pgUp)('the API during a database outage', () => {
  const lines: string[] = [];
  let app: ReturnType<typeof createApp>;
  let dead: ReturnType<typeof openPostgres>;
  beforeAll(() => {
    // Nothing listens on port 9: every query fails to connect, as when Postgres is down.
    dead = openPostgres('postgres://postgres@127.0.0.1:9/none', { max: 1 });
    const logger = createLogger('debug', { write: (s: string) => void lines.push(s) });
    app = createApp({ config: testConfig({ apiKey: ADMIN }), db: dead, logger, pushCredentials: null });
  });
  afterAll(async () => dead?.close());

  it('answers 503 DATABASE_UNAVAILABLE with Retry-After, not 500, and logs no query parameters', async () => {
    const res = await app.request(`/api/v1/get/llm/analysis?mailbox=secret-mailbox@example.test`, { headers: { 'x-api-key': ADMIN } });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect((await res.json()).error.code).toBe('DATABASE_UNAVAILABLE');
    expect(lines.join('\n')).not.toContain('secret-mailbox');
  });
});

it('a generated push password never reaches the log stream', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mailsight-genpw-'));
  const lines: string[] = [];
  const logger = createLogger('debug', { write: (s: string) => void lines.push(s) });
  try {
    const service = await startService(testConfig({ dataDir, push: { password: undefined }, processing: { workers: false } }), logger);
    await service.stop();
    const password = readFileSync(join(dataDir, 'push-password'), 'utf8').trim();
    expect(password.length).toBeGreaterThan(20);
    const log = lines.join('\n');
    expect(log).toContain('generated a push password');
    expect(log).toContain(join(dataDir, 'push-password'));
    expect(log).not.toContain(password);
    expect(log).not.toContain(encodeURIComponent(password));
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
