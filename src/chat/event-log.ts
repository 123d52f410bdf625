import type { Viewer } from '../auth.js';
import type { Database } from '../db/client.js';
import { badInput } from '../errors.js';
import { Prisma } from '../generated/prisma/client.js';
import { requireMember } from './access.js';
import { MESSAGE_COLUMNS, toMessage, type MessageRow } from './message-rows.js';
import type { ConversationEventRecord, MemberRole, MessageAction, MessageRecord, UserRecord } from './records.js';
import type { UserService } from './users.js';
import { conversationIdArgument, pageSize, seqArgument } from './validate.js';

/** A page of compacted catch-up. */
export interface EventsSincePage {
  conversationId: string;
  /** Ascending by eventSeq; each entity once, in its current state. */
  events: ConversationEventRecord[];
  /** Everything up to here is in this page and those before it: continue after it. */
  nextAfterEventSeq: number;
  hasMore: boolean;
  /** The conversation's newest event when this page was read. */
  lastEventSeq: number;
}

interface MemberRow {
  user_id: string;
  role: MemberRole;
  member_event_seq: number;
  read_event_seq: number;
  last_read_seq: number;
}

interface DepartureRow {
  user_id: string;
  event_seq: number;
  reason: 'LEFT' | 'REMOVED';
  new_owner_id: string | null;
}

/** What a compacted message entry stands for: sent and unchanged since, deleted, or changed since it was sent. */
function actionOf(row: MessageRow): MessageAction {
  if (row.deleted_at) return 'DELETED';
  return row.sent_event_seq === row.event_seq ? 'SENT' : 'UPDATED';
}

export type EventLogService = ReturnType<typeof createEventLogService>;

/**
 * Reads of the conversation event log (docs/architecture.md, "The event
 * log"). Nothing stores events: every change stamps what it touched with its
 * event number, so "what changed in (after, upTo]" is the rows stamped in
 * that window, each in its current state: compacted by construction. Every
 * statement filters by one conversation (one shard on Citus).
 */
