import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { fillPlaceholders, sql, type Query, type SQL } from 'drizzle-orm';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { makePgArray, parsePgArray, type PgDatabase, type PgQueryResultHKT } from 'drizzle-orm/pg-core';
import postgres from 'postgres';
import { schema } from './schema.js';
import { processAlive } from '../util/process-alive.js';

export type Orm = PgDatabase<PgQueryResultHKT, typeof schema>;

/** The two drivers behind one face: the same drizzle queries, raw SQL, and notifications. */
export interface Db {
  readonly kind: 'postgres' | 'pglite';
  readonly orm: Orm;
  /** Raw SQL for what the query builder cannot say; int8 comes back as a JS number on both drivers. */
  rows<T extends Record<string, unknown>>(query: SQL): Promise<T[]>;
  /**
   * A query built once with drizzle (its values as `sql.placeholder()`s), then run by the driver
   * itself as a prepared statement, rows as value arrays. For the push's INSERT, where drizzle's
   * per-execution work was a fifth of the push's database step.
   */
  direct(query: Query): (values: Record<string, unknown>) => Promise<unknown[][]>;
  /** Calls `onNotify` for every NOTIFY on `channel` (from any instance on Postgres). */
  listen(channel: string, onNotify: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

const INT8_OID = 20;
const TEXT_ARRAY_OID = 1009;

/** Postgres is waiting on a dead host: give up on a connection attempt after this long. */
const CONNECT_TIMEOUT_SEC = 5;

/**
 * Raw SQL inside a transaction (`db.orm.transaction(tx => ...)`), rows as objects on both drivers:
 * postgres.js gives an array, PGlite `{ rows }` (what `Db.rows` does outside one).
 */
export async function txRows<T>(tx: { execute(query: SQL): Promise<unknown> }, query: SQL): Promise<T[]> {
  const res = (await tx.execute(query)) as T[] | { rows?: T[] };
  return Array.isArray(res) ? res : (res.rows ?? []);
}

export interface PostgresOptions {
  /** Connections in the pool. */
  max?: number;
  /** Set on each connection, so a stuck statement cannot hold a worker forever. */
  statementTimeoutMs?: number;
  /** false: commits return before the WAL reaches disk (see PUSH_SYNCHRONOUS_COMMIT in the README). */
  synchronousCommit?: boolean;
  /** Shown in pg_stat_activity. */
  applicationName?: string;
}

export function openPostgres(url: string, opts: PostgresOptions = {}): Db {
  const client = postgres(url, {
    max: opts.max ?? 10,
    connect_timeout: CONNECT_TIMEOUT_SEC,
    idle_timeout: 60,
    onnotice: () => {},
    // postgres.js asks for the server's array types on every (re)connect and drops that query's
    // promise: a Postgres restart that cut it became an unhandled rejection that ended the process
    // (porsager/postgres#1192, #1223; the fault suite met it). Off, with the one array type our
    // tables use declared here.
    fetch_types: false,
    types: {
      int8: { to: INT8_OID, from: [INT8_OID], serialize: String, parse: Number },
      // drizzle hands array columns over as literals already ('{a,b}'); raw SQL may pass arrays.
      textArray: { to: TEXT_ARRAY_OID, from: [TEXT_ARRAY_OID], serialize: (v: string | string[]) => (typeof v === 'string' ? v : makePgArray(v)), parse: parsePgArray },
    } as any,
    connection: {
      application_name: opts.applicationName ?? 'mailsight',
      ...(opts.statementTimeoutMs ? { statement_timeout: opts.statementTimeoutMs } : {}),
      ...(opts.synchronousCommit === false ? { synchronous_commit: 'off' } : {}),
    },
  });
  const orm = drizzlePostgres(client, { schema }) as unknown as Orm;
  return {
    kind: 'postgres',
    orm,
    async rows<T>(query: SQL) {
      return [...((await orm.execute(query)) as unknown as Iterable<T>)];
    },
    direct(query) {
      return (values) => client.unsafe(query.sql, fillPlaceholders(query.params, values) as postgres.ParameterOrJSON<never>[], { prepare: true }).values();
    },
    async listen(channel, onNotify) {
      const sub = await client.listen(channel, () => onNotify());
      return () => sub.unlisten();
    },
    close: () => client.end({ timeout: 5 }),
  };
}

export class DatabaseInUseError extends Error {
  constructor(dataDir: string, pid: number) {
    super(
      `the embedded database in ${dataDir} is in use by process ${pid} (a running mailsight?); ` +
        'stop it first, or run mailsight on PostgreSQL (DATABASE_URL) to use the CLI beside the service ' +
        `(if no mailsight runs, delete ${dataDir}.lock)`,
    );
    this.name = 'DatabaseInUseError';
  }
}

/**
 * PGlite is one process's database: a second process opening the same directory would corrupt it.
 * A lock file with the owner's PID keeps the second one out; a dead owner's lock is taken over.
 */
function lockDataDir(dataDir: string): () => void {
  const file = `${dataDir}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      const owner = Number(readFileSync(file, 'utf8').trim());
      if (owner && owner !== process.pid && processAlive(owner)) throw new DatabaseInUseError(dataDir, owner);
      rmSync(file, { force: true });
    }
  }
}

/** Embedded Postgres (WASM) in `dataDir`, or in memory when dataDir is undefined. */
export async function openPglite(dataDir: string | undefined): Promise<Db> {
  let unlock = () => {};
  if (dataDir) {
    mkdirSync(dataDir, { recursive: true });
    unlock = lockDataDir(dataDir);
  }
  let pg: PGlite;
  try {
    pg = await PGlite.create(dataDir, { parsers: { [INT8_OID]: (v: string) => Number(v) } });
  } catch (err) {
    unlock();
    throw err;
  }
  const orm = drizzlePglite(pg, { schema }) as unknown as Orm;
  return {
    kind: 'pglite',
    orm,
    async rows<T>(query: SQL) {
      const res = (await orm.execute(query)) as unknown as { rows: T[] };
      return res.rows;
    },
    direct(query) {
      return async (values) => (await pg.query<unknown[]>(query.sql, fillPlaceholders(query.params, values), { rowMode: 'array' })).rows;
    },
    async listen(channel, onNotify) {
      const unlisten = await pg.listen(channel, () => onNotify());
      return () => unlisten();
    },
    async close() {
      try {
        await pg.close();
      } finally {
        unlock();
      }
    },
  };
}

export async function openDb(opts: { databaseUrl?: string; dataDir: string }): Promise<Db> {
  return opts.databaseUrl
    ? openPostgres(opts.databaseUrl)
    : openPglite(join(opts.dataDir, 'pglite'));
}

/**
 * A value built once per database on first use: prepared statements, whose drizzle builder is the
 * expensive part of a hot query.
 */
export function perDb<T>(build: (db: Db) => T): (db: Db) => T {
  const cache = new WeakMap<Db, T>();
  return (db) => {
    let v = cache.get(db);
    if (!v) cache.set(db, (v = build(db)));
    return v;
  };
}

export async function ping(db: Db): Promise<void> {
  await db.rows(sql`select 1 as ok`);
}
