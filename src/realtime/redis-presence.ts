import { Redis } from 'ioredis';
import type { Presence } from './presence.js';

export interface RedisPresenceOptions {
  /** How long a connection counts as online without a heartbeat (a crashed instance's users drop after this). */
  ttlMs?: number;
  /** How often this instance refreshes its connections; well under the TTL. */
  heartbeatMs?: number;
  onError: (error: unknown, what: string) => void;
}

const key = (userId: string) => `chat:presence:${userId}`;

/**
 * Presence shared by every instance (DESIGN §5). Each user has a sorted set
 * of their connections scored by expiry time; an instance re-scores its own
 * connections on a heartbeat. A user is online while any score is in the
 * future, so a SIGKILLed instance's users go offline by themselves within
 * the TTL, with nobody cleaning up after it.
 */
export async function createRedisPresence(url: string, name: string, options: RedisPresenceOptions): Promise<Presence> {
  const ttl = options.ttlMs ?? 30_000;
  const redis = new Redis(url, { connectionName: `${name}:presence`, maxRetriesPerRequest: 2, enableAutoPipelining: true });
  redis.on('error', () => {});
  await redis.ping();
  const local = new Map<string, Set<string>>();

  async function refresh(userId: string, connections: Iterable<string>) {
    const expires = Date.now() + ttl;
    const args: (string | number)[] = [];
    for (const connection of connections) args.push(expires, connection);
    if (args.length === 0) return;
    await redis.multi().zadd(key(userId), ...args).pexpire(key(userId), ttl).exec();
  }

  const heartbeat = setInterval(() => {
    const batch = redis.pipeline();
    const expires = Date.now() + ttl;
    for (const [userId, connections] of local) {
      const args: (string | number)[] = [];
      for (const connection of connections) args.push(expires, connection);
      batch.zadd(key(userId), ...args).pexpire(key(userId), ttl);
    }
    batch.exec().catch((error) => options.onError(error, 'presence heartbeat'));
  }, options.heartbeatMs ?? Math.floor(ttl / 3));
  heartbeat.unref();

  return {
    async connected(userId, connectionId) {
      let set = local.get(userId);
      if (!set) local.set(userId, (set = new Set()));
      set.add(connectionId);
      await refresh(userId, [connectionId]);
    },
    async disconnected(userId, connectionId) {
      const set = local.get(userId);
      set?.delete(connectionId);
      if (set?.size === 0) local.delete(userId);
      await redis.zrem(key(userId), connectionId);
    },
    async onlineAmong(userIds) {
      if (userIds.length === 0) return [];
      const now = Date.now();
      const batch = redis.pipeline();
      for (const userId of userIds) batch.zcount(key(userId), now, '+inf');
      const results = (await batch.exec()) ?? [];
      return userIds.filter((_, i) => Number(results[i]?.[1] ?? 0) > 0);
    },
    async close() {
      clearInterval(heartbeat);
      // Leave cleanly: this instance's connections are gone now, not in `ttl`.
      const batch = redis.pipeline();
      for (const [userId, connections] of local) batch.zrem(key(userId), ...connections);
      await batch.exec().catch(() => {});
      local.clear();
      redis.disconnect();
    },
  };
}
