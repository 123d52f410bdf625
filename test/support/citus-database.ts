import pg from 'pg';

/**
 * Creating and dropping databases that are Citus databases of one cluster,
 * for the test suite on Citus (TEST_CITUS=1) and the benchmarks
 * (docs/citus.md, "Running the test suite on Citus"). No vitest here: the
 * benchmarks use it too.
 */

/** A PostgreSQL server: where to reach it. */
export interface NodeAddress {
  host: string;
  port: number;
}

/**
 * The Citus cluster the suite runs on (TEST_CITUS=1, DATABASE_URL at a
 * coordinator; docs/citus.md, "Running the test suite on Citus"), as the
 * coordinator's own catalog (pg_dist_node) names its nodes.
 */
export interface CitusCluster {
  /** citus_version(), e.g. "Citus 13.2.2 on x86_64-pc-linux-gnu, …". */
  version: string;
  coordinator: NodeAddress;
  workers: NodeAddress[];
}

/**
 * Serializes per-file Citus database setups of every test process. Taken on a
 * connection to the coordinator's base database (advisory locks are per
 * database): two `citus_add_node` calls in different databases at once can
 * fail with "tuple concurrently updated" (activating a node updates the
 * shared pg_authid on the worker).
 */
const CITUS_SETUP_LOCK = 977001;

/**
 * A database that is a Citus database of the same cluster: created on every
 * node, the extension in it on every node (workers first: the coordinator's
 * citus_add_node calls functions of the worker's extension), and the nodes
 * registered in it, because pg_dist_node and the extension are per database.
 */
export async function createCitusDatabase(base: string, citus: CitusCluster, name: string): Promise<void> {
  await withClient(base, async (lock) => {
    await lock.query('SELECT pg_advisory_lock($1)', [CITUS_SETUP_LOCK]);
    try {
      await withClient(base, async (client) => {
        // Citus 12.2+ creates it on the workers too; where the setting is unknown (older releases) the loop below does.
        await client.query('SET citus.enable_create_database_propagation = on').catch(() => {});
        await client.query(`CREATE DATABASE ${name}`);
      });
      for (const worker of citus.workers) {
        await withClient(nodeUrl(base, worker), async (client) => {
          const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
          if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${name}`);
        });
        await withClient(nodeUrl(databaseAt(base, name), worker), (client) => client.query('CREATE EXTENSION IF NOT EXISTS citus'));
      }
      await withClient(databaseAt(base, name), async (client) => {
        await client.query('CREATE EXTENSION IF NOT EXISTS citus');
        await client.query('SELECT citus_set_coordinator_host($1, $2)', [citus.coordinator.host, citus.coordinator.port]);
        for (const worker of citus.workers) await client.query('SELECT citus_add_node($1, $2)', [worker.host, worker.port]);
      });
    } finally {
      await lock.query('SELECT pg_advisory_unlock($1)', [CITUS_SETUP_LOCK]).catch(() => {});
    }
  });
}

/**
 * Reads the cluster from a coordinator's database (TEST_CITUS=1). Throws with
 * what is wrong when DATABASE_URL is not a Citus coordinator with workers.
 */
export async function readCitusCluster(url: string): Promise<CitusCluster> {
  return withClient(url, async (client) => {
    const extension = await client.query("SELECT 1 FROM pg_extension WHERE extname = 'citus'");
    if (extension.rowCount === 0) {
      throw new Error(`TEST_CITUS is set but the database of DATABASE_URL has no citus extension: point DATABASE_URL at a Citus coordinator's database with its workers added (docs/citus.md)`);
    }
    const version = (await client.query<{ version: string }>('SELECT citus_version() AS version')).rows[0]!.version;
    const nodes = await client.query<{ host: string; port: number; groupid: number }>(
      "SELECT nodename AS host, nodeport AS port, groupid FROM pg_dist_node WHERE noderole = 'primary' AND isactive ORDER BY groupid",
    );
    const workers = nodes.rows.filter((node) => node.groupid !== 0).map(({ host, port }) => ({ host, port }));
    if (workers.length === 0) throw new Error('TEST_CITUS is set but the coordinator has no active workers (citus_add_node)');
    const registered = nodes.rows.find((node) => node.groupid === 0);
    const own = new URL(url);
    const coordinator = registered ? { host: registered.host, port: registered.port } : { host: own.hostname, port: Number(own.port || 5432) };
    return { version, coordinator, workers };
  });
}

export function databaseAt(url: string, name: string): string {
  const next = new URL(url);
  next.pathname = `/${name}`;
  return next.toString();
}

/** The same user, password and database on another node of the cluster. */
export function nodeUrl(url: string, node: NodeAddress): string {
  const next = new URL(url);
  next.hostname = node.host;
  next.port = String(node.port);
  return next.toString();
}

export async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

/**
 * Drops a Citus database node by node, workers first, without propagation: a
 * propagated DROP from the coordinator races the workers' Citus maintenance
 * daemons and can leave a half-dropped database (docs/citus.md).
 */
export async function dropCitusDatabase(base: string, citus: CitusCluster, name: string): Promise<void> {
  for (const worker of citus.workers) {
    await withClient(nodeUrl(base, worker), (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  }
  await withClient(base, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}
