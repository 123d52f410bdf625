import path from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/config.js';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { Cluster } from './cluster.js';

/**
 * `npm run cluster -- [instances] [--port 8080]`: several instances behind
 * nginx on this machine. Uses DATABASE_URL, or starts one embedded
 * PostgreSQL for all of them; REDIS_URL defaults to the local Redis.
 */
async function main() {
  const args = process.argv.slice(2);
  const portFlag = args.indexOf('--port');
  const port = portFlag >= 0 ? Number(args.splice(portFlag, 2)[1]) : 8080;
  const count = Number(args[0] ?? 3);
  if (!Number.isInteger(count) || count < 1 || count > 32) throw new Error('usage: npm run cluster -- [instances 1-32] [--port 8080]');

  const config = loadConfig();
  const redisUrl = config.redisUrl ?? 'redis://127.0.0.1:6379';
  const probe = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  await probe.connect().catch(() => {
    throw new Error(`A cluster needs Redis: none at ${redisUrl} (set REDIS_URL)`);
  });
  probe.disconnect();

  const embedded = config.databaseUrl ? undefined : await startEmbeddedPostgres(config.dataDir);
  const cluster = await Cluster.start({
    instances: count,
    port,
    dir: path.join(config.dataDir, 'cluster'),
    env: { DATABASE_URL: config.databaseUrl ?? embedded!.url, REDIS_URL: redisUrl },
  });
  console.log(`\n  ${count} instances behind nginx: ${cluster.url}`);
  for (const instance of cluster.instances) console.log(`    instance ${instance.index}: ${instance.url}`);
  console.log(`  Logs: ${cluster.dir}\n  Tokens: npm run token -- alice "Alice"\n  Ctrl-C stops everything.\n`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await cluster.stop();
    await embedded?.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
