import { loadConfig } from '../config.js';
import { startEmbeddedPostgres } from '../db/embedded.js';
import { applyMigrations } from '../db/migrate.js';

/** `npm run db:migrate`: applies pending migrations to DATABASE_URL (or the embedded database). */
async function main() {
  const config = loadConfig();
  const embedded = config.databaseUrl ? undefined : await startEmbeddedPostgres(config.dataDir);
  try {
    const applied = await applyMigrations(config.databaseUrl ?? embedded!.url, { log: (line) => console.log(line) });
    console.log(applied.length > 0 ? `applied ${applied.length} migration(s)` : 'database is up to date');
  } finally {
    await embedded?.stop();
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
