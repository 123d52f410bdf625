import type { Cluster, Redis } from 'ioredis';
import { commandConnection, describeEndpoint, whenReady, type RedisEndpoint } from '../broker/redis-connection.js';
import type { Presence, PresenceChange } from './presence.js';

export interface RedisPresenceOptions {
  /** How long a connection counts as online without a heartbeat (a crashed instance's users drop after this). */
  ttlMs?: number;
  onChange: PresenceChange;
  onError: (error: unknown, what: string) => void;
}

/**
 * Users are spread over this many buckets. A user's key and the expiry index
 * of their bucket share a hash tag (`{p<bucket>}`), so they live in one slot
 * of a Redis Cluster: registering a connection updates both in one MULTI,
 * which a cluster allows only within a slot. The buckets spread the indexes
 * over the cluster's masters.
 */
const BUCKETS = 16;

function bucketOf(userId: string): number {
  let hash = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < userId.length; i++) hash = Math.imul(hash ^ userId.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % BUCKETS;
}

const userKey = (userId: string) => `chat:presence:{p${bucketOf(userId)}}:user:${userId}`;
/** The users of one bucket with connections, scored by their latest expiry: what the sweeper scans. */
const expiryIndex = (bucket: number) => `chat:presence:{p${bucket}}:expiries`;
const indexOf = (userId: string) => expiryIndex(bucketOf(userId));

/**
 * The sweeper's step for one user, atomic: if none of their connections is
 * live, take them out of their bucket's index and delete their key, and say
 * so (1). In separate commands a connection registered between the check and
 * the delete (by another instance) was deleted with the key, and its user
 * announced offline while connected. KEYS: the user's key, the bucket's
 * index (one slot: they share a hash tag). ARGV: now, the user's id.
 */
const SWEEP_USER = `
if redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf') > 0 then return 0 end
if redis.call('ZREM', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('DEL', KEYS[1])
return 1`;

/** How long `close` waits for work under way (a Redis that stopped answering must not hold a shutdown). */
const CLOSE_WAIT_MS = 5000;

/** Resolves when every promise in `work` has settled, or after `ms`. */
async function settled(work: Iterable<Promise<unknown>>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  await Promise.race([Promise.allSettled(work), late]);
  clearTimeout(timer);
}

/**
 * Presence shared by every instance (docs/architecture.md, "Presence"). It
 * never decides delivery. Each user has a sorted set
 * of their connections scored by expiry time, which each instance re-scores
 * for its own connections on a heartbeat. A user is online while any score
 * is in the future, so the users of a SIGKILLed instance go offline by
 * themselves within the TTL; a sweeper on every instance notices and
 * announces it (the ZREM from the index decides which instance announces).
 * On a Redis Cluster the same keys work: see BUCKETS.
 *
 * Redis being away must not stop anyone from connecting: commands fail fast
 * (no offline queue), callers log the failure, and the instance re-registers
 * all its connections as soon as Redis is back. Meanwhile `onlineAmong`
 * answers from this instance's own connections.
 */
