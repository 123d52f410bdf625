import type { Logger } from '../logger.js';
import { createDatabase, type Database, type QueryObserver } from './client.js';
import { startEmbeddedPostgres } from './embedded.js';
import { applyMigrations } from './migrate.js';

export interface Storage {
  db: Database;
  /** What the server connects to (the embedded server's URL when DATABASE_URL is unset). */
  url: string;
  poolStats(): { total: number; idle: number; waiting: number };
  close(): Promise<void>;
}

/**
 * PostgreSQL, ready to use: the embedded default when no URL is given (a real
 * PostgreSQL started under `dataDir`), migrations applied, and the pool.
 */
export async function openStorage(options: {
  databaseUrl: string | undefined;
  dataDir: string;
  poolSize: number;
  logger: Logger;
  onQuery: QueryObserver;
}): Promise<Storage> {
  const { logger } = options;
  const embedded = options.databaseUrl ? undefined : await startEmbeddedPostgres(options.dataDir, (line) => logger.debug({ postgres: line }));
  if (embedded) logger.info({ dataDir: options.dataDir }, 'embedded PostgreSQL started');
  const url = options.databaseUrl ?? embedded!.url;
  try {
    const applied = await applyMigrations(url, { log: (line) => logger.info(line) });
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    const database = createDatabase(url, options.poolSize, options.onQuery);
    return {
      db: database.db,
      url,
      poolStats: database.poolStats,
      async close() {
        await database.db.$disconnect();
        await embedded?.stop();
      },
    };
  } catch (error) {
    await embedded?.stop().catch(() => {});
    throw error;
  }
}
