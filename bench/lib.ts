import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..');

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, idx)]!;
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface HttpTarget {
  port: number;
  path: string;
  method: string;
  headers: Record<string, string>;
}

/** One request on a keep-alive agent; resolves with the status code. */
export function send(agent: Agent, t: HttpTarget, body: string): Promise<number> {
  return new Promise((res, rej) => {
    const req = request(
      { host: '127.0.0.1', port: t.port, path: t.path, method: t.method, agent, headers: { ...t.headers, 'content-length': Buffer.byteLength(body) } },
      (r) => {
        r.resume();
        r.on('end', () => res(r.statusCode ?? 0));
      },
    );
    req.on('error', rej);
    req.end(body);
  });
}

/**
 * A burst: `n` pushes sent at the same moment, each on its own connection (as many LMTP processes
 * of a busy Dovecot would); the status of each, and the latency percentiles.
 */
export async function burst(t: HttpTarget, n: number, body: (i: number) => string) {
  const agent = new Agent({ keepAlive: false, maxSockets: n });
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const started = performance.now();
      const status = await send(agent, t, body(i)).catch(() => 0);
      latencies.push(performance.now() - started);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }),
  );
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { n, statuses: Object.fromEntries(statuses), p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1)! };
}

/** Closed loop: `concurrency` clients, each sending its next request when the last one answered. */
export async function closedLoop(t: HttpTarget, concurrency: number, seconds: number, body: (i: number) => string) {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const deadline = performance.now() + seconds * 1000;
  let next = 0;
  const statuses = new Map<number, number>();
  const accepted: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const i = next++;
        const status = await send(agent, t, body(i)).catch(() => 0);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status === 202) accepted.push(i);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  return { sent: next, accepted: accepted.length, statuses: Object.fromEntries(statuses), rate: next / elapsed, elapsed };
}

/**
 * Open loop: requests start on a fixed schedule whatever the answers do; latency counts from the
 * scheduled start, so a stall is not hidden (no coordinated omission).
 */
export async function openLoop(t: HttpTarget, ratePerSec: number, seconds: number, body: (i: number) => string) {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const total = Math.round(ratePerSec * seconds);
  const intervalMs = 1000 / ratePerSec;
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  const inflight: Promise<void>[] = [];
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + i * intervalMs;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    inflight.push(
      send(agent, t, body(i))
        .catch(() => 0)
        .then((status) => {
          latencies.push(performance.now() - due);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }),
    );
  }
  await Promise.all(inflight);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    sent: total,
    statuses: Object.fromEntries(statuses),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies[latencies.length - 1]!,
  };
}

/** Starts a TypeScript entry point in its own process and waits for it to print `ready <port>`-free readiness on /health. */
export async function spawnServer(entry: string, env: Record<string, string>, port: number, readyPath = '/health'): Promise<ChildProcess> {
  // BENCH_SERVER_NODE_FLAGS (e.g. "--trace-gc-nvp" or "--cpu-prof --cpu-prof-dir=/tmp/prof") go to
  // every server a bench starts, whose output is then shown: how the push tail was taken apart.
  const flags = process.env.BENCH_SERVER_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...flags, '--import', 'tsx', entry], {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ['ignore', flags.length ? 'inherit' : 'ignore', 'inherit'],
  });
  const deadline = Date.now() + 30_000;
  const agent = new Agent();
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${entry} exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((res) => {
      const req = request({ host: '127.0.0.1', port, path: readyPath, agent }, (r) => {
        r.resume();
        res(r.statusCode === 200);
      });
      req.on('error', () => res(false));
      req.end();
    });
    if (ok) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`${entry} did not become ready`);
}

export async function stopServer(child: ChildProcess) {
  if (child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

export function writeResult(name: string, data: unknown) {
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(file, `${JSON.stringify({ name, at: new Date().toISOString(), ...(data as object) }, null, 2)}\n`);
  return file;
}

export function table(rows: Record<string, string | number>[]) {
  const cols = Object.keys(rows[0] ?? {});
  const fmt = (v: string | number) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => fmt(r[c] ?? '').length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ');
  console.log(line(cols));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(cols.map((c) => fmt(r[c] ?? ''))));
}
