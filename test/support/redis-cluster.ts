import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './postgres-servers.js';

const run = promisify(execFile);

/**
 * A real Redis Cluster of a test's own: three masters and three replicas from
 * the machine's redis-server (Debian's redis-server, REDIS_SERVER_BIN), on
 * free loopback ports, created with `redis-cli --cluster create`, removed at
 * the end. A master killed with `kill` is replaced by its replica after
 * cluster-node-timeout, as in production.
 */
export function redisServerBin(): string | null {
  const bin = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';
  const cli = path.join(path.dirname(bin), 'redis-cli');
  return existsSync(bin) && existsSync(cli) ? bin : null;
}

export interface ClusterNode {
  port: number;
  /** The node's id in the cluster. */
  id: string;
}

export interface RedisClusterHandle {
  /** host:port of every node, for REDIS_CLUSTER_NODES. */
  readonly seeds: string[];
  /** The master that serves `slot` now. */
  masterOf(slot: number): Promise<ClusterNode>;
  /** Moves one slot (and its keys) to another master, as `redis-cli --cluster reshard` does. */
  moveSlot(slot: number, to: ClusterNode): Promise<void>;
  /** The masters that serve slots now. */
  masters(): Promise<ClusterNode[]>;
  /** SIGKILLs a node's process (no goodbye, no save). */
  kill(port: number): void;
  /** Resolves once every slot is served by a master that answers, and the surviving nodes agree (cluster_state:ok). */
  waitUntilHealthy(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** How long nodes wait before declaring a master failed: short, so tests do not wait long for a failover. */
const NODE_TIMEOUT_MS = 1000;

export async function startRedisCluster(bin: string): Promise<RedisClusterHandle> {
  const dir = await mkdtemp(path.join(tmpdir(), 'chat-redis-cluster-'));
  const processes = new Map<number, ChildProcess>();
  const ports: number[] = [];
  const close = async () => {
    for (const child of processes.values()) child.kill('SIGKILL');
    await Promise.all([...processes.values()].map((child) => (child.exitCode !== null || child.signalCode !== null ? null : new Promise((r) => child.once('exit', r)))));
    processes.clear();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    while (ports.length < 6) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    for (const port of ports) {
      const child = spawn(
        bin,
        [
          '--port', String(port),
          '--bind', '127.0.0.1',
          '--cluster-enabled', 'yes',
          '--cluster-config-file', path.join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout', String(NODE_TIMEOUT_MS),
          '--dir', dir,
          '--save', '',
          '--appendonly', 'no',
          // Replicas sync at once, so that a master can be killed right after the cluster is up.
          '--repl-diskless-sync-delay', '0',
          '--protected-mode', 'no',
          '--logfile', path.join(dir, `${port}.log`),
        ],
        { stdio: 'ignore' },
      );
      processes.set(port, child);
    }
    for (const port of ports) await waitForPing(port);
    const cli = path.join(path.dirname(bin), 'redis-cli');
    await run(cli, ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes']);
    const handle: RedisClusterHandle = {
      seeds: ports.map((p) => `127.0.0.1:${p}`),
      async masterOf(slot) {
        for (const port of ports) {
          if (!processes.has(port)) continue;
          const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
          client.on('error', () => {});
          try {
            await client.connect();
            const ranges = (await client.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
            const range = ranges.find(([from, to]) => slot >= from && slot <= to);
            if (range) return { port: Number(range[2][1]), id: range[2][2] };
          } catch {
            // try the next node
          } finally {
            client.disconnect();
          }
        }
        throw new Error(`no node knows who serves slot ${slot}`);
      },
      async masters() {
        const ranges = await slotsFrom([...processes.keys()]);
        const seen = new Map<number, ClusterNode>();
        for (const [, , [, port, id]] of ranges) seen.set(Number(port), { port: Number(port), id });
        return [...seen.values()];
      },
      async moveSlot(slot, to) {
        const from = await handle.masterOf(slot);
        const connect = async (port: number) => {
          const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
          client.on('error', () => {});
          return client;
        };
        const source = await connect(from.port);
        const target = await connect(to.port);
        try {
          await target.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id);
          await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id);
          for (;;) {
            const keys = (await source.call('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
            if (keys.length === 0) break;
            await source.call('MIGRATE', '127.0.0.1', to.port, '', 0, 5000, 'KEYS', ...keys);
          }
          for (const port of processes.keys()) {
            const node = await connect(port);
            try {
              await node.call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
            } catch {
              // replicas refuse SETSLOT; they learn it from their masters
            } finally {
              node.disconnect();
            }
          }
        } finally {
          source.disconnect();
          target.disconnect();
        }
      },
      kill(port) {
        processes.get(port)?.kill('SIGKILL');
        processes.delete(port);
      },
      async waitUntilHealthy(timeoutMs = 30_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          if (await healthy([...processes.keys()])) return;
          if (Date.now() > deadline) throw new Error('the Redis Cluster did not become healthy');
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      },
      close,
    };
    await handle.waitUntilHealthy();
    return handle;
  } catch (error) {
    await close();
    throw error;
  }
}

async function slotsFrom(ports: number[]): Promise<[number, number, [string, number, string]][]> {
  for (const port of ports) {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      return (await client.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
    } catch {
      // try the next node
    } finally {
      client.disconnect();
    }
  }
  throw new Error('no node answers CLUSTER SLOTS');
}

async function waitForPing(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') return;
    } catch {
      // not up yet
    } finally {
      client.disconnect();
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis-server on port ${port} did not start`);
}

/**
 * Every live node says cluster_state:ok, all slots are assigned to masters
 * that are up, the nodes agree on who serves them, and every replica's link to
 * its master is up (a replica that never synced refuses to take over).
 */
async function healthy(ports: number[]): Promise<boolean> {
  const views: string[] = [];
  for (const port of ports) {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      const info = (await client.call('CLUSTER', 'INFO')) as string;
      if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
      const ranges = (await client.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
      if (ranges.some(([, , master]) => !ports.includes(Number(master[1])))) return false;
      const replication = (await client.call('INFO', 'replication')) as string;
      if (/role:slave/.test(replication) && !/master_link_status:up/.test(replication)) return false;
      views.push(JSON.stringify(ranges.map(([from, to, master]) => [from, to, master[1]]).sort((a, b) => (a[0] as number) - (b[0] as number))));
    } catch {
      return false;
    } finally {
      client.disconnect();
    }
  }
  return views.every((view) => view === views[0]);
}
