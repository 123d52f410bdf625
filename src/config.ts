import path from 'node:path';
import { parseDatabaseUrl } from './db/connection.js';

/** Everything the server reads from its environment, validated once at start. */
export interface Config {
  /** PostgreSQL (or Citus coordinator) URL; unset means "start an embedded PostgreSQL". */
  databaseUrl: string | undefined;
  /** Redis URL (any node of a Redis Cluster will do); unset means the in-process bus and presence (one instance only). */
  redisUrl: string | undefined;
  /** Seed nodes of a Redis Cluster (host:port), from REDIS_CLUSTER_NODES; empty for none. */
  redisClusterNodes: string[];
  jwtSecret: string | undefined;
  jwtJwksUrl: string | undefined;
  jwtIssuer: string | undefined;
  jwtAudience: string | undefined;
  host: string;
  port: number;
  /** Where the embedded default keeps its PostgreSQL data and development secret. */
  dataDir: string;
  /** Conversations with at most this many members fan out on write (per online member). */
  fanoutDirectMax: number;
  /** Largest message body accepted, in characters. */
  maxBodyLength: number;
  /** A WebSocket whose unsent backlog exceeds this many bytes is closed (slow consumer). */
  maxSocketBufferBytes: number;
  /** Sends per second a user may sustain per instance (0: unlimited), and the burst allowed. */
  sendRatePerSecond: number;
  sendBurst: number;
  /** Abuse limits (src/security/abuse.ts): connection attempts per user and per address per minute, open connections per user, operations per WebSocket (0: no limit). */
  connectRatePerMinute: number;
  connectRatePerMinutePerAddress: number;
  maxConnectionsPerUser: number;
  maxSubscriptionsPerConnection: number;
  /** Proxies in front of the server whose X-Forwarded-For is trusted (the client's address is that many entries from the right). */
  trustProxyHops: number;
  /** Pool size of the PostgreSQL connection pool. */
  databasePoolSize: number;
  /** WebSocket heartbeat period; dead peers are dropped within two periods. */
  wsKeepAliveMs: number;
  /**
   * Period of the position check (ms): every instance compares each
   * conversation it delivers with the database this often, so an event the
   * broker lost reaches its subscribers within about this plus one read.
   */
  deliveryCheckMs: number;
  /** A user counts as online this long after their instance's last presence heartbeat. */
  presenceTtlMs: number;
  /** How long a user whose last connection ended still counts as online (a reconnect within it shows no change). */
  presenceGraceMs: number;
  /** Name of this instance in presence and logs. */
  instanceId: string;
  /** Manifests of trusted documents besides the SDK's (JSON files `{ "sha256:<hex>": "<text>" }`). */
  trustedDocuments: string[];
  /** Refuse any document that is not trusted (README, "Trusted documents"). */
  trustedDocumentsOnly: boolean;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
}

export class ConfigError extends Error {}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return value;
}

function url(env: NodeJS.ProcessEnv, name: string, protocols: string[]): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a valid URL`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must use one of ${protocols.join(', ')}`);
  }
  return raw;
}

function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '' || raw === 'false' || raw === '0') return false;
  if (raw === 'true' || raw === '1') return true;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

/** DATABASE_URL may name several hosts, as libpq allows (docs/architecture.md, "Failure handling"). */
function databaseUrl(env: NodeJS.ProcessEnv): string | undefined {
  const raw = env.DATABASE_URL;
  if (raw === undefined || raw === '') return undefined;
  try {
    parseDatabaseUrl(raw);
  } catch (error) {
    throw new ConfigError(`DATABASE_URL is not a valid PostgreSQL URL: ${(error as Error).message}`);
  }
  return raw;
}

/** REDIS_CLUSTER_NODES: comma-separated host:port (or redis:// URLs) of Redis Cluster nodes. */
function clusterNodes(env: NodeJS.ProcessEnv): string[] {
  const raw = env.REDIS_CLUSTER_NODES;
  if (raw === undefined || raw.trim() === '') return [];
  const nodes = raw.split(',').map((entry) => entry.trim()).filter(Boolean);
  for (const entry of nodes) {
    const hostPort = entry.includes('://') ? entry : `redis://${entry}`;
    try {
      const parsed = new URL(hostPort);
      if (!parsed.hostname || !parsed.port) throw new Error('no port');
    } catch {
      throw new ConfigError(`REDIS_CLUSTER_NODES must list host:port entries, got "${entry}"`);
    }
  }
  return nodes;
}

const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;

/** Reads and validates the environment; throws ConfigError with a message fit for a human. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const logLevel = (env.LOG_LEVEL ?? 'info') as Config['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const jwtSecret = env.JWT_SECRET || undefined;
  if (jwtSecret !== undefined && jwtSecret.length < 32) {
    throw new ConfigError('JWT_SECRET must be at least 32 characters');
  }
  return {
    databaseUrl: databaseUrl(env),
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:']),
    redisClusterNodes: clusterNodes(env),
    jwtSecret,
    jwtJwksUrl: url(env, 'JWT_JWKS_URL', ['http:', 'https:']),
    jwtIssuer: env.JWT_ISSUER || undefined,
    jwtAudience: env.JWT_AUDIENCE || undefined,
    host: env.HOST || '0.0.0.0',
    port: integer(env, 'PORT', 4000, 0, 65535),
    dataDir: path.resolve(env.DATA_DIR || '.data'),
    fanoutDirectMax: integer(env, 'FANOUT_DIRECT_MAX', 100, 0, 100_000),
    maxBodyLength: integer(env, 'MAX_MESSAGE_LENGTH', 4000, 1, 1_000_000),
    maxSocketBufferBytes: integer(env, 'MAX_SOCKET_BUFFER_BYTES', 8 * 1024 * 1024, 1024, 1024 ** 3),
    sendRatePerSecond: integer(env, 'SEND_RATE_PER_SECOND', 10, 0, 1_000_000),
    sendBurst: integer(env, 'SEND_BURST', 30, 1, 1_000_000),
    connectRatePerMinute: integer(env, 'CONNECT_RATE_PER_MINUTE', 60, 0, 1_000_000),
    connectRatePerMinutePerAddress: integer(env, 'CONNECT_RATE_PER_MINUTE_PER_ADDRESS', 600, 0, 1_000_000),
    maxConnectionsPerUser: integer(env, 'MAX_CONNECTIONS_PER_USER', 20, 0, 1_000_000),
    maxSubscriptionsPerConnection: integer(env, 'MAX_SUBSCRIPTIONS_PER_CONNECTION', 100, 1, 100_000),
    trustProxyHops: integer(env, 'TRUST_PROXY_HOPS', 0, 0, 10),
    databasePoolSize: integer(env, 'DATABASE_POOL_SIZE', 10, 1, 1000),
    wsKeepAliveMs: integer(env, 'WS_KEEPALIVE_MS', 12_000, 100, 600_000),
    presenceTtlMs: integer(env, 'PRESENCE_TTL_MS', 30_000, 300, 3_600_000),
    presenceGraceMs: integer(env, 'PRESENCE_GRACE_MS', 5000, 0, 600_000),
    deliveryCheckMs: integer(env, 'DELIVERY_CHECK_MS', 2_000, 50, 60_000),
    instanceId: env.INSTANCE_ID || `${process.pid}`,
    trustedDocuments: (env.TRUSTED_DOCUMENTS ?? '').split(',').map((file) => file.trim()).filter(Boolean).map((file) => path.resolve(file)),
    trustedDocumentsOnly: flag(env, 'TRUSTED_DOCUMENTS_ONLY'),
    logLevel,
  };
}
