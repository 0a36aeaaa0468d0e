import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { openPglite, openPostgres, type Db } from '../../src/db/client.js';
import { createTestDatabase, describeWith, postgresAvailable, silentLogger, testConfig } from '../support/services.js';

const run = promisify(execFile);
const BIN = new URL('../../bin/mailsight.js', import.meta.url).pathname;

/** `npx mailsight …` as an operator runs it; exit code, stdout and stderr. */
async function mailsight(args: string[], env: Record<string, string>) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describeWith('PostgreSQL', await postgresAvailable())('mailsight apikey', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let db: Db;
  let env: Record<string, string>;
  beforeAll(async () => {
    database = await createTestDatabase();
    env = { DATABASE_URL: database.url };
    db = openPostgres(database.url);
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });

  it('create shows a key once; it works for its mailbox only; list shows its use; revoke stops it', async () => {
    const created = await mailsight(['apikey', 'create', '--mailbox', 'dora@example.test', '--name', 'phone', '--json'], env);
    expect(created.code).toBe(0);
    const { id, key, mailbox } = JSON.parse(created.stdout);
    expect(mailbox).toBe('dora@example.test');
    expect(key).toMatch(/^msk_[0-9a-f]{12}_/);

    const app = createApp({ config: testConfig({ databaseUrl: database.url }), db, logger: silentLogger, pushCredentials: null });
    const get = (who: string) => app.request(`/api/v1/get/llm/preferences?username=${who}`, { headers: { 'x-api-key': key } });
    expect((await get('dora@example.test')).status).toBe(200);
    expect((await get('eve@example.test')).status).toBe(403);

    const listed = await mailsight(['apikey', 'list'], env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${id}\\s+dora@example.test\\s+phone\\s+\\S+Z\\s+\\S+Z\\s+-`));
    expect(listed.stdout).not.toContain(key);

    const human = await mailsight(['apikey', 'create', '--mailbox', 'dora@example.test'], env);
    expect(human.stdout).toMatch(/shown this once/);

    expect((await mailsight(['apikey', 'revoke', id], env)).code).toBe(0);
    expect((await get('dora@example.test')).status).toBe(401);
    expect((await mailsight(['apikey', 'revoke', id], env))).toMatchObject({ code: 1, stderr: expect.stringContaining('no active key') });
  });

  it('usage errors exit 2 with the reason; --help exits 0', async () => {
    expect(await mailsight(['apikey', 'create'], env)).toMatchObject({ code: 2, stderr: expect.stringContaining('--mailbox') });
    expect(await mailsight(['apikey', 'frobnicate'], env)).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown apikey command') });
    expect(await mailsight(['apikey', '--help'], env)).toMatchObject({ code: 0, stdout: expect.stringContaining('apikey revoke') });
    expect(await mailsight(['--help'], env)).toMatchObject({ code: 0, stdout: expect.stringContaining('apikey') });
  });
});

it('the embedded database is refused to a second process while the first has it open', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mailsight-lock-'));
  const db = await openPglite(join(dataDir, 'pglite'));
  try {
    const second = await mailsight(['apikey', 'list'], { DATA_DIR: dataDir, DATABASE_URL: '' });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/in use by process \d+/);
  } finally {
    await db.close();
  }
  // Closed: the lock is released and the CLI gets in.
  const after = await mailsight(['apikey', 'list'], { DATA_DIR: dataDir, DATABASE_URL: '' });
  expect(after).toMatchObject({ code: 0, stdout: expect.stringContaining('no API keys') });
  rmSync(dataDir, { recursive: true, force: true });
});
