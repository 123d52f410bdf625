import type { Database } from '../db/client.js';

/**
 * Keeps each member's copy of a conversation's activity in the inbox index
 * (user_conversations.active_at, distributed by user), which orders their
 * `conversations` list on their own shard (docs/citus.md, "The conversation
 * list"). A send moves the conversation up after it commits, for:
 *
 * - a small conversation (its member list came back with the send): every
 *   member's row, one statement, awaited by the send, so the sender's next
 *   list read sees it;
 * - a large one: the sender's row at once, everyone's in the background, at
 *   most once per LARGE_INTERVAL_MS per conversation per instance (a 10,000
 *   member group rewrites 10,000 rows each time).
 *
 * Concurrent moves of one conversation are merged: while one runs, later ones
 * wait and go as one statement with the latest time. Rows only move forward
 * (`active_at < at`). A failure is reported, never thrown: the message is
 * stored and delivered whatever its place in a list; it moves at the next send.
 */
export interface InboxOrder {
  /** A message was stored at `at`; `memberIds` is the member list when the conversation is small, else null. */
  moved(conversationId: string, at: Date, senderId: string, memberIds: readonly string[] | null): Promise<void>;
}

/** How often a large conversation rewrites every member's row at most. */
export const LARGE_INTERVAL_MS = 10_000;

interface Batch {
  at: Date;
  /** Null: every member (a large conversation). */
  members: Set<string> | null;
  done: Promise<void>;
  start: () => void;
}

export function createInboxOrder(db: Database, onError: (error: unknown, what: string) => void = () => {}): InboxOrder {
  const running = new Map<string, { next: Batch | null }>();
  const largeLast = new Map<string, number>();
  const largeTimers = new Map<string, { at: Date; timer: NodeJS.Timeout }>();

  async function write(conversationId: string, at: Date, members: Set<string> | null): Promise<void> {
    // One member (a large conversation's sender) by equality: a single-shard statement.
    const userId = members === null ? undefined : members.size === 1 ? [...members][0]! : { in: [...members] };
    await db.userConversation.updateMany({ where: { conversationId, activeAt: { lt: at }, ...(userId !== undefined && { userId }) }, data: { activeAt: at } });
  }

  /**
   * Runs a move now, or merges it into the one that follows the move in
   * progress. Moves of every member (large conversations) queue apart, so a
   * sender never waits behind one.
   */
  function enqueue(conversationId: string, at: Date, members: Set<string> | null): Promise<void> {
    const key = members ? conversationId : `${conversationId} *`;
    const slot = running.get(key);
    if (slot) {
      const next = slot.next;
      if (next) {
        if (at > next.at) next.at = at;
        if (next.members && members) for (const m of members) next.members.add(m);
        else next.members = null;
        return next.done;
      }
      let start!: () => void;
      const done = new Promise<void>((resolve) => (start = resolve)).then(() => run(key, conversationId, batch));
      const batch: Batch = { at, members: members && new Set(members), done, start };
      slot.next = batch;
      return done;
    }
    running.set(key, { next: null });
    return run(key, conversationId, { at, members, done: Promise.resolve(), start: () => {} });
  }

  async function run(key: string, conversationId: string, batch: Batch): Promise<void> {
    try {
      await write(conversationId, batch.at, batch.members);
    } catch (error) {
      onError(error, 'inbox order');
    } finally {
      const slot = running.get(key);
      const next = slot?.next;
      if (slot && next) {
        slot.next = null;
        next.start();
      } else {
        running.delete(key);
      }
    }
  }

  function moveLarge(conversationId: string, at: Date): void {
    const scheduled = largeTimers.get(conversationId);
    if (scheduled) {
      if (at > scheduled.at) scheduled.at = at;
      return;
    }
    const wait = (largeLast.get(conversationId) ?? 0) + LARGE_INTERVAL_MS - Date.now();
    if (wait <= 0) {
      largeLast.set(conversationId, Date.now());
      void enqueue(conversationId, at, null);
      return;
    }
    const entry = {
      at,
      timer: setTimeout(() => {
        largeTimers.delete(conversationId);
        largeLast.set(conversationId, Date.now());
        void enqueue(conversationId, entry.at, null);
      }, wait),
    };
    entry.timer.unref();
    largeTimers.set(conversationId, entry);
    // Forget conversations that went quiet (the map would otherwise grow with every large conversation ever used).
    if (largeLast.size > 10_000) for (const [id, last] of largeLast) if (Date.now() - last > LARGE_INTERVAL_MS) largeLast.delete(id);
  }

  return {
    async moved(conversationId, at, senderId, memberIds) {
      if (memberIds) {
        await enqueue(conversationId, at, new Set(memberIds));
        return;
      }
      moveLarge(conversationId, at);
      await enqueue(conversationId, at, new Set([senderId]));
    },
  };
}
