import { Redis } from 'ioredis';
import { createRateLimiter } from '../chat/rate-limit.js';
import { ChatError, ErrorCode, rateLimited } from '../errors.js';
import { whenReady } from '../realtime/broker/redis-connection.js';

/**
 * Abuse limits (README, "Abuse limits"; docs/architecture.md, "Abuse
 * limits"): token buckets for sends, typing updates and connection attempts
 * (per user and per address), and a cap on a user's open connections. With
 * REDIS_URL they are shared by every instance (one Lua script per check:
 * atomic, Redis's clock); without it they live in this process. If Redis
 * fails, each check falls back to this instance's own buckets: limits then
 * hold per instance, and nobody is refused because Redis is away.
 */
export interface AbuseSettings {
  /** Per user: sends per second (0: no limit) and the burst allowed. */
  sendRatePerSecond: number;
  sendBurst: number;
  /** Per user: connection attempts (WebSocket `connection_init`, SSE streams) per minute, also the burst (0: no limit). */
  connectRatePerMinute: number;
  /** Per client address, the same (0: no limit). */
  connectRatePerMinutePerAddress: number;
  /** Open WebSockets and SSE streams of one user, across instances (0: no limit). */
  maxConnectionsPerUser: number;
  /** Operations in flight on one WebSocket (subscriptions, queries, mutations). */
  maxOperationsPerConnection: number;
  /** How long a crashed instance's connections still count (the presence TTL). */
  connectionTtlMs: number;
}

/** Typing updates per user: renewals are coalesced, so this only stops floods. */
const TYPING_RATE_PER_SECOND = 2;
const TYPING_BURST = 20;
/** What a refused connection is told to wait when the cap on open connections is reached. */
const CONNECTION_CAP_RETRY_MS = 5_000;

/** Takes one token for `key`, or throws RATE_LIMITED with `extensions.retryAfterMs`. */
export interface RateLimiter {
  take(key: string): void | Promise<void>;
}

/** What the transports ask before they let a connection in (src/realtime/transport/ws-server.ts, graphql-ws.ts, sse.ts). */
export interface ConnectionGate {
  /** A connection attempt from `address` (before a WebSocket upgrade, or an SSE stream). */
  attempt(address: string): Promise<void>;
  /**
   * Whether `attempt` limits anything. When not, transports skip it and do not
   * read the peer's address (Node then caches it on every socket: 88 bytes).
   */
  readonly limitsAddresses: boolean;
  /** An authenticated connection of `userId` opens: one attempt for the user, and one of their connection slots. */
  open(userId: string, connectionId: string): Promise<void>;
  /** It closed: its slot is free. */
  close(userId: string, connectionId: string): void;
  readonly maxOperationsPerConnection: number;
}

export interface AbuseLimits {
  sends: RateLimiter;
  typing: RateLimiter;
  gate: ConnectionGate;
  close(): Promise<void>;
}

/** The retry hint of a RATE_LIMITED error (for close reasons and Retry-After headers). */
export function retryAfterMsOf(error: unknown): number | undefined {
  if (error instanceof ChatError && error.extensions.code === ErrorCode.RATE_LIMITED) return Number(error.extensions.retryAfterMs);
  return undefined;
}

/** A token bucket per key, in this process (the fallback without Redis): one implementation, src/chat/rate-limit.ts. */
const createLocalBucket = createRateLimiter;

// One token from KEYS[1]; ARGV: tokens per ms, burst, key lifetime (ms).
// Returns 0, or how many ms until a token is available.
const TAKE_TOKEN = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens < 1 then wait = math.ceil((1 - tokens) / rate) else tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return wait`;

// A connection slot in KEYS[1] (a sorted set scored by expiry); ARGV: connection id, max, ttl (ms).
// Returns 1 when taken (or already held), 0 when the user has max live ones.
const TAKE_SLOT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

// Re-scores this instance's slots of one user; ARGV: ttl (ms), connection ids…
const REFRESH_SLOTS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`;

type LimitRedis = Redis & {
  chatTakeToken(key: string, rate: number, burst: number, ttl: number): Promise<number>;
  chatTakeSlot(key: string, id: string, max: number, ttl: number): Promise<number>;
  chatRefreshSlots(key: string, ttl: number, ...ids: string[]): Promise<number>;
};

