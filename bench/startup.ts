// Start-up of the built package (issue: the first hour, point 3): `npm run bench startup`.
// - `mailsight --help`: process start to exit;
// - `mailsight serve` on a warm embedded database (migrated, started once before): process start to
//   the first 200 from /health, then SIGTERM and its exit.
// Each figure over RUNS runs; targets --help <= 0.5 s, serve <= 2 s.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { percentile, ROOT, table, writeResult } from './lib.js';

const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 5);
const BIN = join(ROOT, 'bin', 'mailsight.js');

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

function helpMs(): number {
  const t0 = performance.now();
  execFileSync(process.execPath, [BIN, '--help'], { stdio: 'ignore' });
  return performance.now() - t0;
}

/** One `serve` on `dataDir`: ms until /health answers 200, and ms from SIGTERM to exit. */
async function serveMs(dataDir: string): Promise<{ upMs: number; stopMs: number }> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, 'serve'], {
    env: { ...process.env, DATABASE_URL: '', DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false);
    if (ok) break;
    if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const upMs = performance.now() - t0;
  const s0 = performance.now();
  child.kill('SIGTERM');
  const code = await exited;
  if (code !== 0) throw new Error(`serve exited with ${code} on SIGTERM`);
  return { upMs, stopMs: performance.now() - s0 };
}

const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: percentile(s, 50), min: s[0]!, max: s.at(-1)! };
};

export async function runStartupBench() {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
  const dataDir = mkdtempSync(join(tmpdir(), 'mailsight-bench-startup-'));
  try {
    const help = Array.from({ length: RUNS }, helpMs);
    // Warm: the embedded database exists and is migrated before the measured starts.
    const cold = await serveMs(dataDir);
    const serve: { upMs: number; stopMs: number }[] = [];
    for (let i = 0; i < RUNS; i++) serve.push(await serveMs(dataDir));
    const rows = [
      { figure: 'mailsight --help (ms)', ...summary(help), target: '<= 500' },
      { figure: 'serve, warm embedded db, to /health 200 (ms)', ...summary(serve.map((s) => s.upMs)), target: '<= 2000' },
      { figure: 'serve, SIGTERM to exit (ms)', ...summary(serve.map((s) => s.stopMs)), target: '' },
    ];
    table(rows);
    console.log(`(first start on an empty data directory, creating and migrating the database: ${cold.upMs.toFixed(0)} ms; ${RUNS} runs each)`);
    console.log(`wrote ${writeResult('startup', { runs: RUNS, helpMs: help, serve, firstStartMs: cold.upMs, rows })}`);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
