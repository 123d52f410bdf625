import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

/**
 * PostgreSQL servers of a test's own (primary, synchronous standby), from the
 * machine's PostgreSQL binaries (Debian's postgresql-15: initdb, pg_ctl,
 * pg_basebackup), on free loopback ports, in a temporary directory removed at
 * the end. PostgreSQL refuses to run as root, so as root every command runs as
 * the `postgres` OS user (runuser).
 */

/** The directory holding initdb and pg_ctl: PG_BINDIR, else the newest /usr/lib/postgresql/<n>/bin. */
export function postgresBinDir(): string | null {
  if (process.env.PG_BINDIR) return existsSync(path.join(process.env.PG_BINDIR, 'initdb')) ? process.env.PG_BINDIR : null;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(path.join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? path.join(root, versions[0]!, 'bin') : null;
}

export interface PostgresServer {
  readonly port: number;
  readonly dataDir: string;
  /** postgresql://postgres@127.0.0.1:<port>/postgres */
  readonly url: string;
  /** SIGKILLs the postmaster and every process it started: the machine is gone, nothing is flushed or said goodbye. */
  kill(): Promise<void>;
  /** pg_ctl promote, waiting until it accepts writes. */
  promote(): Promise<void>;
  stop(): Promise<void>;
}

export interface ReplicatedPostgres {
  primary: PostgresServer;
  standby: PostgresServer;
  /** Both hosts, libpq style, primary first: what the servers are given as DATABASE_URL. */
  url(options?: string): string;
  close(): Promise<void>;
}

const asRoot = process.getuid?.() === 0;

async function pgCommand(bin: string, command: string, args: string[]): Promise<string> {
  const file = path.join(bin, command);
  const { stdout } = asRoot ? await run('runuser', ['-u', 'postgres', '--', file, ...args]) : await run(file, args);
  return stdout;
}

export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    // Redis Cluster also listens on port + 10000 (its bus); keep room for that.
    if (port < 55_000) return port;
  }
}

function server(bin: string, dataDir: string, port: number): PostgresServer {
  const postmasterPid = async () => Number((await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  return {
    port,
    dataDir,
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    async kill() {
      const pid = await postmasterPid();
      const children = readdirSync('/proc')
        .filter((entry) => /^\d+$/.test(entry))
        .filter((entry) => {
          try {
            // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so read after its ')'.
            const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
            return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
          } catch {
            return false;
          }
        })
        .map(Number);
      process.kill(pid, 'SIGKILL');
      for (const child of children) {
        try {
          process.kill(child, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await rm(path.join(dataDir, 'postmaster.pid'), { force: true });
    },
    async promote() {
      await pgCommand(bin, 'pg_ctl', ['promote', '-D', dataDir, '-w', '-t', '60']);
    },
    async stop() {
      if (!existsSync(path.join(dataDir, 'postmaster.pid'))) return;
      await pgCommand(bin, 'pg_ctl', ['stop', '-D', dataDir, '-m', 'immediate', '-w']).catch(() => {});
    },
  };
}

async function start(bin: string, root: string, dataDir: string): Promise<void> {
  await pgCommand(bin, 'pg_ctl', ['start', '-D', dataDir, '-l', path.join(root, `${path.basename(dataDir)}.log`), '-w', '-t', '60']);
}

/**
 * A primary and a streaming standby that the primary waits for on every
 * commit (synchronous_standby_names = '*', synchronous_commit = on): a
 * commit acknowledged to a client is on the standby too.
 */
export async function startReplicatedPostgres(bin: string): Promise<ReplicatedPostgres> {
  const root = await mkdtemp(path.join(tmpdir(), 'chat-failover-'));
  if (asRoot) await chown(root, ...(await postgresIds()));
  const primaryDir = path.join(root, 'primary');
  const standbyDir = path.join(root, 'standby');
  const [primaryPort, standbyPort] = [await freePort(), await freePort()];
  const servers: PostgresServer[] = [];
  try {
    await pgCommand(bin, 'initdb', ['-D', primaryDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    // fsync off: a SIGKILLed postmaster loses nothing the OS already has, and the machine is shared.
    await appendFile(
      path.join(primaryDir, 'postgresql.conf'),
      [
        `port = ${primaryPort}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${root}'`,
        'wal_level = replica',
        'max_wal_senders = 4',
        "synchronous_standby_names = '*'",
        'synchronous_commit = on',
        'fsync = off',
        'shared_buffers = 32MB',
        'max_connections = 60',
        '',
      ].join('\n'),
    );
    await start(bin, root, primaryDir);
    const primary = server(bin, primaryDir, primaryPort);
    servers.push(primary);
    await pgCommand(bin, 'pg_basebackup', ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', standbyDir, '-R', '-X', 'stream', '--no-sync']);
    // pg_basebackup copied the primary's settings; once promoted, this server has no standby of its
    // own to wait for, so it must not wait for one (a failover manager would reconfigure it the same way).
    await appendFile(path.join(standbyDir, 'postgresql.conf'), `port = ${standbyPort}\nhot_standby = on\nsynchronous_standby_names = ''\n`);
    await start(bin, root, standbyDir);
    const standby = server(bin, standbyDir, standbyPort);
    servers.push(standby);
    await waitForSyncStandby(primary.url);
    return {
      primary,
      standby,
      url: (options = 'target_session_attrs=read-write&connect_timeout=2') =>
        `postgresql://postgres@127.0.0.1:${primaryPort},127.0.0.1:${standbyPort}/postgres${options ? `?${options}` : ''}`,
      async close() {
        for (const s of servers) await s.stop();
        await rm(root, { recursive: true, force: true });
      },
    };
  } catch (error) {
    for (const s of servers) await s.stop();
    await rm(root, { recursive: true, force: true });
    throw error;
  }
}

async function waitForSyncStandby(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (let i = 0; i < 600; i++) {
      const { rows } = await client.query("SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync' AND state = 'streaming'");
      if (rows.length > 0) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('the standby never became a streaming synchronous standby');
  } finally {
    await client.end();
  }
}

async function postgresIds(): Promise<[number, number]> {
  const { stdout: uid } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  return [Number(uid.trim()), Number(gid.trim())];
}
