import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { freePort } from './dovecot.js';

/**
 * A private PostgreSQL server for tests that stop and restart it (the machine's shared server must
 * stay up for every other test). Debian's binaries, run as the postgres user (Postgres refuses root),
 * trust auth on 127.0.0.1, a data directory under /tmp; fsync off: it is thrown away.
 */

const BIN_ROOT = '/usr/lib/postgresql';

function binDir(): string | undefined {
  if (!existsSync(BIN_ROOT)) return undefined;
  const versions = readdirSync(BIN_ROOT).filter((v) => existsSync(join(BIN_ROOT, v, 'bin', 'postgres'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(BIN_ROOT, versions[0], 'bin') : undefined;
}

function postgresUid(): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

/** Root, Debian's PostgreSQL binaries and a postgres user: what a private server needs. */
export function privatePostgresAvailable(): boolean {
  return process.getuid?.() === 0 && binDir() !== undefined && postgresUid() !== undefined;
}

export interface PostgresServer {
  url: string;
  port: number;
  /** Stops it (fast shutdown: connections are cut) and starts it again on the same data. */
  restart(opts?: { downMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

export async function startPostgresServer(): Promise<PostgresServer> {
  const bin = binDir()!;
  const ids = postgresUid()!;
  const dir = mkdtempSync('/tmp/pg-');
  chownSync(dir, ids.uid, ids.gid);
  const data = join(dir, 'data');
  execFileSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], { ...ids, stdio: 'ignore' });
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let proc: ChildProcess | undefined;

  const launch = async () => {
    proc = spawn(
      join(bin, 'postgres'),
      ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'],
      { ...ids, stdio: 'ignore' },
    );
    const deadline = Date.now() + 20_000;
    for (;;) {
      const sql = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
      try {
        await sql`select 1`;
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`private postgres did not start: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      } finally {
        await sql.end({ timeout: 1 });
      }
    }
  };
  const halt = async () => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGINT'); // fast shutdown: open connections are terminated
    await gone;
  };

  await launch();
  return {
    url,
    port,
    async restart(opts = {}) {
      await halt();
      if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
      await launch();
    },
    async stop() {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
