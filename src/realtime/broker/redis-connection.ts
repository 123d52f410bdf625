import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/**
 * Where Redis is: one server (REDIS_URL), or a Redis Cluster (REDIS_URL at any
 * of its nodes, detected at start, and/or REDIS_CLUSTER_NODES listing seed
 * nodes). docs/architecture.md, "Redis Cluster".
 */
export type RedisEndpoint =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: { host: string; port: number }[]; options: RedisOptions; describe: string };

/**
 * Resolves once the connection is ready; rejects with a message fit for an
 * operator if it is not within `timeoutMs` (the server then refuses to start
 * rather than run without its broker).
 */
export function whenReady(redis: Redis | Cluster, where: string, timeoutMs = 15_000): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error(`Redis at ${where} is not reachable (REDIS_URL / REDIS_CLUSTER_NODES)`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}

/** Credentials and TLS of a redis:// or rediss:// URL, for cluster node connections. */
function optionsOf(url: string | undefined): RedisOptions {
  if (!url) return {};
  const parsed = new URL(url);
  return {
    ...(parsed.username && { username: decodeURIComponent(parsed.username) }),
    ...(parsed.password && { password: decodeURIComponent(parsed.password) }),
    ...(parsed.protocol === 'rediss:' && { tls: {} }),
  };
}

function node(entry: string): { host: string; port: number } {
  const text = entry.includes('://') ? new URL(entry).host : entry;
  const at = text.lastIndexOf(':');
  const host = at > 0 ? text.slice(0, at).replace(/^\[|\]$/g, '') : text;
  return { host, port: at > 0 ? Number(text.slice(at + 1)) : 6379 };
}

/**
 * What REDIS_URL and REDIS_CLUSTER_NODES name. A REDIS_URL alone is asked
 * (INFO cluster) whether it is a cluster node, so pointing it at any node of
 * a cluster is enough.
 */
export async function resolveRedis(redisUrl: string | undefined, clusterNodes: readonly string[]): Promise<RedisEndpoint | undefined> {
  const options = optionsOf(redisUrl);
  if (clusterNodes.length > 0) {
    const nodes = clusterNodes.map(node);
    return { kind: 'cluster', nodes, options, describe: clusterNodes.join(',') };
  }
  if (!redisUrl) return undefined;
  const probe = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: null, connectionName: 'chat:probe' });
  probe.on('error', () => {});
  try {
    probe.connect().catch(() => {});
    await whenReady(probe, new URL(redisUrl).host);
    const info = (await probe.info('cluster')) as string;
    if (/cluster_enabled:1/.test(info)) {
      const { hostname, port } = new URL(redisUrl);
      return { kind: 'cluster', nodes: [{ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port || 6379) }], options, describe: new URL(redisUrl).host };
    }
    return { kind: 'single', url: redisUrl };
  } finally {
    probe.disconnect();
  }
}

/**
 * A command connection (presence, publishing): a Redis, or a Cluster that
 * routes each command to the master serving its key and follows failovers
 * (MOVED, refreshed slots). Offline queue off: while Redis is away commands
 * fail at once instead of piling up (callers repair or degrade).
 */
export function commandConnection(endpoint: RedisEndpoint, name: string, extra: RedisOptions = {}): Redis | Cluster {
  const common: RedisOptions = { connectionName: name, maxRetriesPerRequest: 1, enableOfflineQueue: false, enableAutoPipelining: true, ...extra };
  if (endpoint.kind === 'single') return new Redis(endpoint.url, common);
  const clusterOptions: ClusterOptions = {
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    // A failover takes a few seconds (cluster-node-timeout plus the election): retry meanwhile, briefly.
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    redisOptions: { ...endpoint.options, ...common },
  };
  return new Cluster(endpoint.nodes, clusterOptions);
}

export function describeEndpoint(endpoint: RedisEndpoint): string {
  return endpoint.kind === 'single' ? new URL(endpoint.url).host : endpoint.describe;
}
