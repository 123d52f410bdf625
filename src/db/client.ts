import { PrismaPg } from '@prisma/adapter-pg';
import type pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.js';
import { createPool } from './connection.js';

/**
 * Statements on the hot paths (a send, the sender's place in the conversation
 * list) bypass Prisma's query engine and go straight to node-postgres on the
 * same pool: measured, Prisma's engine cost about 0.24 ms of CPU per raw
 * statement against node-postgres's 0.07 ms, the largest part of a send's
 * cost in the process (docs/architecture.md, step 1 of a message's path). Same
 * connections, same observer, same error shapes (node-postgres's errors carry
 * the SQLSTATE in `code`; src/db/errors.ts reads both).
 */
export interface Sql {
  /**
   * Runs one statement with `$n` parameters and returns its rows as
   * node-postgres parses them (timestamptz → Date, integer → number, json →
   * value, arrays → arrays). `name` makes it a prepared statement, parsed and
   * planned once per connection.
   */
  query<R>(text: string, values: readonly unknown[], name?: string): Promise<R[]>;
}

export type Database = PrismaClient & {
  readonly sql: Sql;
  /**
   * Statements whose commit does not wait for the WAL flush (PostgreSQL's
   * asynchronous commit, on a small pool of its own): for derived data only,
   * whose last writes a database crash may lose (at most `wal_writer_delay`
   * × 3, 600 ms by default) without losing anything acknowledged: the inbox
   * index's order and last-seen times. Other sessions see a write as soon as
   * it commits, as always. A send used to wait for two flushes (its message,
   * then the sender's inbox row); now for one. A pool of its own (four
   * connections, ASYNC_COMMIT_POOL_SIZE), whose connections start with
   * `synchronous_commit=off`.
   */
  readonly asyncCommit: Sql;
};

/**
 * Connections of the asynchronous-commit pool. Its two writers (inbox order,
 * last seen) keep one statement in flight each (group commits); a batch that
 * outlasts its writer's timeout is left running and the next one starts on
 * another connection, hence the headroom. Opened only when needed.
 */
const ASYNC_COMMIT_POOL_SIZE = 4;

/** Sees every SQL statement the server sends (metrics, and tests that check each statement's shape). */
export interface QueryObserver {
  (sql: string, durationMs: number, failed: boolean): void;
}

export interface DatabaseHandle {
  db: Database;
  /** Connections of the pool: open, idle, and callers waiting for one. */
  poolStats(): { total: number; idle: number; waiting: number };
}

/**
 * The one Prisma client of a process, over a node-postgres pool we own
 * (through the driver adapter) so that every statement can be observed:
 * each pooled connection's `query` is wrapped once, when it connects.
 */
export function createDatabase(databaseUrl: string, poolSize: number, observe?: QueryObserver): DatabaseHandle {
  // A multi-host DATABASE_URL connects to whichever host is the primary now (src/db/connection.ts).
  const pool = createPool(databaseUrl, poolSize);
  const asyncPool = createPool(databaseUrl, ASYNC_COMMIT_POOL_SIZE, { synchronous_commit: 'off' });
  for (const each of [pool, asyncPool]) {
    // An idle connection that the server drops (restart, failover) must not crash the process.
    each.on('error', () => {});
    if (observe) observeQueries(each, observe);
  }
  const adapter = new PrismaPg(pool);
  const prisma = new PrismaClient({ adapter });
  const disconnect = prisma.$disconnect.bind(prisma);
  const sqlOn = (on: pg.Pool): Sql => ({
    async query<R>(text: string, values: readonly unknown[], name?: string) {
      const result = await on.query({ text, values: values as unknown[], ...(name && { name }) });
      return result.rows as R[];
    },
  });
  // The adapter does not end a pool it was given: do it with the client.
  const db = Object.assign(prisma, {
    sql: sqlOn(pool),
    asyncCommit: sqlOn(asyncPool),
    $disconnect: async () => {
      await disconnect();
      await Promise.all([pool.end(), asyncPool.end()]);
    },
  });
  return {
    db,
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
  };
}

/** Wraps each pooled connection's `query` once, when it connects, to time every statement. */
function observeQueries(pool: pg.Pool, observe: QueryObserver): void {
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const config = args[0];
      const sql = typeof config === 'string' ? config : ((config as { text?: string })?.text ?? '');
      const started = performance.now();
      // pg.Pool#query calls this callback-style; Prisma's transactions promise-style.
      const callback = args[args.length - 1];
      if (typeof callback === 'function') {
        args[args.length - 1] = (error: unknown, ...rest: unknown[]) => {
          observe(sql, performance.now() - started, Boolean(error));
          return (callback as (...a: unknown[]) => unknown)(error, ...rest);
        };
        return query(...args);
      }
      const result = query(...args);
      if (result && typeof (result as Promise<unknown>).then === 'function') {
        (result as Promise<unknown>).then(
          () => observe(sql, performance.now() - started, false),
          () => observe(sql, performance.now() - started, true),
        );
      }
      return result;
    };
  });
}

/**
 * True when the database answers (for /ready) within `timeoutMs`: a load
 * balancer's or orchestrator's probe needs an answer, and a database that
 * takes longer (or a pool with no free connection) is not ready.
 */
export async function pingDatabase(db: Database, timeoutMs = 2000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
    timer.unref();
  });
  const ping = db.$queryRaw`SELECT 1`.then(
    () => true,
    () => false,
  );
  try {
    return await Promise.race([ping, late]);
  } finally {
    clearTimeout(timer);
  }
}
