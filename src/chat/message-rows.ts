import { Prisma } from '../generated/prisma/client.js';
import type { MessageRecord, ReactionCount, UserRecord } from './records.js';

/**
 * How messages are read: every column a MessageRecord needs, with its
 * reaction summary in the same statement (a correlated subquery on the
 * co-located reactions table, so still one single-shard statement on Citus).
 * Use as `SELECT ${MESSAGE_COLUMNS} FROM messages m WHERE …`.
 */
export const MESSAGE_COLUMNS = Prisma.sql`
  m.id::text AS id, m.conversation_id::text AS conversation_id, m.seq, m.sender_id, m.body, m.client_message_id,
  m.created_at, m.event_seq, m.sent_event_seq, m.edited_at, m.deleted_at, m.reply_to_seq, m.thread_root_seq, m.thread_reply_count,
  m.thread_last_reply_seq,
  (SELECT json_agg(json_build_object('reaction', r.reaction, 'count', r.n) ORDER BY r.first_at, r.reaction)
     FROM (SELECT x.reaction, count(*)::integer AS n, min(x.created_at) AS first_at
             FROM message_reactions x
            WHERE x.conversation_id = m.conversation_id AND x.message_seq = m.seq
            GROUP BY x.reaction) r) AS reactions`;

export interface MessageRow {
  id: string;
  conversation_id: string;
  seq: number;
  sender_id: string;
  body: string;
  client_message_id: string;
  created_at: Date;
  event_seq: number;
  sent_event_seq: number | null;
  edited_at: Date | null;
  deleted_at: Date | null;
  reply_to_seq: number | null;
  thread_root_seq: number | null;
  thread_reply_count: number;
  thread_last_reply_seq: number | null;
  reactions: ReactionCount[] | null;
}

/** A row of MESSAGE_COLUMNS as a record, given the sender. */
export function toMessage(row: MessageRow, sender: UserRecord): MessageRecord {
  return {
    id: row.id,
    conversationId: row.conversation_id,
    seq: row.seq,
    sender,
    body: row.body,
    clientMessageId: row.client_message_id,
    createdAt: row.created_at,
    eventSeq: row.event_seq,
    editedAt: row.edited_at,
    deletedAt: row.deleted_at,
    replyToSeq: row.reply_to_seq,
    threadRootSeq: row.thread_root_seq,
    threadReplyCount: row.thread_reply_count,
    threadLastReplySeq: row.thread_last_reply_seq,
    reactions: row.reactions ?? [],
  };
}

/** The JSON of chat_message_json (what the write functions return) as a record. */
export function messageFromJson(json: Record<string, unknown>, sender: UserRecord): MessageRecord {
  const date = (value: unknown) => (value == null ? null : new Date(value as string));
  return {
    id: json.id as string,
    conversationId: json.conversationId as string,
    seq: json.seq as number,
    sender,
    body: json.body as string,
    clientMessageId: json.clientMessageId as string,
    createdAt: new Date(json.createdAt as string),
    eventSeq: json.eventSeq as number,
    editedAt: date(json.editedAt),
    deletedAt: date(json.deletedAt),
    replyToSeq: (json.replyToSeq as number | null) ?? null,
    threadRootSeq: (json.threadRootSeq as number | null) ?? null,
    threadReplyCount: (json.threadReplyCount as number) ?? 0,
    threadLastReplySeq: (json.threadLastReplySeq as number | null) ?? null,
    reactions: (json.reactions as ReactionCount[]) ?? [],
  };
}
