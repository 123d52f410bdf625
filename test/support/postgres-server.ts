import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../../src/db/embedded.js';
import { track } from './processes.js';

/**
 * A PostgreSQL server of the test's own (initdb into a temp directory, trust
 * auth, a free port), so a test can stop and restart it without touching the
 * machine's shared server. The postmaster is our child process (not
 * daemonized by pg_ctl), so the test always holds its pid and can clean up.
 *
 * PostgreSQL refuses to run as root: as root, initdb and the server run as
 * the `postgres` OS user, and the data directory is handed to that user.
 */
export interface PostgresServer {
  readonly port: number;
  /** postgresql://postgres@127.0.0.1:<port>/postgres */
  readonly url: string;
  readonly running: boolean;
  /** Fast shutdown (SIGINT: open sessions are disconnected); resolves once the postmaster has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data; resolves once it accepts queries. */
  start(): Promise<void>;
  /** Stops it and deletes its data directory. */
  destroy(): Promise<void>;
}

export function findPostgresBin(): string | undefined {
  const candidates = [process.env.PG_BIN_DIR, '/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'];
  return candidates.find((dir) => dir && existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'postgres')));
}

function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

export async function startPostgresServer(): Promise<PostgresServer> {
  const bin = findPostgresBin();
  if (!bin) throw new Error('PostgreSQL server binaries not found (Debian: postgresql-15); or set PG_BIN_DIR');
  const user = postgresUser();
  const root = await mkdtemp(path.join(tmpdir(), 'chat-test-own-pg-'));
  const data = path.join(root, 'data');
  if (user) {
    await chmod(root, 0o755);
    await chown(root, user.uid, user.gid);
  }
  const as = user ? { uid: user.uid, gid: user.gid } : {};
  execFileSync(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale', 'C'], {
    ...as,
    cwd: root,
    stdio: 'pipe',
  });
  const port = await freePort();
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  let child: ChildProcess | undefined;
  let output = '';

  async function accepting(): Promise<boolean> {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  }

  async function start() {
    if (child && child.exitCode === null && child.signalCode === null) return;
    output = '';
    child = track(
      spawn(
        path.join(bin!, 'postgres'),
        [
          '-D', data,
          '-p', String(port),
          '-c', 'listen_addresses=127.0.0.1',
          '-c', `unix_socket_directories=${root}`,
          // A throwaway server: durability costs disk flushes we do not need.
          '-c', 'fsync=off',
          '-c', 'synchronous_commit=off',
          '-c', 'full_page_writes=off',
          '-c', 'max_connections=200',
        ],
        { ...as, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    // Keep the tail of its log for error messages.
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-10_000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}: ${output}`);
      if (await accepting()) return;
      if (Date.now() > deadline) throw new Error(`postgres on ${port} not accepting after 30 s: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async function stop() {
    const current = child;
    if (!current || current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
    current.kill('SIGINT'); // fast shutdown
    const timer = setTimeout(() => current.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  try {
    await start();
  } catch (error) {
    await stop();
    await rm(root, { recursive: true, force: true });
    throw error;
  }
  return {
    port,
    url,
    get running() {
      return Boolean(child && child.exitCode === null && child.signalCode === null);
    },
    stop,
    start,
    async destroy() {
      await stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}
