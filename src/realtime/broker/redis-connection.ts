import type { Redis } from 'ioredis';

/**
 * Resolves once the connection is ready; rejects with a message fit for an
 * operator if it is not within `timeoutMs` (the server then refuses to start
 * rather than run without its broker).
 */
export function whenReady(redis: Redis, url: string, timeoutMs = 15_000): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error(`Redis at ${new URL(url).host} is not reachable (REDIS_URL)`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}
