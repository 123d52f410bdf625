import type { Viewer } from '../auth.js';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { badInput, ChatError, ErrorCode, forbidden, notFound } from '../errors.js';
import { Prisma } from '../generated/prisma/client.js';
import { requireMember } from './access.js';
import type { ChatEvents } from './events.js';
import { newId } from './ids.js';
import { MESSAGE_COLUMNS, messageFromJson, toMessage, type MessageRow } from './message-rows.js';
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

/** Where a new message goes besides the conversation's timeline. */
export interface SendOptions {
  /** A message of the same conversation this one replies to (quoted). */
  replyToSeq?: number | null;
  /** The root of the thread this message is a reply in. */
  threadRootSeq?: number | null;
}

const SEND_STATEMENT = `
  SELECT outcome, sent_seq, sent_event_seq, sent_at, members, member_ids, thread_root
    FROM chat_send_message($1::uuid, $2::text, $3::uuid, $4::text, $5::text, $6::timestamptz, $7::integer, $8::integer, $9::integer)`;

function isUniqueViolation(error: unknown): boolean {
  // Prisma surfaces a raw query's PostgreSQL error code in several places depending on the path taken.
  const e = error as { code?: string; meta?: { code?: string; driverAdapterError?: { cause?: { originalCode?: string; kind?: string } } }; message?: string };
  return (
    e?.code === '23505' || // node-postgres
    e?.meta?.code === '23505' ||
    e?.meta?.driverAdapterError?.cause?.originalCode === '23505' ||
    e?.meta?.driverAdapterError?.cause?.kind === 'UniqueConstraintViolation' ||
    e?.code === 'P2002' ||
    /\b23505\b|unique constraint/i.test(e?.message ?? '')
  );
}

export type MessageService = ReturnType<typeof createMessageService>;

