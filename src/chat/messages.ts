import type { Viewer } from '../auth.js';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { badInput, forbidden, notFound } from '../errors.js';
import { requireMember } from './access.js';
import type { ChatEvents } from './events.js';
import { newId } from './ids.js';
import { createConversationGate } from './conversation-gate.js';
import { createInboxOrder, type InboxOrder } from './inbox-order.js';
import { createRateLimiter } from './rate-limit.js';
import type { MessageRecord } from './records.js';
import type { UserService } from './users.js';
import { clientMessageId, conversationIdArgument, messageBody, pageSize, seqArgument } from './validate.js';

export interface MessagesSincePage {
  messages: MessageRecord[];
  /** More messages follow the last one returned: ask again with afterSeq = nextAfterSeq. */
  hasMore: boolean;
  nextAfterSeq: number;
  lastSeq: number;
}

export interface MessageHistoryPage {
  /** Ascending by seq. */
  messages: MessageRecord[];
  /** Older messages exist: ask again with before = the first returned seq. */
  hasMore: boolean;
}

type MessageRow = {
  id: string;
  conversationId: string;
  seq: number;
  senderId: string;
  body: string;
  clientMessageId: string;
  createdAt: Date;
};

function isUniqueViolation(error: unknown): boolean {
  // Prisma surfaces a raw query's PostgreSQL error code in several places depending on the path taken.
  const e = error as { code?: string; meta?: { code?: string; driverAdapterError?: { cause?: { originalCode?: string; kind?: string } } }; message?: string };
  return (
    e?.meta?.code === '23505' ||
    e?.meta?.driverAdapterError?.cause?.originalCode === '23505' ||
    e?.meta?.driverAdapterError?.cause?.kind === 'UniqueConstraintViolation' ||
    e?.code === 'P2002' ||
    /\b23505\b|unique constraint/i.test(e?.message ?? '')
  );
}

export type MessageService = ReturnType<typeof createMessageService>;

