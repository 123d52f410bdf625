/** Called when a user comes online (first connection anywhere) or goes offline (last one gone). */
export type PresenceChange = (userId: string, online: boolean, at: Date) => void | Promise<void>;

/**
 * Who is online, across every instance (docs/architecture.md, "Presence"): a
 * product feature (`User.online`, `lastSeenAt`, the `presence` subscription)
 * derived from connections on any transport. It never decides whether an
 * event is delivered, and its failures never refuse a connection.
 */
export interface Presence {
  /** Shared by every instance (Redis): a stopping instance can hand its connections over (see `close`). */
  readonly shared: boolean;
  connected(userId: string, connectionId: string): Promise<void>;
  /** `at`: when the connection ended (default now), the user's `lastSeenAt` if it was their last. */
  disconnected(userId: string, connectionId: string, at?: Date): Promise<void>;
  /** The subset of `userIds` with at least one live connection anywhere. */
  onlineAmong(userIds: readonly string[]): Promise<string[]>;
  /**
   * The instance stops; its connections are gone (the drain closed them).
   * A shared presence with `graceMs` > 0 keeps them counted for that long,
   * so that users who reconnect elsewhere meanwhile show no change (another
   * instance's sweeper announces those who do not); otherwise they go
   * offline now.
   */
  close(graceMs?: number): Promise<void>;
}

/** Presence of the embedded default: this process's connections are all there is. */
export function createLocalPresence(onChange: PresenceChange): Presence {
  // A count per user: the socket server pairs each connected() with one
  // disconnected(), so the ids themselves need not be kept (memory per
  // connection is a product target).
  const connections = new Map<string, number>();
  // Announcements under way (last-seen writes among them): `close` lets them
  // finish, since the database pool closes after it.
  const announcing = new Set<Promise<void>>();
  const announce = async (userId: string, online: boolean, at = new Date()) => {
    const work = Promise.resolve(onChange(userId, online, at));
    announcing.add(work);
    try {
      await work;
    } finally {
      announcing.delete(work);
    }
  };
  return {
    shared: false,
    async connected(userId) {
      const count = (connections.get(userId) ?? 0) + 1;
      connections.set(userId, count);
      if (count === 1) await announce(userId, true);
    },
    async disconnected(userId, _connectionId, at) {
      const count = connections.get(userId);
      if (count === undefined) return;
      if (count > 1) {
        connections.set(userId, count - 1);
        return;
      }
      connections.delete(userId);
      await announce(userId, false, at);
    },
    async onlineAmong(userIds) {
      return userIds.filter((id) => connections.has(id));
    },
    async close() {
      // Nobody takes over: whoever is still counted goes offline now (the drain closed their sockets).
      const users = [...connections.keys()];
      connections.clear();
      await Promise.allSettled([...users.map((userId) => announce(userId, false)), ...announcing]);
    },
  };
}
