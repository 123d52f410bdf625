import type { Database } from '../db/client.js';

/**
 * Keeps each member's copy of a conversation's activity in the inbox index
 * (user_conversations.active_at, distributed by user), which orders their
 * `conversations` list on their own shard (docs/citus.md, "The conversation
 * list"). After a send commits:
 *
 * - the sender's row moves at once (one single-shard statement, awaited), so
 *   the sender's next list read shows it;
 * - the other members' rows move in the background, at most once per
 *   OTHERS_INTERVAL_MS per conversation per instance for a conversation whose
 *   member list came back with the send, and once per LARGE_INTERVAL_MS for a
 *   large one (every row of the conversation: a 10,000-member group rewrites
 *   10,000 rows each time). Sends in between are merged into the next move,
 *   with the latest time.
 *
 * Measured (docs/citus.md, "A hot conversation"): moving every member's row
 * on each send, awaited, cut direct-conversation sends on Citus to a third
 * (a statement across two user shards per send); this keeps one
 * single-shard statement on the send's path.
 *
 * Rows only move forward (`active_at < at`). A failure is reported, never
 * thrown: the message is stored and delivered whatever its place in a list,
 * and the conversation moves at its next send.
 */
export interface InboxOrder {
  /** A message was stored at `at`; `memberIds` is the member list when the conversation is small, else null. */
  moved(conversationId: string, at: Date, senderId: string, memberIds: readonly string[] | null): Promise<void>;
}

/** How often a small conversation moves its other members' rows at most. */
export const OTHERS_INTERVAL_MS = 1000;
/** How often a large conversation rewrites every member's row at most. */
export const LARGE_INTERVAL_MS = 10_000;

interface Later {
  at: Date;
  /** Null: every member's row. */
  members: Set<string> | null;
  interval: number;
  lastRun: number;
  running: boolean;
  timer: NodeJS.Timeout | null;
  dirty: boolean;
}

export function createInboxOrder(db: Database, onError: (error: unknown, what: string) => void = () => {}): InboxOrder {
  const later = new Map<string, Later>();

  async function write(conversationId: string, at: Date, members: ReadonlySet<string> | null): Promise<void> {
    // One member by equality: a single-shard statement. Several: one row on each member's shard.
    const userId = members === null ? undefined : members.size === 1 ? [...members][0]! : { in: [...members] };
    await db.userConversation.updateMany({ where: { conversationId, activeAt: { lt: at }, ...(userId !== undefined && { userId }) }, data: { activeAt: at } });
  }

  function schedule(conversationId: string, at: Date, members: Set<string> | null, interval: number): void {
    let entry = later.get(conversationId);
    if (!entry) {
      entry = { at, members, interval, lastRun: 0, running: false, timer: null, dirty: true };
      later.set(conversationId, entry);
    } else {
      if (at > entry.at) entry.at = at;
      if (entry.dirty && entry.members && members) for (const m of members) entry.members.add(m);
      else if (entry.dirty) entry.members = null;
      else entry.members = members;
      entry.interval = Math.max(entry.interval, interval);
      entry.dirty = true;
    }
    arm(conversationId, entry);
  }

  function arm(conversationId: string, entry: Later): void {
    if (entry.running || entry.timer) return;
    const wait = Math.max(0, entry.lastRun + entry.interval - Date.now());
    entry.timer = setTimeout(() => void flush(conversationId, entry), wait);
    entry.timer.unref();
  }

  async function flush(conversationId: string, entry: Later): Promise<void> {
    entry.timer = null;
    if (!entry.dirty) {
      // Idle for a whole interval: forget the conversation.
      if (later.get(conversationId) === entry) later.delete(conversationId);
      return;
    }
    const { at, members } = entry;
    entry.dirty = false;
    entry.running = true;
    entry.lastRun = Date.now();
    try {
      await write(conversationId, at, members);
    } catch (error) {
      onError(error, 'inbox order');
    } finally {
      entry.running = false;
      // Again after the interval: to move what arrived meanwhile, or to forget the conversation.
      arm(conversationId, entry);
    }
  }

  return {
    async moved(conversationId, at, senderId, memberIds) {
      const others = memberIds ? new Set(memberIds.filter((id) => id !== senderId)) : null;
      if (!others || others.size > 0) schedule(conversationId, at, others, others ? OTHERS_INTERVAL_MS : LARGE_INTERVAL_MS);
      await write(conversationId, at, new Set([senderId])).catch((error) => onError(error, 'inbox order'));
    },
  };
}
