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
 * a shared presence (Redis) keeps its connections counted for a grace more,
 * as expiries that another instance's sweeper acts on, so the clients of a
 * restarted instance, back elsewhere within it, show no change; without one
 * there is nobody to come back to, and they go offline at once.
 */
export function withDisconnectGrace(presence: Presence, graceMs: number, onError: (error: unknown, what: string) => void): Presence {
  if (graceMs <= 0) return presence;
  const waiting = new Map<string, { userId: string; at: Date; timer: NodeJS.Timeout }>();
  let closed = false;
  return {
    shared: presence.shared,
    connected: (userId, connectionId) => presence.connected(userId, connectionId),
    disconnected(userId, connectionId, at = new Date()) {
      if (closed) return Promise.resolve();
      const timer = setTimeout(() => {
        waiting.delete(connectionId);
        presence.disconnected(userId, connectionId, at).catch((error) => onError(error, 'presence'));
      }, graceMs);
      timer.unref();
      waiting.set(connectionId, { userId, at, timer });
      return Promise.resolve();
    },
    onlineAmong: (userIds) => presence.onlineAmong(userIds),
    async close() {
      closed = true;
      const held = [...waiting];
      for (const [, { timer }] of held) clearTimeout(timer);
      waiting.clear();
      // Every connection is in its grace now: the drain closed them all.
      if (presence.shared) return presence.close(graceMs);
      // Nobody can take them over: offline now, as of when each connection ended.
      // (All at once: their last-seen writes are group-committed.)
      await Promise.all(held.map(([connectionId, { userId, at }]) => presence.disconnected(userId, connectionId, at).catch((error) => onError(error, 'presence'))));
      await presence.close();
    },
  };
}
