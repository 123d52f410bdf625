import { Redis } from 'ioredis';
import { whenReady } from '../broker/redis-connection.js';
import type { Presence, PresenceChange } from './presence.js';

export interface RedisPresenceOptions {
  /** How long a connection counts as online without a heartbeat (a crashed instance's users drop after this). */
  ttlMs?: number;
  onChange: PresenceChange;
  onError: (error: unknown, what: string) => void;
}

const userKey = (userId: string) => `chat:presence:user:${userId}`;
/** Every user with connections, scored by their latest expiry: what the sweeper scans. */
const EXPIRY_INDEX = 'chat:presence:expiries';

/**
 * Presence shared by every instance (docs/architecture.md, "Presence"). It
 * never decides delivery. Each user has a sorted set
 * of their connections scored by expiry time, which each instance re-scores
 * for its own connections on a heartbeat. A user is online while any score
 * is in the future, so the users of a SIGKILLed instance go offline by
 * themselves within the TTL; a sweeper on every instance notices and
 * announces it (the ZREM from the index decides which instance announces).
 *
 * Redis being away must not stop anyone from connecting: commands fail fast
 * (no offline queue), callers log the failure, and the instance re-registers
 * all its connections as soon as Redis is back. Meanwhile `onlineAmong`
 * answers from this instance's own connections.
 */
export async function createRedisPresence(url: string, name: string, options: RedisPresenceOptions): Promise<Presence> {
  const ttl = options.ttlMs ?? 30_000;
  const redis = new Redis(url, { connectionName: `${name}:presence`, maxRetriesPerRequest: 1, enableOfflineQueue: false, enableAutoPipelining: true });
  redis.on('error', () => {});
  await whenReady(redis, url);
  const local = new Map<string, Set<string>>();
  // Registered after the first 'ready': every later one is a reconnect, perhaps
  // to a restarted, empty Redis. Register our connections again now, not at the next heartbeat.
  redis.on('ready', () => refreshAll());

  function refreshAll() {
    if (local.size === 0) return;
    const batch = redis.pipeline();
    const expires = Date.now() + ttl;
    for (const [userId, connections] of local) {
      const args: (string | number)[] = [];
      for (const connection of connections) args.push(expires, connection);
      batch.zadd(userKey(userId), ...args).pexpire(userKey(userId), ttl).zadd(EXPIRY_INDEX, 'GT', expires, userId);
    }
    batch.exec().catch((error) => options.onError(error, 'presence heartbeat'));
  }

  /** Announces users whose every connection has expired (their instance died without saying goodbye). */
  async function sweep() {
    const now = Date.now();
    const candidates = await redis.zrangebyscore(EXPIRY_INDEX, '-inf', now, 'LIMIT', 0, 500);
    for (const userId of candidates) {
      if ((await redis.zcount(userKey(userId), now, '+inf')) > 0) continue;
      // Exactly one instance wins the ZREM, and only it announces.
      if ((await redis.zrem(EXPIRY_INDEX, userId)) === 1) {
        await redis.del(userKey(userId));
        await options.onChange(userId, false, new Date(now));
      }
    }
  }

  const heartbeat = setInterval(() => {
    refreshAll();
    sweep().catch((error) => options.onError(error, 'presence sweep'));
  }, Math.max(100, Math.floor(ttl / 3)));
  heartbeat.unref();

  async function disconnected(userId: string, connectionId: string) {
    const set = local.get(userId);
    set?.delete(connectionId);
    if (set?.size === 0) local.delete(userId);
    const now = Date.now();
    const results = await redis.multi().zrem(userKey(userId), connectionId).zcount(userKey(userId), now, '+inf').exec();
    if (Number(results?.[0]?.[1]) === 1 && Number(results?.[1]?.[1]) === 0) {
      await redis.zrem(EXPIRY_INDEX, userId);
      await options.onChange(userId, false, new Date(now));
    }
  }

  return {
    async connected(userId, connectionId) {
      let set = local.get(userId);
      if (!set) local.set(userId, (set = new Set()));
      set.add(connectionId);
      const now = Date.now();
      const expires = now + ttl;
      // Atomic, so of two connections opening at once exactly one sees itself alone.
      const results = await redis
        .multi()
        .zremrangebyscore(userKey(userId), '-inf', now)
        .zadd(userKey(userId), expires, connectionId)
        .pexpire(userKey(userId), ttl)
        .zcard(userKey(userId))
        .zadd(EXPIRY_INDEX, 'GT', expires, userId)
        .exec();
      if (Number(results?.[3]?.[1]) === 1) await options.onChange(userId, true, new Date(now));
    },
    disconnected,
    async onlineAmong(userIds) {
      if (userIds.length === 0) return [];
      const now = Date.now();
      const batch = redis.pipeline();
      for (const userId of userIds) batch.zcount(userKey(userId), now, '+inf');
      try {
        const results = (await batch.exec()) ?? [];
        return userIds.filter((_, i) => Number(results[i]?.[1] ?? 0) > 0);
      } catch {
        // Redis is away: what this instance knows is better than an error.
        return userIds.filter((id) => local.has(id));
      }
    },
    async close() {
      clearInterval(heartbeat);
      // Leave cleanly: this instance's users go offline now, not in `ttl`.
      const users = [...local.entries()];
      local.clear();
      for (const [userId, connections] of users) {
        for (const connection of connections) await disconnected(userId, connection).catch(() => {});
      }
      redis.disconnect();
    },
  };
}
