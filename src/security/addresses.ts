import type { IncomingMessage } from 'node:http';

/**
 * The client's address, for per-address limits. Behind `hops` trusted
 * proxies (TRUST_PROXY_HOPS; the nginx template appends to X-Forwarded-For)
 * it is that many entries from the right of X-Forwarded-For: entries further
 * left were written by the client and prove nothing. Without proxies, the
 * socket's peer.
 */
export function clientAddress(req: IncomingMessage, hops: number): string {
  const peer = req.socket.remoteAddress ?? 'unknown';
  if (hops <= 0) return peer;
  const header = req.headers['x-forwarded-for'];
  const entries = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',').map((entry) => entry.trim()).filter(Boolean);
  return entries[entries.length - hops] ?? entries[0] ?? peer;
}
