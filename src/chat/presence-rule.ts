import type { Database } from '../db/client.js';

export type PresenceRule = ReturnType<typeof createPresenceRule>;

/**
 * Whose presence a viewer may see (README, "Presence and privacy"): their
 * own, and that of anyone they share a conversation with, as the `presence`
 * subscription allows. Two reads of the inbox index (user_conversations,
 * distributed by user: each one shard), intersected here.
 */
export function createPresenceRule(db: Database) {
  const conversationsOf = async (userId: string) =>
    (await db.userConversation.findMany({ where: { userId }, select: { conversationId: true } })).map((row) => row.conversationId);

  return {
    /** The ids among `userIds` whose presence `viewerId` may see. */
    async visibleTo(viewerId: string, userIds: readonly string[]): Promise<Set<string>> {
      const visible = new Set(userIds.filter((id) => id === viewerId));
      const others = [...new Set(userIds.filter((id) => id !== viewerId))];
      if (others.length === 0) return visible;
      const mine = new Set(await conversationsOf(viewerId));
      if (mine.size === 0) return visible;
      await Promise.all(
        others.map(async (id) => {
          if ((await conversationsOf(id)).some((conversationId) => mine.has(conversationId))) visible.add(id);
        }),
      );
      return visible;
    },
  };
}
