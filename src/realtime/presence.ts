/** Called when a user comes online (first connection anywhere) or goes offline (last one gone). */
export type PresenceChange = (userId: string, online: boolean, at: Date) => void | Promise<void>;

/**
 * Who is online, across every instance (DESIGN §5). The sender's instance
 * asks it which members of a small conversation to publish to; the API
 * exposes it as `User.online` and the `presence` subscription.
 */
export interface Presence {
  connected(userId: string, connectionId: string): Promise<void>;
  disconnected(userId: string, connectionId: string): Promise<void>;
  /** The subset of `userIds` with at least one live connection anywhere. */
  onlineAmong(userIds: readonly string[]): Promise<string[]>;
  close(): Promise<void>;
}

/** Presence of the embedded default: this process's connections are all there is. */
export function createLocalPresence(onChange: PresenceChange): Presence {
  const connections = new Map<string, Set<string>>();
  return {
    async connected(userId, connectionId) {
      let set = connections.get(userId);
      if (!set) connections.set(userId, (set = new Set()));
      set.add(connectionId);
      if (set.size === 1) await onChange(userId, true, new Date());
    },
    async disconnected(userId, connectionId) {
      const set = connections.get(userId);
      if (!set || !set.delete(connectionId)) return;
      if (set.size === 0) {
        connections.delete(userId);
        await onChange(userId, false, new Date());
      }
    },
    async onlineAmong(userIds) {
      return userIds.filter((id) => connections.has(id));
    },
    async close() {
      connections.clear();
    },
  };
}
