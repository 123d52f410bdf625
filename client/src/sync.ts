import type { ChatApi } from './api.js';
import type { Sequencer } from './sequencer.js';
import type { Conversation } from './types.js';

export interface CatchUpOptions {
  api: Pick<ChatApi, 'conversations'>;
  sequencer: Sequencer;
  /**
   * True after the session's first sync: a conversation that appears now
   * was joined while the socket was down (its ConversationJoined is lost), so
   * announce it and deliver its unread messages (at most `unreadLimit`).
   * On the first sync every conversation is new to the session: those start
   * where they stand, and their past is history for `messages()`.
   */
  announceNew: boolean;
  unreadLimit: number;
  onJoined(conversation: Conversation): void;
  /** This sync has been superseded (the socket dropped again, or the session closed). */
  stale(): boolean;
  /** Parallel catch-ups. */
  concurrency?: number;
}

/** Conversations per page while listing; the API's maximum. */
const LIST_PAGE = 100;

/**
 * What a (re)connect does before subscribing: compare where the session
 * stands with where each conversation is, and fetch the difference.
 *
 * 1. List the viewer's conversations (lastEventSeq and lastSeq of each, in pages).
 * 2. Followed conversations that moved on are caught up with eventsSince
 *    from their event cursor (compacted: a message edited 50 times while we
 *    were away comes once, in its final state), then with messagesSince for
 *    any message the log did not bring. A followed one missing from the
 *    list is looked up: either it slipped between pages (the list is ordered
 *    by activity) or it answers FORBIDDEN, which means the viewer left
 *    while we were away. The list is only a snapshot: sends keep moving
 *    cursors while it is read.
 * 3. Conversations the session did not follow start where they stand on
 *    the first sync; on later ones (joined while disconnected) after the
 *    viewer's read position, so what a live session would have shown
 *    arrives, bounded by `unreadLimit` for a long-lived group.
 *
 * Throws (for a retry) if listing fails; catch-ups retry by themselves.
 */
export async function catchUp(options: CatchUpOptions): Promise<void> {
  const { api, sequencer } = options;
  const listed = new Map<string, Conversation>();
  let after: string | null = null;
  do {
    const page = await api.conversations({ first: LIST_PAGE, after });
    if (options.stale()) return;
    for (const conversation of page.conversations) listed.set(conversation.id, conversation);
    after = page.hasNextPage ? page.endCursor : null;
  } while (after);

  const work: (() => Promise<void>)[] = [];
  for (const conversationId of Object.keys(sequencer.cursors())) {
    const conversation = listed.get(conversationId);
    work.push(() => (conversation ? sequencer.sync(conversationId, conversation) : sequencer.recheck(conversationId)));
  }
  for (const conversation of listed.values()) {
    const { id } = conversation;
    if (sequencer.has(id)) continue;
    if (!options.announceNew) {
      sequencer.follow(id, { eventCursor: conversation.lastEventSeq, messageCursor: conversation.lastSeq });
    } else {
      const start = Math.max(conversation.lastReadSeq, conversation.lastSeq - options.unreadLimit, 0);
      // Announced before its first message is delivered, as on the live stream.
      sequencer.follow(id, { eventCursor: conversation.lastEventSeq, messageCursor: start, historyUntil: conversation.lastSeq, paused: true });
      options.onJoined(conversation);
      sequencer.resume(id);
    }
    work.push(() => sequencer.sync(id, conversation));
  }
  await runLimited(work, options.concurrency ?? 4, options.stale);
}

async function runLimited(tasks: (() => Promise<void>)[], limit: number, stale: () => boolean): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length && !stale()) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}