export async function createAbuseLimits(
  settings: AbuseSettings,
  redisUrl: string | undefined,
  name: string,
  onError: (error: unknown, what: string) => void,
): Promise<AbuseLimits> {
  let redis: LimitRedis | undefined;
  if (redisUrl) {
    redis = new Redis(redisUrl, { connectionName: `${name}:limits`, maxRetriesPerRequest: 1, enableOfflineQueue: false, enableAutoPipelining: true }) as LimitRedis;
    redis.on('error', () => {});
    redis.defineCommand('chatTakeToken', { numberOfKeys: 1, lua: TAKE_TOKEN });
    redis.defineCommand('chatTakeSlot', { numberOfKeys: 1, lua: TAKE_SLOT });
    redis.defineCommand('chatRefreshSlots', { numberOfKeys: 1, lua: REFRESH_SLOTS });
    await whenReady(redis, redisUrl);
  }
  // Redis failing is logged once per minute at most, not once per request.
  let lastFailure = 0;
  const failed = (error: unknown) => {
    if (Date.now() - lastFailure > 60_000) onError(error, 'abuse limits (falling back to per-instance limits)');
    lastFailure = Date.now();
  };

  function limiter(kind: string, what: string, perSecond: number, burst: number): RateLimiter {
    const local = createLocalBucket(what, perSecond, burst);
    if (!redis || perSecond <= 0) return local;
    const shared = redis;
    const ratePerMs = perSecond / 1000;
    const lifetime = Math.ceil((burst / perSecond) * 1000) + 1000;
    return {
      async take(key: string) {
        let wait: number;
        try {
          wait = await shared.chatTakeToken(`chat:limit:${kind}:${key}`, ratePerMs, burst, lifetime);
        } catch (error) {
          failed(error);
          return local.take(key);
        }
        if (wait > 0) throw rateLimited(`Too many ${what}; slow down`, wait);
      },
    };
  }

  const perMinute = (n: number) => n / 60;
  const connectsByUser = limiter('connect-user', 'connection attempts', perMinute(settings.connectRatePerMinute), settings.connectRatePerMinute);
  const connectsByAddress = limiter(
    'connect-address',
    'connection attempts from this address',
    perMinute(settings.connectRatePerMinutePerAddress),
    settings.connectRatePerMinutePerAddress,
  );

  // Connection slots: this instance's own, always (the fallback, and what the heartbeat re-scores).
  const mine = new Map<string, Set<string>>();
  const max = settings.maxConnectionsPerUser;
  const ttl = settings.connectionTtlMs;
  const slotKey = (userId: string) => `chat:limit:connections:${userId}`;
  const capReached = () => rateLimited(`Too many open connections (at most ${max} per user); close one or retry later`, CONNECTION_CAP_RETRY_MS);

  const heartbeat = setInterval(() => {
    if (!redis) return;
    for (const [userId, ids] of mine) redis.chatRefreshSlots(slotKey(userId), ttl, ...ids).catch(failed);
  }, Math.max(100, Math.floor(ttl / 3)));
  heartbeat.unref();

  const gate: ConnectionGate = {
    maxOperationsPerConnection: settings.maxOperationsPerConnection,
    limitsAddresses: settings.connectRatePerMinutePerAddress > 0,
    async attempt(address) {
      await connectsByAddress.take(address);
    },
    async open(userId, connectionId) {
      await connectsByUser.take(userId);
      if (max <= 0) return;
      let ids = mine.get(userId);
      if (redis) {
        let taken: number | undefined;
        try {
          taken = await redis.chatTakeSlot(slotKey(userId), connectionId, max, ttl);
        } catch (error) {
          failed(error);
        }
        if (taken === 0) throw capReached();
        if (taken === undefined && (ids?.size ?? 0) >= max) throw capReached();
      } else if ((ids?.size ?? 0) >= max) {
        throw capReached();
      }
      if (!ids) mine.set(userId, (ids = new Set()));
      ids.add(connectionId);
    },
    close(userId, connectionId) {
      const ids = mine.get(userId);
      if (!ids?.delete(connectionId)) return;
      if (ids.size === 0) mine.delete(userId);
      redis?.zrem(slotKey(userId), connectionId).catch(failed);
    },
  };

  return {
    sends: limiter('send', 'messages', settings.sendRatePerSecond, settings.sendBurst),
    typing: limiter('typing', 'typing updates', TYPING_RATE_PER_SECOND, TYPING_BURST),
    gate,
    async close() {
      clearInterval(heartbeat);
      if (redis) {
        // Free this instance's slots now rather than after the TTL.
        await Promise.all([...mine].map(([userId, ids]) => redis!.zrem(slotKey(userId), ...ids).catch(() => {})));
        redis.disconnect();
      }
    },
  };
}