export function createMessageService(
  db: Database,
  users: UserService,
  events: ChatEvents,
  config: Config,
  options: {
    /** Shared by every instance when the app passes one (src/security/abuse.ts); per process otherwise. */
    limit?: { take(key: string): void | Promise<void> };
    /** Moves a conversation up in its members' lists after a send (docs/citus.md, "The conversation list"). */
    inbox?: InboxOrder;
  } = {},
) {
  const sendLimit = options.limit ?? createRateLimiter('messages', config.sendRatePerSecond, config.sendBurst);
  const inbox = options.inbox ?? createInboxOrder(db);
  const oneConversationAtATime = createConversationGate();

  /** Messages matching `where` (an SQL condition on `m`), with senders' names. */
  async function read(where: Prisma.Sql, order: Prisma.Sql, limit: number): Promise<MessageRecord[]> {
    const rows = await db.$queryRaw<MessageRow[]>`SELECT ${MESSAGE_COLUMNS} FROM messages m WHERE ${where} ORDER BY ${order} LIMIT ${limit}`;
    return withSenders(rows);
  }

  async function withSenders(rows: MessageRow[]): Promise<MessageRecord[]> {
    const senders = await users.getMany(rows.map((row) => row.sender_id));
    return rows.map((row) => toMessage(row, senders.get(row.sender_id) ?? { id: row.sender_id, name: row.sender_id }));
  }

  async function stored(conversationId: string, senderId: string, clientId: string): Promise<MessageRecord | null> {
    const [message] = await read(
      Prisma.sql`m.conversation_id = ${conversationId}::uuid AND m.sender_id = ${senderId} AND m.client_message_id = ${clientId}`,
      Prisma.sql`m.seq`,
      1,
    );
    return message ?? null;
  }

  /** Messages with seq in (afterSeq, beforeSeq), ascending, at most `limit`. No authorization: for the realtime layer. */
  function range(conversationId: string, afterSeq: number, limit: number, beforeSeq?: number): Promise<MessageRecord[]> {
    const upper = beforeSeq === undefined ? Prisma.empty : Prisma.sql` AND m.seq < ${beforeSeq}`;
    return read(Prisma.sql`m.conversation_id = ${conversationId}::uuid AND m.seq > ${afterSeq}${upper}`, Prisma.sql`m.seq`, limit);
  }

  /** Messages by (conversation, seq), keyed `conversationId:seq` (reply targets, thread roots, last messages). */
  async function bySeq(keys: readonly { conversationId: string; seq: number }[]): Promise<Map<string, MessageRecord>> {
    if (keys.length === 0) return new Map();
    const pairs = Prisma.join(keys.map((k) => Prisma.sql`(m.conversation_id = ${k.conversationId}::uuid AND m.seq = ${k.seq})`), ' OR ');
    const found = await read(pairs, Prisma.sql`m.conversation_id, m.seq`, keys.length);
    return new Map(found.map((m) => [`${m.conversationId}:${m.seq}`, m]));
  }

  return {
    /**
     * Stores a message and announces it. One call of chat_send_message, so
     * one implicit transaction and one round trip (one shard on Citus): it
     * takes the next message seq and event number (under the conversation's
     * row lock, which orders concurrent senders), inserts the message, moves
     * the sender's read position, updates a thread's root, and returns the
     * member list when the conversation is small enough to fan out on write.
     * A failure anywhere rolls all of it back: a failed send consumes nothing.
     *
     * Idempotent per (sender, clientMessageId): a retry hits the unique index,
     * rolls back, and gets the stored message.
     */
    async send(viewer: Viewer, id: string, body: string, clientId: string, options: SendOptions = {}): Promise<MessageRecord> {
      const conversationId = conversationIdArgument(id);
      const text = messageBody(body, config.maxBodyLength);
      const cmid = clientMessageId(clientId);
      const replyToSeq = options.replyToSeq == null ? null : seqArgument(options.replyToSeq, 'replyToSeq');
      const threadRootSeq = options.threadRootSeq == null ? null : seqArgument(options.threadRootSeq, 'threadRootSeq');
      await sendLimit.take(viewer.id);
      const messageId = newId();
      let rows: {
        outcome: string;
        sent_seq: number;
        sent_event_seq: number;
        sent_at: Date;
        members: number;
        member_ids: string[] | null;
        thread_root: Record<string, unknown> | null;
      }[];
      try {
        // One call, one round trip (migrations 20261203000100_event_functions, 20261203000300_sent_event_seq).
        // Queued here, not on the row lock, past two in flight (a hot conversation must not fill the pool).
        // Straight to node-postgres, prepared once per connection (src/db/client.ts says why).
        rows = await oneConversationAtATime(conversationId, () =>
          db.sql.query(SEND_STATEMENT, [conversationId, viewer.id, messageId, text, cmid, new Date(), events.memberListMax, replyToSeq, threadRootSeq], 'chat_send_message'),
        );
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        const existing = await stored(conversationId, viewer.id, cmid);
        // A retry returns what it stored; other content under the same key is a client bug, never a
        // silent success. (Once edited or deleted, the stored body is no longer what was sent: only
        // the reply and thread targets, which never change, are compared then.)
        const unchanged = existing && existing.editedAt === null && existing.deletedAt === null;
        if (existing && ((unchanged && existing.body !== text) || existing.replyToSeq !== replyToSeq || existing.threadRootSeq !== threadRootSeq)) {
          throw new ChatError(ErrorCode.IDEMPOTENCY_CONFLICT, 'clientMessageId was already used for a different message', { field: 'clientMessageId' });
        }
        if (existing) return existing;
        throw error;
      }
      const row = rows[0]!;
      if (row.outcome === 'reply_target_missing') throw badInput(`No message ${replyToSeq} in this conversation to reply to`, 'replyToSeq');
      if (row.outcome === 'thread_root_invalid') {
        throw badInput(`Message ${threadRootSeq} cannot start a thread (missing, deleted, or itself a thread reply)`, 'threadRootSeq');
      }
      if (row.outcome !== 'ok') {
        // Nothing was written: say why (this costs a query only on the failure path).
        const exists = await db.conversation.findUnique({ where: { id: conversationId }, select: { id: true } });
        throw exists ? forbidden('You are not a member of this conversation') : notFound(`Conversation ${conversationId} not found`);
      }
      const sender = { id: viewer.id, name: viewer.name };
      const message: MessageRecord = {
        id: messageId,
        conversationId,
        seq: row.sent_seq,
        sender,
        body: text,
        clientMessageId: cmid,
        createdAt: row.sent_at,
        eventSeq: row.sent_event_seq,
        editedAt: null,
        deletedAt: null,
        replyToSeq,
        threadRootSeq,
        threadReplyCount: 0,
        threadLastReplySeq: null,
        reactions: [],
      };
      let threadRoot: MessageRecord | null = null;
      if (row.thread_root) {
        const rootSenderId = row.thread_root.senderId as string;
        const names = await users.getMany([rootSenderId]);
        threadRoot = messageFromJson(row.thread_root, names.get(rootSenderId) ?? { id: rootSenderId, name: rootSenderId });
      }
      // Up in the members' lists, on their own shards (docs/citus.md, "The conversation list"); never throws.
      // Before the announcement, so that nothing is awaited after it: an
      // in-process fan-out starts on the next turn of the event loop, and an
      // await here would let the sender's answer wait behind it.
      await inbox.moved(conversationId, row.sent_at, viewer.id, row.member_ids);
      // Announced, not awaited: the sender never waits for fan-out, and a lost
      // announcement is repaired by the position check (docs/architecture.md).
      events.messageSent(message, threadRoot, { memberCount: row.members, memberIds: row.member_ids });
      return message;
    },

    /** Offline catch-up of messages: what came after `afterSeq`, ascending, paged (each in its current state). */
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

    /**
     * History paging backwards from `before` (exclusive; default: the
     * newest): the whole timeline, or with `threadRootSeq` one thread's replies.
     */
    async history(
      viewer: Viewer,
      id: string,
      before: number | null | undefined,
      last: number | null | undefined,
      threadRootSeq?: number | null,
    ): Promise<MessageHistoryPage> {
      const conversationId = conversationIdArgument(id);
      const take = pageSize(last, 'last', 50, 100);
      if (before != null) seqArgument(before, 'before');
      if (threadRootSeq != null) seqArgument(threadRootSeq, 'threadRootSeq');
      await requireMember(db, conversationId, viewer.id);
      const conditions = [Prisma.sql`m.conversation_id = ${conversationId}::uuid`];
      if (before != null) conditions.push(Prisma.sql`m.seq < ${before}`);
      if (threadRootSeq != null) conditions.push(Prisma.sql`m.thread_root_seq = ${threadRootSeq}`);
      const rows = await read(Prisma.join(conditions, ' AND '), Prisma.sql`m.seq DESC`, take + 1);
      return { messages: rows.slice(0, take).reverse(), hasMore: rows.length > take };
    },

    /** The newest messages of several conversations (for Conversation.lastMessage), keyed by conversation. */
    async latest(conversations: readonly { id: string; lastSeq: number }[]): Promise<Map<string, MessageRecord>> {
      const wanted = conversations.filter((c) => c.lastSeq > 0);
      if (wanted.length === 0) return new Map();
      const found = await bySeq(wanted.map((c) => ({ conversationId: c.id, seq: c.lastSeq })));
      return new Map([...found.values()].map((m) => [m.conversationId, m]));
    },

    bySeq,
    range,
    withSenders,
  };
}
