import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthFailureLimiter } from '../../src/http/auth-failures.js';
import { AppError } from '../../src/http/errors.js';
import { createLogger } from '../../src/logger.js';
import { startMailsight, type Mailsight } from '../support/mailsight.js';
import { describeWith, postgresAvailable, silentLogger } from '../support/services.js';

describe('AuthFailureLimiter', () => {
  const limits = { maxFailures: 3, windowMs: 60_000, blockMs: 120_000 };
  const blockedFor = (l: AuthFailureLimiter, a: string) => {
    try {
      l.check(a);
      return 0;
    } catch (err) {
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('TOO_MANY_REQUESTS');
      return (err as AppError).retryAfterSec!;
    }
  };

  it('refuses an address after maxFailures in the window, until the block ends; others are unaffected', () => {
    let now = 1_000_000;
    const l = new AuthFailureLimiter('test', silentLogger, limits, () => now);
    for (let i = 0; i < 2; i++) l.failed('10.0.0.1', 'bad', '/x');
    expect(blockedFor(l, '10.0.0.1')).toBe(0);
    l.failed('10.0.0.1', 'bad', '/x');
    expect(blockedFor(l, '10.0.0.1')).toBe(120);
    expect(blockedFor(l, '10.0.0.2')).toBe(0);
    now += 119_000;
    expect(blockedFor(l, '10.0.0.1')).toBe(1);
    now += 1_001;
    expect(blockedFor(l, '10.0.0.1')).toBe(0);
  });

  it('failures spread wider than the window never add up to a block', () => {
    let now = 0;
    const l = new AuthFailureLimiter('test', silentLogger, limits, () => now);
    for (let i = 0; i < 10; i++) {
      l.failed('10.0.0.3', 'bad', '/x');
      now += 30_000;
      if (i % 2 === 1) now += 1; // two failures per window at most
    }
    expect(blockedFor(l, '10.0.0.3')).toBe(0);
  });
});

describeWith('PostgreSQL', await postgresAvailable())('failed auth over real sockets', () => {
  const ADMIN = 'rate-limit-admin-key-0123456789';
  const WRONG_KEY = 'wrong-key-that-must-never-be-logged-42';
  const WRONG_PASSWORD = 'wrong-password-never-logged-43';
  const lines: string[] = [];
  let ms: Mailsight;
  beforeAll(async () => {
    const logger = createLogger('debug', { write: (s: string) => void lines.push(s) });
    ms = await startMailsight({ apiKey: ADMIN, authMaxFailures: 3, authBlockSec: 60, logger, processing: { workers: false } });
  });
  afterAll(async () => ms?.close());

  const api = (key: string) => fetch(`${ms.baseUrl}/api/v1/get/llm/health`, { headers: { 'x-api-key': key } });
  const push = (password: string) =>
    fetch(ms.pushUrl, {
      method: 'PUT',
      headers: { authorization: `Basic ${Buffer.from(`dovecot:${password}`).toString('base64')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'a@example.test', folder: 'INBOX', 'imap-uidvalidity': 1, 'imap-uid': 1 }),
    });

  it('wrong API keys: 401 three times, then 429 with Retry-After even for the right key', async () => {
    for (let i = 0; i < 3; i++) expect((await api(WRONG_KEY)).status).toBe(401);
    const blocked = await api(ADMIN);
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(50);
    expect(((await blocked.json()) as any).error.code).toBe('TOO_MANY_REQUESTS');
  });

  it('wrong push credentials are limited separately: 401 three times, then 429', async () => {
    for (let i = 0; i < 3; i++) expect((await push(WRONG_PASSWORD)).status).toBe(401);
    expect((await push('push-secret')).status).toBe(429);
  });

  it('each failure is logged with the address, never with what was presented', () => {
    const failures = lines.map((l) => JSON.parse(l)).filter((l) => /failed$/.test(l.msg));
    expect(failures.length).toBeGreaterThanOrEqual(6);
    expect(failures[0]).toMatchObject({ address: expect.stringMatching(/127\.0\.0\.1/), reason: expect.any(String) });
    const all = lines.join('\n');
    expect(all).not.toContain(WRONG_KEY);
    expect(all).not.toContain(WRONG_PASSWORD);
    expect(all).not.toContain(ADMIN);
  });
});
