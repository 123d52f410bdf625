import type { Database } from '../db/client.js';
import { forbidden, notFound } from '../errors.js';
import type { ConversationRecord, ConversationView, MemberRole } from './records.js';

type ConversationRow = {
  id: string;
  kind: string;
  title: string | null;
  lastSeq: number;
  lastEventSeq: number;
  memberCount: number;
  createdAt: Date;
  lastMessageAt: Date | null;
  activeAt: Date;
};

export function toConversation(row: ConversationRow): ConversationRecord {
  return {
    id: row.id,
    kind: row.kind as ConversationRecord['kind'],
    title: row.title,
    lastSeq: row.lastSeq,
    lastEventSeq: row.lastEventSeq,
    memberCount: row.memberCount,
    createdAt: row.createdAt,
    lastMessageAt: row.lastMessageAt,
    activeAt: row.activeAt,
  };
}

export function toView(row: ConversationRow, member: { role: string; lastReadSeq: number }): ConversationView {
  return { ...toConversation(row), viewerRole: member.role as MemberRole, viewerLastReadSeq: member.lastReadSeq };
}

/**
 * The one authorization rule of the API: only members see or touch a
 * conversation. Returns the conversation as the member sees it; otherwise
 * NOT_FOUND (no such conversation) or FORBIDDEN (not a member). One routed
 * query on Citus: members and conversations are co-located.
 */
export async function requireMember(db: Database, conversationId: string, userId: string): Promise<ConversationView> {
  // On nearly every operation's path (and every subscription start): one co-located join straight
  // to node-postgres (src/db/client.ts says why), filtered by the conversation id on both tables.
  const [member] = await db.sql.query<ConversationRow & { role: string; lastReadSeq: number }>(
    `SELECT c.id::text AS id, c.kind::text AS kind, c.title, c.last_seq AS "lastSeq", c.last_event_seq AS "lastEventSeq",
            c.member_count AS "memberCount", c.created_at AS "createdAt", c.last_message_at AS "lastMessageAt",
            c.active_at AS "activeAt", m.role::text AS role, m.last_read_seq AS "lastReadSeq"
       FROM (SELECT conversation_id, role, last_read_seq FROM conversation_members WHERE conversation_id = $1 AND user_id = $2) m
       JOIN conversations c ON c.id = m.conversation_id
      WHERE c.id = $1`,
    [conversationId, userId],
    'chat_require_member',
  );
  if (member) return toView(member, member);
  const exists = await db.conversation.findUnique({ where: { id: conversationId }, select: { id: true } });
  if (exists) throw forbidden('You are not a member of this conversation');
  throw notFound(`Conversation ${conversationId} not found`);
}

type Tx = Parameters<Parameters<Database['$transaction']>[0]>[0];

/**
 * Every column of a conversation but its enum `kind`, for writes that return
 * the row. Prisma returns an enum column as `"kind"::text`, and Citus refuses
 * that cast (enum output is not IMMUTABLE) in the RETURNING clause of a write
 * to a distributed table: writes select this, and callers supply the kind they
 * already know (docs/citus.md, "Statements Citus refuses").
 */
export const CONVERSATION_WITHOUT_KIND = {
  id: true,
  title: true,
  lastSeq: true,
  lastEventSeq: true,
  memberCount: true,
  createdAt: true,
  lastMessageAt: true,
  activeAt: true,
} as const;

/**
 * Records, in the transaction that changes them, that these users'
 * conversations changed: instances holding their live subscriptions notice
 * it within the delivery bound even if the broker loses the event
 * (docs/architecture.md, "Position check").
 */
export async function bumpInboxVersions(tx: Tx, userIds: readonly string[]): Promise<void> {
  if (userIds.length === 0) return;
  await tx.user.updateMany({ where: { id: { in: [...userIds] } }, data: { inboxVersion: { increment: 1 } } });
}
