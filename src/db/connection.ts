import pg from 'pg';
import { DatabaseUnavailableError } from './errors.js';

/** One PostgreSQL server of a DATABASE_URL. */
export interface DatabaseHost {
  host: string;
  port: number;
}

/**
 * A DATABASE_URL, read the way libpq reads it: one or several hosts
 * (`postgresql://user@db-1:5432,db-2:5432/chat?target_session_attrs=read-write`),
 * tried in order (docs/architecture.md, "Failure handling").
 */
export interface DatabaseTarget {
  hosts: DatabaseHost[];
  /** `target_session_attrs=read-write` or `primary`: only a server that accepts writes will do. */
  readWrite: boolean;
  /** Seconds to wait for each host (`connect_timeout`), 0 for the driver's default. */
  connectTimeoutSeconds: number;
  /** A single-host URL for each host, with everything else of the original (user, database, options). */
  urlFor(host: DatabaseHost): string;
}

/**
 * Parses a PostgreSQL URL, with libpq's multi-host syntax. node-postgres reads
 * only one host per URL (its parser is WHATWG's URL, which refuses a list),
 * so the list is split here and each host gets its own URL.
 */
export function parseDatabaseUrl(raw: string): DatabaseTarget {
  const match = /^(postgres(?:ql)?:\/\/)(?:([^@/?#]*)@)?([^/?#]*)(.*)$/i.exec(raw);
  if (!match) throw new Error('not a postgres:// or postgresql:// URL');
  const [, scheme, userinfo, hostList, rest] = match as unknown as [string, string, string | undefined, string, string];
  const hosts = splitHosts(hostList);
  // Query parameters: ours are removed from each host's URL; node-postgres gets the rest.
  const queryAt = rest.indexOf('?');
  const path = queryAt < 0 ? rest : rest.slice(0, queryAt);
  const params = new URLSearchParams(queryAt < 0 ? '' : rest.slice(queryAt + 1));
  const attrs = params.get('target_session_attrs') ?? 'any';
  if (!['any', 'read-write', 'primary'].includes(attrs)) {
    throw new Error(`target_session_attrs=${attrs} is not supported (any, read-write or primary)`);
  }
  params.delete('target_session_attrs');
  const timeout = Number(params.get('connect_timeout') ?? 0);
  const query = params.toString();
  const auth = userinfo === undefined ? '' : `${userinfo}@`;
  const target: DatabaseTarget = {
    hosts,
    readWrite: attrs !== 'any',
    connectTimeoutSeconds: Number.isFinite(timeout) && timeout > 0 ? timeout : 0,
    urlFor: (host) => `${scheme}${auth}${formatHost(host)}${path}${query ? `?${query}` : ''}`,
  };
  // Each host's URL must be one node-postgres and WHATWG's URL accept.
  for (const host of hosts) new URL(target.urlFor(host));
  return target;
}

function splitHosts(list: string): DatabaseHost[] {
  if (list === '') return [{ host: 'localhost', port: 5432 }];
  return list.split(',').map((entry) => {
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    if (bracketed) return { host: bracketed[1]!, port: Number(bracketed[2] ?? 5432) };
    const [host, port] = entry.split(':');
    if (!host) throw new Error(`empty host in "${list}"`);
    return { host, port: Number(port ?? 5432) };
  });
}

function formatHost({ host, port }: DatabaseHost): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Finds the server to connect to among the hosts of a DATABASE_URL, as libpq
 * does with target_session_attrs: hosts in order, the first that answers and
 * (when asked for) accepts writes. The answer is remembered until a
 * connection to that host fails or finds it read-only; the next connection
 * then asks every host again. This is how instances reach a promoted replica
 * after a failover (docs/architecture.md, "Failure handling").
 */
export class PrimaryLocator {
  private current: DatabaseHost | null = null;
  private search: Promise<DatabaseHost> | null = null;

  constructor(readonly target: DatabaseTarget) {}

  /** The host to connect to now. Rejects with DatabaseUnavailableError when no host qualifies. */
  primary(): Promise<DatabaseHost> {
    if (this.current) return Promise.resolve(this.current);
    this.search ??= this.find().finally(() => (this.search = null));
    return this.search;
  }

  /** That host failed us: look again next time. */
  forget(host: DatabaseHost): void {
    if (this.current === host) this.current = null;
  }

  private async find(): Promise<DatabaseHost> {
    const reasons: string[] = [];
    for (const host of this.target.hosts) {
      const client = new pg.Client({ connectionString: this.target.urlFor(host), connectionTimeoutMillis: this.timeoutMs() });
      client.on('error', () => {});
      try {
        await client.connect();
        if (this.target.readWrite && !(await acceptsWrites(client))) {
          reasons.push(`${formatHost(host)} is read-only`);
          continue;
        }
        this.current = host;
        return host;
      } catch (error) {
        reasons.push(`${formatHost(host)}: ${(error as Error).message || (error as { code?: string }).code}`);
      } finally {
        await client.end().catch(() => {});
      }
    }
    throw new DatabaseUnavailableError(`No ${this.target.readWrite ? 'read-write ' : ''}PostgreSQL server is reachable (${reasons.join('; ')})`);
  }

  /** For the probes: a host that does not answer must not hold up the others for long. */
  timeoutMs(): number {
    return this.target.connectTimeoutSeconds > 0 ? this.target.connectTimeoutSeconds * 1000 : 5000;
  }
}

/** libpq's read-write test: `SHOW transaction_read_only` must say off. */
async function acceptsWrites(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ transaction_read_only: string }>('SHOW transaction_read_only');
  return rows[0]?.transaction_read_only === 'off';
}

/**
 * A node-postgres Client class for a pool over a multi-host DATABASE_URL: each
 * new connection goes to the host the locator names, and is checked to accept
 * writes when the URL asks for it. A connection that fails either way makes
 * the locator look again, and the caller gets a DatabaseUnavailableError.
 */
export function failoverClient(locator: PrimaryLocator): typeof pg.Client {
  return class FailoverClient extends pg.Client {
    override connect(): Promise<pg.Client>;
    override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
    override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | void {
      const connecting = (async () => {
        const host = await locator.primary();
        // pg.Client connects to the host and port it holds; set them before it does.
        const self = this as unknown as { host: string; port: number; connectionParameters: { host: string; port: number } };
        self.host = self.connectionParameters.host = host.host;
        self.port = self.connectionParameters.port = host.port;
        try {
          await super.connect();
        } catch (error) {
          locator.forget(host);
          throw new DatabaseUnavailableError(`PostgreSQL at ${formatHost(host)} is unreachable: ${(error as Error).message}`, { cause: error });
        }
        if (locator.target.readWrite && !(await acceptsWrites(this))) {
          locator.forget(host);
          await this.end().catch(() => {});
          throw new DatabaseUnavailableError(`PostgreSQL at ${formatHost(host)} is read-only (a standby, or failing over)`);
        }
        return this;
      })();
      if (!callback) return connecting;
      const done = callback as (err: Error | null, c?: pg.Client) => void;
      connecting.then(
        (client) => done(null, client),
        (error: Error) => done(error),
      );
    }
  };
}

/**
 * Server settings for every connection, sent when it starts (`-c name=value`
 * in the startup packet's `options`, after whatever options the URL or
 * PGOPTIONS give: node-postgres would let the URL's replace ours). Through a
 * transaction-pooling PgBouncer the startup option is refused or ignored,
 * never applied to another client's session, unlike a `SET` would be.
 */
function withSettings(url: string, settings: Record<string, string>): { connectionString: string; options?: string } {
  const ours = Object.entries(settings).map(([name, value]) => `-c ${name}=${value}`);
  if (ours.length === 0) return { connectionString: url };
  const parsed = new URL(url);
  const given = parsed.searchParams.get('options') ?? process.env.PGOPTIONS;
  parsed.searchParams.delete('options');
  return { connectionString: parsed.href, options: [given, ...ours].filter(Boolean).join(' ') };
}

/**
 * A pool over DATABASE_URL. One host and no target_session_attrs: a plain
 * node-postgres pool, as before. Several hosts (or read-write asked for):
 * connections go where the locator says. `settings`: server settings of its
 * connections (e.g. synchronous_commit).
 */
export function createPool(databaseUrl: string, max: number, settings: Record<string, string> = {}): pg.Pool {
  const target = parseDatabaseUrl(databaseUrl);
  if (target.hosts.length === 1 && !target.readWrite) return new pg.Pool({ ...withSettings(databaseUrl, settings), max });
  const locator = new PrimaryLocator(target);
  return new pg.Pool({
    ...withSettings(target.urlFor(target.hosts[0]!), settings),
    max,
    Client: failoverClient(locator),
    connectionTimeoutMillis: target.connectTimeoutSeconds > 0 ? target.connectTimeoutSeconds * 1000 : undefined,
  });
}

/** One connection to the server a DATABASE_URL designates (the primary, for a multi-host URL). */
export async function connectClient(databaseUrl: string): Promise<pg.Client> {
  const target = parseDatabaseUrl(databaseUrl);
  if (target.hosts.length === 1 && !target.readWrite) {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    return client;
  }
  const Client = failoverClient(new PrimaryLocator(target));
  const client = new Client({ connectionString: target.urlFor(target.hosts[0]!) });
  await client.connect();
  return client;
}
