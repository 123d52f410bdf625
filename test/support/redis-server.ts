import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { freePort } from '../../src/db/embedded.js';
import { track } from './processes.js';

/**
 * A redis-server of the test's own, on a free port, that the test may stop,
 * restart and abuse (CLIENT KILL) without touching the machine's shared Redis.
 * Nothing is persisted: a restart comes back empty, as a crashed cache does.
 */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly running: boolean;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s); resolves once it has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port; resolves once it answers PING. */
  start(): Promise<void>;
  /** Runs one command on a short-lived connection (e.g. `CLIENT KILL TYPE pubsub`). */
  command(...args: (string | number)[]): Promise<unknown>;
}

export function findRedisServer(): string | undefined {
  for (const candidate of [process.env.REDIS_SERVER_BIN, '/usr/bin/redis-server', '/usr/local/bin/redis-server']) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  return undefined;
}

export async function startRedisServer(): Promise<RedisServer> {
  const bin = findRedisServer();
  if (!bin) throw new Error('redis-server is not installed (Debian: apt-get install redis-server); or set REDIS_SERVER_BIN');
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let output = '';

  async function start() {
    if (child && child.exitCode === null && child.signalCode === null) return;
    output = '';
    child = track(
      spawn(bin!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    child.stdout!.on('data', (chunk) => (output += chunk));
    child.stderr!.on('data', (chunk) => (output += chunk));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${output}`);
      if (await ping()) return;
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async function ping(): Promise<boolean> {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
    client.on('error', () => {});
    try {
      await client.connect();
      return (await client.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      client.disconnect();
    }
  }

  async function stop() {
    const current = child;
    if (!current || current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
    current.kill('SIGTERM');
    const timer = setTimeout(() => current.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  await start();
  return {
    port,
    url,
    get running() {
      return Boolean(child && child.exitCode === null && child.signalCode === null);
    },
    stop,
    start,
    async command(...args) {
      const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null });
      client.on('error', () => {});
      try {
        return await client.call(String(args[0]), ...args.slice(1).map(String));
      } finally {
        client.disconnect();
      }
    },
  };
}
