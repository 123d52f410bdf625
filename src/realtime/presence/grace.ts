import type { Presence } from './presence.js';

/**
 * Presence with a grace period on disconnects (docs/architecture.md,
 * "Presence"): a connection that ends still counts for `graceMs`, so a client
 * that is back within it (a network blip, a page reload, every client of an
 * instance that restarted) never flickers offline and online again: no two
 * announcements to every watcher, no two last-seen writes. A user who stays
 * away goes offline `graceMs` after their last connection ended, with
 * `lastSeenAt` the time it ended.
 *
 * The connection is handed to the presence underneath when its grace is
 * over; until then that presence still holds it (with Redis: still refreshes
 * it, so other instances see the user online too). When the instance stops,
 * the presence underneath keeps its connections counted for a grace more
 * (with Redis, as expiries that another instance's sweeper acts on), so the
 * clients of a restarted instance, back elsewhere within it, show no change.
 */
export function withDisconnectGrace(presence: Presence, graceMs: number, onError: (error: unknown, what: string) => void): Presence {
  if (graceMs <= 0) return presence;
  const waiting = new Map<string, NodeJS.Timeout>();
  let closed = false;
  return {
    connected: (userId, connectionId) => presence.connected(userId, connectionId),
    disconnected(userId, connectionId, at = new Date()) {
      if (closed) return Promise.resolve();
      const timer = setTimeout(() => {
        waiting.delete(connectionId);
        presence.disconnected(userId, connectionId, at).catch((error) => onError(error, 'presence'));
      }, graceMs);
      timer.unref();
      waiting.set(connectionId, timer);
      return Promise.resolve();
    },
    onlineAmong: (userIds) => presence.onlineAmong(userIds),
    async close() {
      closed = true;
      for (const timer of waiting.values()) clearTimeout(timer);
      waiting.clear();
      // Every connection is in its grace now: the drain closed them all.
      await presence.close(graceMs);
    },
  };
}