export function createMessageService(db: Database, users: UserService, events: ChatEvents, config: Config, inbox: InboxOrder = createInboxOrder(db)) {
  const sendLimit = createRateLimiter('messages', config.sendRatePerSecond, config.sendBurst);
  const oneConversationAtATime = createConversationGate();

  async function withSenders(rows: MessageRow[]): Promise<MessageRecord[]> {
    const senders = await users.getMany(rows.map((row) => row.senderId));
    return rows.map(({ senderId, ...row }) => ({
      ...row,
      sender: senders.get(senderId) ?? { id: senderId, name: senderId },
    }));
  }

  async function stored(conversationId: string, senderId: string, clientId: string): Promise<MessageRecord | null> {
    const row = await db.message.findUnique({
      where: { conversationId_senderId_clientMessageId: { conversationId, senderId, clientMessageId: clientId } },
    });
    return row ? (await withSenders([row]))[0]! : null;
  }

  /** Messages with seq in (afterSeq, beforeSeq), ascending, at most `limit`. No authorization: for the realtime layer. */
  async function range(conversationId: string, afterSeq: number, limit: number, beforeSeq?: number): Promise<MessageRecord[]> {
    const rows = await db.message.findMany({
      where: { conversationId, seq: { gt: afterSeq, ...(beforeSeq !== undefined && { lt: beforeSeq }) } },
      orderBy: { seq: 'asc' },
      take: limit,
    });
    return withSenders(rows);
  }

  return {
    /**
     * Stores a message and announces it. One call of chat_send_message, so
     * one implicit transaction and one round trip (one shard on Citus): it
     * increments the conversation's last_seq (taking its row lock, which
     * orders concurrent senders), inserts the message with that seq, moves
     * the sender's read position, and returns the member list when the
     * conversation is small enough to fan out on write. A failure anywhere
     * rolls all of it back, so a failed send consumes no seq.
     *
     * Idempotent per (sender, clientMessageId): a retry hits the unique index,
     * rolls back, and gets the stored message.
     */
    async send(viewer: Viewer, id: string, body: string, clientId: string): Promise<MessageRecord> {
      const conversationId = conversationIdArgument(id);
      const text = messageBody(body, config.maxBodyLength);
      const cmid = clientMessageId(clientId);
      sendLimit.take(viewer.id);
      const messageId = newId();
      let rows: { sent_seq: number; sent_at: Date; members: number; member_ids: string[] | null }[];
      try {
        // One call, one round trip (migration 20261201000100_send_message_function).
        // Queued here, not on the row lock, past two in flight (a hot conversation must not fill the pool).
        rows = await oneConversationAtATime(
          conversationId,
          () => db.$queryRaw`
          SELECT sent_seq, sent_at, members, member_ids
            FROM chat_send_message(${conversationId}::uuid, ${viewer.id}, ${messageId}::uuid, ${text}, ${cmid},
                                   ${new Date()}::timestamptz, ${events.memberListMax}::integer)`,
        );
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        const existing = await stored(conversationId, viewer.id, cmid);
        if (existing) return existing;
        throw error;
      }
      const row = rows[0];
      if (!row) {
        // Nothing was written: say why (this costs a query only on the failure path).
        const exists = await db.conversation.findUnique({ where: { id: conversationId }, select: { id: true } });
        throw exists ? forbidden('You are not a member of this conversation') : notFound(`Conversation ${conversationId} not found`);
      }
      const message: MessageRecord = {
        id: messageId,
        conversationId,
        seq: row.sent_seq,
        sender: { id: viewer.id, name: viewer.name },
        body: text,
        clientMessageId: cmid,
        createdAt: row.sent_at,
      };
      // Announced, not awaited: the sender never waits for fan-out, and a lost
      // announcement is repaired by the position check (docs/architecture.md).
      events.messageSent(message, { memberCount: row.members, memberIds: row.member_ids });
      // Up in the members' lists, on their own shards (docs/citus.md, "The conversation list"); never throws.
      await inbox.moved(conversationId, row.sent_at, viewer.id, row.member_ids);
      return message;
    },

    /** Offline catch-up: what came after `afterSeq`, ascending, paged. */
    async since(viewer: Viewer, id: string, afterSeq: number, first: number | null | undefined): Promise<MessagesSincePage> {
      const conversationId = conversationIdArgument(id);
      const after = seqArgument(afterSeq, 'afterSeq');
      const take = pageSize(first, 'first', 100, 500);
      const view = await requireMember(db, conversationId, viewer.id);
      if (after > view.lastSeq) throw badInput(`afterSeq ${after} is beyond the last message (${view.lastSeq})`, 'afterSeq');
      const messages = await range(conversationId, after, take + 1);
      const page = messages.slice(0, take);
      return {
        messages: page,
        hasMore: messages.length > take,
        nextAfterSeq: page.length > 0 ? page[page.length - 1]!.seq : after,
        lastSeq: view.lastSeq,
      };
    },

    /** History paging backwards from `before` (exclusive; default: the newest). */
    async history(viewer: Viewer, id: string, before: number | null | undefined, last: number | null | undefined): Promise<MessageHistoryPage> {
      const conversationId = conversationIdArgument(id);
      const take = pageSize(last, 'last', 50, 100);
      if (before !== null && before !== undefined) seqArgument(before, 'before');
      await requireMember(db, conversationId, viewer.id);
      const rows = await db.message.findMany({
        where: { conversationId, ...(before != null && { seq: { lt: before } }) },
        orderBy: { seq: 'desc' },
        take: take + 1,
      });
      const page = rows.slice(0, take).reverse();
      return { messages: await withSenders(page), hasMore: rows.length > take };
    },

    /** The newest messages of several conversations (for Conversation.lastMessage), keyed by conversation. */
    async latest(conversations: readonly { id: string; lastSeq: number }[]): Promise<Map<string, MessageRecord>> {
      const wanted = conversations.filter((c) => c.lastSeq > 0);
      if (wanted.length === 0) return new Map();
      const rows = await db.message.findMany({
        where: { OR: wanted.map((c) => ({ conversationId: c.id, seq: c.lastSeq })) },
      });
      return new Map((await withSenders(rows)).map((m) => [m.conversationId, m]));
    },

    range,
  };
}