export function createEventLogService(db: Database, users: UserService) {
  /**
   * The events in (after, upTo], compacted, at most about `limit` message
   * entries (a page never splits one event). `upTo` defaults to the head.
   */
  async function window(
    conversationId: string,
    after: number,
    limit: number,
    upTo?: number,
    viewerId?: string,
  ): Promise<{ events: ConversationEventRecord[]; end: number; hasMore: boolean; head: number }> {
    const head =
      upTo ?? (await db.conversation.findUnique({ where: { id: conversationId }, select: { lastEventSeq: true } }))?.lastEventSeq ?? 0;
    if (head <= after) return { events: [], end: after, hasMore: false, head };
    const rows = await db.$queryRaw<MessageRow[]>`
      SELECT ${MESSAGE_COLUMNS} FROM messages m
       WHERE m.conversation_id = ${conversationId}::uuid AND m.event_seq > ${after} AND m.event_seq <= ${head}
       ORDER BY m.event_seq, m.seq LIMIT ${limit + 1}`;
    let end = head;
    let hasMore = false;
    if (rows.length > limit) {
      // Cut after a whole event: at most two messages share one (a thread reply and its root).
      end = rows[limit - 1]!.event_seq;
      hasMore = true;
    }
    const messages = rows.filter((row) => row.event_seq <= end);
    const [members, departures, conversation] = await Promise.all([
      db.$queryRaw<MemberRow[]>`
        SELECT user_id, role::text AS role, member_event_seq, read_event_seq, last_read_seq FROM conversation_members
         WHERE conversation_id = ${conversationId}::uuid
           AND ((member_event_seq > ${after} AND member_event_seq <= ${end}) OR (read_event_seq > ${after} AND read_event_seq <= ${end}))`,
      db.$queryRaw<DepartureRow[]>`
        SELECT user_id, event_seq, reason, new_owner_id FROM conversation_departures
         WHERE conversation_id = ${conversationId}::uuid AND event_seq > ${after} AND event_seq <= ${end}`,
      db.conversation.findUnique({ where: { id: conversationId }, select: { title: true, titleEventSeq: true } }),
    ]);
    const userIds = [
      ...messages.map((m) => m.sender_id),
      ...members.map((m) => m.user_id),
      ...departures.flatMap((d) => (d.new_owner_id ? [d.user_id, d.new_owner_id] : [d.user_id])),
    ];
    const names = await users.getMany(userIds);
    const user = (id: string): UserRecord => names.get(id) ?? { id, name: id };
    const mine = viewerId ? await ownReactions(conversationId, viewerId, messages) : undefined;

    const events: ConversationEventRecord[] = [];
    const sentBy = new Map<number, string>();
    // Messages of one event: a thread reply and its root (only the root if the reply changed since).
    for (let i = 0; i < messages.length; i++) {
      const row = messages[i]!;
      const next = messages[i + 1];
      let main = row;
      let message = toMessage(row, user(row.sender_id));
      let threadRoot: MessageRecord | null = null;
      if (next && next.event_seq === row.event_seq) {
        const [reply, root] = row.thread_root_seq === next.seq ? [row, next] : [next, row];
        main = reply;
        message = toMessage(reply, user(reply.sender_id));
        threadRoot = toMessage(root, user(root.sender_id));
        i++;
      }
      if (mine) {
        message = withMine(message, mine);
        if (threadRoot) threadRoot = withMine(threadRoot, mine);
      }
      sentBy.set(row.event_seq, message.sender.id);
      events.push({ kind: 'message', conversationId, eventSeq: row.event_seq, action: actionOf(main), message, threadRoot, reaction: null, actor: null, catchUp: true });
    }
    for (const member of members) {
      if (member.member_event_seq > after && member.member_event_seq <= end) {
        events.push({
          kind: 'member',
          conversationId,
          eventSeq: member.member_event_seq,
          action: 'JOINED',
          user: user(member.user_id),
          role: member.role,
          lastReadSeq: member.last_read_seq,
          newOwner: null,
          catchUp: true,
        });
      }
      // A send moves its sender's read position within its own event: implied by the message.
      if (member.read_event_seq > after && member.read_event_seq <= end && sentBy.get(member.read_event_seq) !== member.user_id) {
        events.push({ kind: 'receipt', conversationId, eventSeq: member.read_event_seq, user: user(member.user_id), lastReadSeq: member.last_read_seq, catchUp: true });
      }
    }
    for (const departure of departures) {
      events.push({
        kind: 'member',
        conversationId,
        eventSeq: departure.event_seq,
        action: departure.reason,
        user: user(departure.user_id),
        role: null,
        lastReadSeq: null,
        newOwner: departure.new_owner_id ? user(departure.new_owner_id) : null,
        catchUp: true,
      });
    }
    if (conversation && conversation.titleEventSeq > after && conversation.titleEventSeq <= end && conversation.title !== null) {
      events.push({ kind: 'renamed', conversationId, eventSeq: conversation.titleEventSeq, title: conversation.title, catchUp: true });
    }
    events.sort((a, b) => a.eventSeq - b.eventSeq);
    return { events, end, hasMore, head };
  }

  async function ownReactions(conversationId: string, viewerId: string, messages: MessageRow[]): Promise<Set<string>> {
    const seqs = messages.filter((m) => m.reactions?.length).map((m) => m.seq);
    if (seqs.length === 0) return new Set();
    const rows = await db.messageReaction.findMany({
      where: { conversationId, userId: viewerId, messageSeq: { in: seqs } },
      select: { messageSeq: true, reaction: true },
    });
    return new Set(rows.map((r) => `${r.messageSeq}\n${r.reaction}`));
  }

  function withMine(message: MessageRecord, mine: Set<string>): MessageRecord {
    if (message.reactions.length === 0) return message;
    return { ...message, reactions: message.reactions.map((r) => ({ ...r, mine: mine.has(`${message.seq}\n${r.reaction}`) })) };
  }

  return {
    /**
     * Offline catch-up of everything: what changed after `afterEventSeq`,
     * compacted (each changed message once, in its current state; deleted
     * ones as tombstones; reactions as summaries; each member's latest read
     * position), in pages that never split an event.
     */
    async since(viewer: Viewer, id: string, afterEventSeq: number, first: number | null | undefined): Promise<EventsSincePage> {
      const conversationId = conversationIdArgument(id);
      const after = seqArgument(afterEventSeq, 'afterEventSeq');
      const limit = pageSize(first, 'first', 500, 1000);
      const view = await requireMember(db, conversationId, viewer.id);
      if (after > view.lastEventSeq) throw badInput(`afterEventSeq ${after} is beyond the last event (${view.lastEventSeq})`, 'afterEventSeq');
      const page = await window(conversationId, after, limit, view.lastEventSeq, viewer.id);
      return { conversationId, events: page.events, nextAfterEventSeq: page.end, hasMore: page.hasMore, lastEventSeq: view.lastEventSeq };
    },

    /**
     * For the realtime layer (no authorization, no viewer): the compacted
     * events in (after, before), ascending, about `limit` per call. A gap fill
     * may skip superseded numbers; it never reorders.
     */
    async range(conversationId: string, after: number, limit: number, before?: number): Promise<ConversationEventRecord[]> {
      const { events } = await window(conversationId, after, limit, before === undefined ? undefined : before - 1);
      return events;
    },

    /** Where the window of a range call ended: the feed's "complete up to" mark. */
    window,
  };
}
