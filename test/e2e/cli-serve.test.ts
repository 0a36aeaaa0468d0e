import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { freePort } from '../support/dovecot.js';
import { waitFor } from '../support/wait.js';

const BIN = new URL('../../bin/mailsight.js', import.meta.url).pathname;

it('mailsight migrate, then mailsight serve on the embedded database: healthy, and stops cleanly on SIGTERM', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mailsight-serve-'));
  const port = await freePort();
  const env = { ...process.env, DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', DATABASE_URL: '' };
  try {
    const migrated = await promisify(execFile)(process.execPath, [BIN, 'migrate'], { env: { ...env, LOG_LEVEL: 'info' } });
    expect(migrated.stdout).toContain('migrations applied');
    const child = spawn(process.execPath, [BIN, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const status = await waitFor(
        () => fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status, () => 0),
        (s) => s === 200,
        30_000,
      );
      expect(status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await new Promise((r) => child.on('close', r))).toBe(0);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 60_000);

it('npm start passes SIGTERM on to the service: nothing is left running', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mailsight-npmstart-'));
  const port = await freePort();
  const env = { ...process.env, DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', DATABASE_URL: '' };
  try {
    const npm = spawn('npm', ['start', '--silent'], { cwd: new URL('../..', import.meta.url).pathname, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const health = () => fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status, () => 0);
    expect(await waitFor(health, (s) => s === 200, 30_000)).toBe(200);
    // What a supervisor does: SIGTERM to the process it started (npm).
    npm.kill('SIGTERM');
    await new Promise((r) => npm.on('close', r));
    // The service drained and closed its listener, rather than living on without its parent.
    expect(await waitFor(health, (s) => s === 0, 15_000)).toBe(0);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 60_000);
