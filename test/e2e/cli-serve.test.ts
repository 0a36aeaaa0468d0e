import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { dashboardSignIn } from '../support/dashboard.js';
import { freePort } from '../support/dovecot.js';
import { processAlive } from '../../src/util/process-alive.js';
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
    const { pid } = JSON.parse(readFileSync(join(dataDir, 'service.json'), 'utf8')) as { pid: number };
    // What a supervisor does: SIGTERM to the process it started (npm).
    npm.kill('SIGTERM');
    await new Promise((r) => npm.on('close', r));
    // The service drained and closed its listener, rather than living on without its parent.
    expect(await waitFor(health, (s) => s === 0, 15_000)).toBe(0);
    expect(await waitFor(async () => processAlive(pid), (a) => !a, 15_000)).toBe(false);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 60_000);

it('npx mailsight serve stops when npx gets SIGTERM (npm passes it to a shell that does not pass it on)', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mailsight-npx-'));
  const port = await freePort();
  const env = { ...process.env, DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', LOG_FORMAT: 'json', DATABASE_URL: '' };
  try {
    const npx = spawn('npx', ['--offline', 'mailsight', 'serve'], { cwd: new URL('../..', import.meta.url).pathname, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    npx.stdout.on('data', (d) => (output += d));
    const health = () => fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status, () => 0);
    expect(await waitFor(health, (s) => s === 200, 30_000)).toBe(200);
    const { pid } = JSON.parse(readFileSync(join(dataDir, 'service.json'), 'utf8')) as { pid: number };
    npx.kill('SIGTERM');
    // The service notices that npm is gone, drains and stops: nothing is left listening, and the
    // process ends (it was still closing its database when the directory was removed, once).
    expect(await waitFor(health, (s) => s === 0, 15_000)).toBe(0);
    expect(await waitFor(async () => processAlive(pid), (a) => !a, 15_000)).toBe(false);
    expect(output).toMatch(/npm, which started this service, is gone/);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 60_000);

/** `mailsight …` beside the running service; exit code and output. */
async function cli(args: string[], env: NodeJS.ProcessEnv) {
  try {
    const r = await promisify(execFile)(process.execPath, [BIN, ...args], { env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

it('first start without API_KEY, on a terminal: an admin key shown once (never in the JSON log), the dashboard and API take it, and apikey, check and analyze work beside the service on the embedded database', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mailsight-first-'));
  const port = await freePort();
  const env = { ...process.env, DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', LOG_FORMAT: 'json', DATABASE_URL: '', API_KEY: '' };
  // `script` gives the service a terminal, as a person running `npm start` has; the built code runs
  // with a hook that fails on any TypeScript tooling at run time.
  const noTs = new URL('../support/no-typescript.mjs', import.meta.url).pathname;
  const child = spawn('script', ['-qfec', `exec ${process.execPath} --import ${noTs} ${BIN} serve`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  const base = `http://127.0.0.1:${port}`;
  try {
    expect(await waitFor(() => fetch(`${base}/health`).then((r) => r.status, () => 0), (s) => s === 200, 30_000)).toBe(200);
    // The terminal lines are written at once, the JSON log through pino's buffered stream: wait for both.
    await waitFor(async () => output, (o) => o.includes('Sign in at') && o.includes('generated an admin key'), 5_000);
    const file = join(dataDir, 'admin-key');
    const key = readFileSync(file, 'utf8').trim();
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // Shown once, on the terminal, with where to sign in; the JSON log names the file, not the key.
    expect(output.split(key).length - 1).toBe(1);
    expect(output).toContain(`Sign in at ${base}/dashboard`);
    const jsonLines = output.split(/\r?\n/).filter((l) => l.startsWith('{'));
    expect(jsonLines.some((l) => l.includes('generated an admin key') && l.includes(file))).toBe(true);
    for (const l of jsonLines) expect(l).not.toContain(key);

    // The API and the dashboard take the key.
    expect((await fetch(`${base}/api/v1/get/llm/stats`, { headers: { 'x-api-key': key } })).status).toBe(200);
    const signedIn = await dashboardSignIn(base, { key });
    expect(signedIn.status).toBe(303);
    expect(signedIn.location).toBe('/dashboard');

    // The CLI beside the service: the database is the service's, so apikey goes through its API.
    const cliEnv = { ...env, LOG_LEVEL: 'warn' };
    const created = await cli(['apikey', 'create', '--mailbox', 'Dora@Example.test', '--name', 'phone', '--json'], cliEnv);
    expect(created).toMatchObject({ code: 0 });
    const made = JSON.parse(created.stdout);
    expect(made).toMatchObject({ mailbox: 'dora@example.test', name: 'phone', key: expect.stringMatching(/^msk_/) });
    expect((await fetch(`${base}/api/v1/get/llm/preferences?username=dora@example.test`, { headers: { 'x-api-key': made.key } })).status).toBe(200);
    const listed = await cli(['apikey', 'list'], cliEnv);
    expect(listed.stdout).toMatch(new RegExp(`${made.id}\\s+dora@example.test\\s+phone\\s+\\S+Z\\s+\\S+Z\\s+-`));
    expect(await cli(['apikey', 'revoke', made.id], cliEnv)).toMatchObject({ code: 0, stdout: `revoked ${made.id}\n` });
    expect((await fetch(`${base}/api/v1/get/llm/preferences?username=dora@example.test`, { headers: { 'x-api-key': made.key } })).status).toBe(401);
    expect(await cli(['apikey', 'revoke', made.id], cliEnv)).toMatchObject({ code: 1, stderr: expect.stringContaining('no active key') });

    const check = await cli(['check'], cliEnv);
    expect(check.stdout).toMatch(/^✓ database: embedded database in \S+, held by the running service \(process \d+ at http:\/\/127\.0\.0\.1:\d+\), which reports it ok$/m);

    const eml = join(dataDir, 'hello.eml');
    writeFileSync(eml, 'From: a@example.test\r\nTo: b@example.test\r\nSubject: hello\r\n\r\nsee you tomorrow\r\n');
    expect(await cli(['analyze', eml, '--signals-only'], cliEnv)).toMatchObject({ code: 0, stdout: expect.stringContaining('Subject:  hello') });
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('close', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 90_000);