export async function createRedisPresence(endpoint: RedisEndpoint, name: string, options: RedisPresenceOptions): Promise<Presence> {
  const ttl = options.ttlMs ?? 30_000;
  // Fails fast while Redis is away (no offline queue); auto-pipelined, per master on a cluster.
  const redis: Redis | Cluster = commandConnection(endpoint, `${name}:presence`);
  redis.on('error', () => {});
  await whenReady(redis, describeEndpoint(endpoint));
  const local = new Map<string, Set<string>>();
  // Registered after the first 'ready': every later one is a reconnect, perhaps
  // to a restarted, empty Redis. Register our connections again now, not at the next heartbeat.
  redis.on('ready', () => refreshAll());
  // On a cluster, a refreshed slot map usually means a failover: the promoted replica may lack our
  // latest writes (replication is asynchronous), so write them again now.
  if (endpoint.kind === 'cluster') redis.on('refresh', () => refreshAll());

  function refreshAll() {
    if (local.size === 0) return;
    const expires = Date.now() + ttl;
    const writes: Promise<unknown>[] = [];
    // Separate commands, not one pipeline: on a cluster the keys live on different masters
    // (auto-pipelining still sends them in few round trips).
    for (const [userId, connections] of local) {
      const args: (string | number)[] = [];
      for (const connection of connections) args.push(expires, connection);
      writes.push(redis.zadd(userKey(userId), ...args), redis.pexpire(userKey(userId), ttl), redis.zadd(indexOf(userId), 'GT', expires, userId));
    }
    Promise.all(writes).catch((error) => options.onError(error, 'presence heartbeat'));
  }

  /** Announces users whose every connection has expired (their instance died without saying goodbye). */
  async function sweep() {
    const now = Date.now();
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      const candidates = await redis.zrangebyscore(expiryIndex(bucket), '-inf', now, 'LIMIT', 0, 500);
      for (const userId of candidates) {
        // Exactly one instance wins, and only it announces.
        if ((await redis.eval(SWEEP_USER, 2, userKey(userId), expiryIndex(bucket), now, userId)) === 1) {
          await options.onChange(userId, false, new Date(now));
        }
      }
    }
  }

  // Work under way (connections coming and going, a sweep): `close` lets it
  // finish before the connection goes, so that a user whose socket closed in
  // the drain is announced offline now rather than by a sweeper after `ttl`.
  const pending = new Set<Promise<unknown>>();
  let closing = false;
  function track<T>(work: Promise<T>): Promise<T> {
    pending.add(work);
    const forget = () => pending.delete(work);
    work.then(forget, forget);
    return work;
  }

  const heartbeat = setInterval(() => {
    refreshAll();
    track(sweep()).catch((error) => options.onError(error, 'presence sweep'));
  }, Math.max(100, Math.floor(ttl / 3)));
  heartbeat.unref();

  function disconnected(userId: string, connectionId: string, at?: Date): Promise<void> {
    // Once closing, `close` says goodbye for every connection still registered.
    if (closing) return Promise.resolve();
    const set = local.get(userId);
    set?.delete(connectionId);
    if (set?.size === 0) local.delete(userId);
    return track(leave(userId, connectionId, at));
  }

  async function leave(userId: string, connectionId: string, at?: Date) {
    const now = Date.now();
    const results = await redis.multi().zrem(userKey(userId), connectionId).zcount(userKey(userId), now, '+inf').exec();
    if (Number(results?.[0]?.[1]) === 1 && Number(results?.[1]?.[1]) === 0) {
      await redis.zrem(indexOf(userId), userId);
      await options.onChange(userId, false, at ?? new Date(now));
    }
  }

  async function connected(userId: string, connectionId: string) {
    let set = local.get(userId);
    if (!set) local.set(userId, (set = new Set()));
    set.add(connectionId);
    const now = Date.now();
    const expires = now + ttl;
    // Atomic, so of two connections opening at once exactly one sees itself alone
    // (one MULTI: the user's key and its bucket's index share a hash tag).
    const results = await redis
      .multi()
      .zremrangebyscore(userKey(userId), '-inf', now)
      .zadd(userKey(userId), expires, connectionId)
      .pexpire(userKey(userId), ttl)
      .zcard(userKey(userId))
      .zadd(indexOf(userId), 'GT', expires, userId)
      .exec();
    if (Number(results?.[3]?.[1]) === 1) await options.onChange(userId, true, new Date(now));
  }

  return {
    shared: true,
    connected: (userId, connectionId) => (closing ? Promise.resolve() : track(connected(userId, connectionId))),
    disconnected,
    async onlineAmong(userIds) {
      if (userIds.length === 0) return [];
      const now = Date.now();
      try {
        const counts = await Promise.all(userIds.map((userId) => redis.zcount(userKey(userId), now, '+inf')));
        return userIds.filter((_, i) => counts[i]! > 0);
      } catch {
        // Redis is away: what this instance knows is better than an error.
        return userIds.filter((id) => local.has(id));
      }
    },
    async close(graceMs = 0) {
      closing = true;
      clearInterval(heartbeat);
      await settled(pending, CLOSE_WAIT_MS);
      const users = [...local.entries()];
      local.clear();
      if (graceMs > 0) {
        // Leave as a graced disconnect: each connection expires at the end of
        // the grace, and the user's entry in the expiry index moves down to it
        // (LT: only ever down), so a sweeper looks at the user then; it
        // announces them only if no connection of theirs, here or elsewhere,
        // is still live.
        const expires = Date.now() + graceMs;
        const writes: Promise<unknown>[] = [];
        for (const [userId, connections] of users) {
          for (const connection of connections) writes.push(redis.zadd(userKey(userId), 'XX', expires, connection));
          // The key must outlive the grace (never shorter than other instances keep it).
          writes.push(redis.pexpire(userKey(userId), Math.max(graceMs, ttl)));
          writes.push(redis.zadd(indexOf(userId), 'LT', expires, userId));
        }
        await settled([Promise.all(writes).catch((error) => options.onError(error, 'presence hand-over'))], CLOSE_WAIT_MS);
      } else {
        // Leave now: this instance's users go offline at once, not in `ttl`.
        const goodbyes = users.flatMap(([userId, connections]) => [...connections].map((connection) => leave(userId, connection).catch((error) => options.onError(error, 'presence goodbye'))));
        await settled(goodbyes, CLOSE_WAIT_MS);
      }
      redis.disconnect();
    },
  };
}
