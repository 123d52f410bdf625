import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { applyMigrations } from '../src/db/migrate.js';
import { createCitusDatabase, databaseAt, dropCitusDatabase, readCitusCluster, withClient, type CitusCluster } from '../test/support/citus-database.js';

/**
 * A fresh, migrated database for the distributed-deployment benchmarks
 * (bench/inbox.ts, bench/hot-conversation.ts) on DATABASE_URL's server. When
 * that database has the citus extension (a coordinator, its workers added),
 * the new database is a Citus database of the same cluster and the migrations
 * distribute the tables; otherwise it is plain PostgreSQL. Both are what the
 * benchmarks compare.
 */
export interface BenchDatabase {
  url: string;
  citus: CitusCluster | null;
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

export async function createDistributedBenchDatabase(prefix: string): Promise<BenchDatabase> {
  const base = process.env.DATABASE_URL;
  if (!base) throw new Error('DATABASE_URL must name a PostgreSQL server or a Citus coordinator (these benchmarks compare the two)');
  const onCitus = await withClient(base, async (client) => (await client.query("SELECT 1 FROM pg_extension WHERE extname = 'citus'")).rowCount! > 0);
  const citus = onCitus ? await readCitusCluster(base) : null;
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  if (citus) await createCitusDatabase(base, citus, name);
  else await withClient(base, (client) => client.query(`CREATE DATABASE ${name}`));
  const url = databaseAt(base, name);
  await applyMigrations(url);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => {});
  return {
    url,
    citus,
    async query(sql, params) {
      return (await pool.query(sql, params)).rows;
    },
    async drop() {
      await pool.end();
      if (citus) await dropCitusDatabase(base, citus, name);
      else await withClient(base, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

export const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
export const round = (n: number, digits = 1) => Number(n.toFixed(digits));

/** `Task Count: n` of a Citus EXPLAIN (how many shard tasks the statement runs), or null on plain PostgreSQL. */
export async function citusTaskCount(db: BenchDatabase, sql: string, params: unknown[]): Promise<{ tasks: number | null; plan: string[] }> {
  const rows = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params);
  // Lines shortened: a plan quotes its parameters, and a list of 10,000 ids is not worth printing.
  const plan = rows.map((row) => (row['QUERY PLAN'].length > 160 ? `${row['QUERY PLAN'].slice(0, 157)}...` : row['QUERY PLAN']));
  const line = plan.find((l) => /Task Count:/.test(l));
  return { tasks: line ? Number(/Task Count: (\d+)/.exec(line)![1]) : null, plan };
}
