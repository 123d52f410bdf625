import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.js';
import { findNginx } from '../../ops/nginx.js';
import { readCitusCluster, type CitusCluster } from './citus-database.js';
import { redisAvailable } from './redis.js';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    /** The Citus cluster of the run (TEST_CITUS=1), or null on plain PostgreSQL. */
    citus: CitusCluster | null;
    redisUrl: string | null;
    nginx: boolean;
  }
}

let embedded: EmbeddedDatabase | undefined;
let dataDir: string | undefined;

/**
 * Tests run against real PostgreSQL: DATABASE_URL when set (CI: the machine's
 * server), otherwise an embedded one started here for the whole run. Each
 * test file then creates its own database on that server.
 *
 * With TEST_CITUS=1, DATABASE_URL is a Citus coordinator's database (its
 * workers added) and every test file's database is a Citus database of that
 * cluster (docs/citus.md, "Running the test suite on Citus").
 *
 * Redis: REDIS_URL, else the conventional local port. Without a reachable
 * Redis the Redis tests skip with a notice, except under CI=true, where a
 * missing Redis fails the run.
 */
export default async function setup(project: TestProject) {
  let databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    dataDir = await mkdtemp(path.join(tmpdir(), 'chat-test-pg-'));
    embedded = await startEmbeddedPostgres(dataDir);
    databaseUrl = embedded.url;
  }
  let citus: CitusCluster | null = null;
  if (/^(1|true|yes)$/i.test(process.env.TEST_CITUS ?? '')) {
    if (!process.env.DATABASE_URL) throw new Error('TEST_CITUS is set: point DATABASE_URL at a Citus coordinator (docs/citus.md)');
    citus = await readCitusCluster(databaseUrl);
    console.log(`\n  Citus: ${citus.version}; workers ${citus.workers.map((w) => `${w.host}:${w.port}`).join(', ')}\n`);
  }
  const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  const redisUp = await redisAvailable(redisUrl);
  if (!redisUp) {
    if (process.env.CI === 'true') throw new Error(`CI=true but Redis is not reachable at ${redisUrl}`);
    console.warn(`\n  NOTICE: Redis is not reachable at ${redisUrl}; the Redis tests are SKIPPED.\n`);
  }
  let nginx = true;
  try {
    findNginx();
  } catch {
    nginx = false;
    if (process.env.CI === 'true') throw new Error('CI=true but nginx is not installed (apt-get install nginx)');
    console.warn('\n  NOTICE: nginx is not installed; the load-balancer (cluster) tests are SKIPPED.\n');
  }
  project.provide('nginx', nginx);
  project.provide('databaseUrl', databaseUrl);
  project.provide('citus', citus);
  project.provide('redisUrl', redisUp ? redisUrl : null);
  return async () => {
    await embedded?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  };
}
