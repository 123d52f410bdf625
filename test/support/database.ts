import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { createCitusDatabase, databaseAt, dropCitusDatabase, withClient, type CitusCluster } from './citus-database.js';

export { readCitusCluster, type CitusCluster, type NodeAddress } from './citus-database.js';

/** A fresh database on the test server, dropped by `drop()`. */
export interface TestDatabase {
  url: string;
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** The Citus cluster of this run, or null on plain PostgreSQL. */
export function citusCluster(): CitusCluster | null {
  return inject('citus');
}

/**
 * `base`: the server to create it on (default: the suite's, a Citus
 * coordinator when the run is on Citus; a test may pass a PostgreSQL of its own).
 */
export async function createTestDatabase(base: string = inject('databaseUrl')): Promise<TestDatabase> {
  const citus = base === inject('databaseUrl') ? citusCluster() : null;
  const name = `chat_test_${randomBytes(6).toString('hex')}`;
  if (citus) await createCitusDatabase(base, citus, name);
  else await withClient(base, (client) => client.query(`CREATE DATABASE ${name}`));
  const url = databaseAt(base, name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  // DROP DATABASE … WITH (FORCE) terminates connections that are still closing; that is expected.
  pool.on('error', () => {});
  return {
    url,
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


/**
 * A conversation's row held FOR UPDATE by a transaction of its own, so that
 * sends into it wait inside the database for as long as a test says (not for
 * as long as a clock guesses). `waiting()` counts the statements waiting for
 * a lock in that database; `untilWaiting(n)` polls until there are `n` or
 * more (failing after 10 s); `release()` commits; `end()` closes it (always).
 */
export async function holdConversation(url: string, conversationId: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('BEGIN');
  await client.query('SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE', [conversationId]);
  const waiting = async () =>
    (await client.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")).rows[0]!.n;
  return {
    waiting,
    async untilWaiting(n: number): Promise<void> {
      for (let polls = 0; (await waiting()) < n; polls++) {
        if (polls >= 500) throw new Error(`fewer than ${n} statements waiting for the row lock after 10 s`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    release: () => client.query('COMMIT'),
    end: () => client.end(),
  };
}
