// bin/patch-postgres.mjs (run by `npm ci`): the installed postgres.js carries it, and it still
// behaves as postgres.js does, against the real server.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADMIN_URL, describeWith, postgresAvailable } from '../support/services.js';

const pgUp = await postgresAvailable();
const MARK = 'patched by mailsight bin/patch-postgres.mjs';

it('npm ci patched both builds of postgres.js (ESM and CommonJS)', () => {
  const root = join(dirname(createRequire(import.meta.url).resolve('postgres')), '..', '..');
  for (const file of ['src/query.js', 'src/result.js', 'cjs/src/query.js', 'cjs/src/result.js']) {
    const text = readFileSync(join(root, file), 'utf8');
    expect(text, file).toContain(MARK);
    expect(text, file).not.toContain('static get [Symbol.species]');
  }
});

describeWith('postgres', pgUp)('postgres.js as patched, against Postgres', () => {
  let sql: postgres.Sql;
  beforeAll(() => {
    sql = postgres(ADMIN_URL, { max: 2, onnotice: () => {} });
  });
  afterAll(() => sql.end({ timeout: 5 }));

  it('a query resolves to a Result; then() and map() give a plain Promise and a plain Array (the species)', async () => {
    const q = sql`select ${7}::int as n union all select 8`;
    const derived = q.then((rows) => rows);
    expect(derived.constructor).toBe(Promise);
    const rows = await derived;
    expect(rows.map((r) => r.n)).toEqual([7, 8]);
    expect(rows.map((r) => r).constructor).toBe(Array);
    expect(rows.count).toBe(2);
    expect(rows.command).toBe('SELECT');
    expect(await sql.unsafe('select $1::text as t', ['x'], { prepare: true }).values()).toEqual([['x']]);
  });

  it('a failing query rejects with the server error, and the connection keeps serving', async () => {
    await expect(sql`select * from no_such_table_here`).rejects.toMatchObject({ code: '42P01' });
    await expect(sql`select 1 as one`).resolves.toEqual([{ one: 1 }]);
  });

  it('a cursor (which sets its own resolve and reject) still iterates to the end', async () => {
    const seen: number[] = [];
    for await (const batch of sql`select generate_series(1, 5) as n`.cursor(2)) seen.push(...batch.map((r) => r.n));
    expect(seen).toEqual([1, 2, 3, 4, 5]);
  });

  it('a transaction commits and a failed one rolls back', async () => {
    const one = await sql.begin(async (tx) => {
      await tx`create temporary table patch_t2 (n int)`;
      await tx`insert into patch_t2 values (1)`;
      return tx`select count(*)::int as c from patch_t2`;
    });
    expect(one[0]!.c).toBe(1);
    await expect(
      sql.begin(async (tx) => {
        await tx`select 1`;
        throw new Error('stop');
      }),
    ).rejects.toThrow('stop');
  });
});
