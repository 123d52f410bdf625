import { rateLimited } from '../errors.js';

/**
 * A token bucket per key, in process memory: `burst` operations at once,
 * refilled at `perSecond`. The limits of one instance without Redis, and the
 * fallback of the shared ones (src/security/abuse.ts, which hold across
 * instances through Redis when there is one).
 */
export function createRateLimiter(what: string, perSecond: number, burst: number) {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const MAX_KEYS = 100_000;
  return {
    /** Takes one token for `key` or throws RATE_LIMITED with the wait in `extensions.retryAfterMs`. */
    take(key: string): void {
      if (perSecond <= 0) return;
      const now = Date.now();
      let bucket = buckets.get(key);
      if (!bucket) {
        if (buckets.size >= MAX_KEYS) buckets.clear();
        bucket = { tokens: burst, at: now };
        buckets.set(key, bucket);
      }
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
      bucket.at = now;
      if (bucket.tokens < 1) {
        throw rateLimited(`Too many ${what}; slow down`, Math.ceil(((1 - bucket.tokens) / perSecond) * 1000));
      }
      bucket.tokens -= 1;
    },
  };
}
