import DataLoader from 'dataloader';
import type { Database } from '../db/client.js';
import { GroupCommit } from '../db/group-commit.js';
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
  // On nearly every operation's path: one co-located join straight to node-postgres
  // (src/db/client.ts says why), filtered by the conversation id on both tables.
  const [member] = await db.sql.query<MemberRow>(memberSelect('user_id = $2'), [conversationId, userId], 'chat_require_member');
  return member ? toView(member, member) : notMember(db, conversationId);
}

type MemberRow = ConversationRow & { userId: string; role: string; lastReadSeq: number };

/** The conversation and the membership of the users `members` picks among its members (`$1`: the conversation id). */
function memberSelect(members: string): string {
  return `SELECT c.id::text AS id, c.kind::text AS kind, c.title, c.last_seq AS "lastSeq", c.last_event_seq AS "lastEventSeq",
                 c.member_count AS "memberCount", c.created_at AS "createdAt", c.last_message_at AS "lastMessageAt",
                 c.active_at AS "activeAt", m.user_id AS "userId", m.role::text AS role, m.last_read_seq AS "lastReadSeq"
            FROM (SELECT conversation_id, user_id, role, last_read_seq FROM conversation_members WHERE conversation_id = $1 AND ${members}) m
            JOIN conversations c ON c.id = m.conversation_id
           WHERE c.id = $1`;
}

/** Why a user is not given the conversation: NOT_FOUND if it does not exist, FORBIDDEN if they are not in it. */
async function notMember(db: Database, conversationId: string): Promise<never> {
  const exists = await db.conversation.findUnique({ where: { id: conversationId }, select: { id: true } });
  if (exists) throw forbidden('You are not a member of this conversation');
  throw notFound(`Conversation ${conversationId} not found`);
}

/** Users per statement at most. */
const MEMBERS_PER_STATEMENT = 1000;

/**
 * `requireMember` for subscription starts, which come in bursts: after a
 * restart or a network blip thousands of members of one large group
 * resubscribe at once. Checks that queue while one is in flight go together
 * (GroupCommit), one statement per conversation (`conversation_id = $1 AND
 * user_id = ANY($2)`: still one shard on Citus); a lone check is the same
 * statement as `requireMember`.
 */
export class MemberChecks {
  private readonly checks: DataLoader<{ conversationId: string; userId: string }, MemberRow | undefined>;
  private readonly commit = new GroupCommit();

  constructor(private readonly db: Database) {
    this.checks = new DataLoader((keys) => this.commit.run(() => this.read(keys)), { cache: false, maxBatchSize: MEMBERS_PER_STATEMENT, batchScheduleFn: this.commit.schedule });
  }

  /** As `requireMember`: the conversation as the member sees it, or NOT_FOUND / FORBIDDEN. */
  async require(conversationId: string, userId: string): Promise<ConversationView> {
    const member = await this.checks.load({ conversationId, userId });
    return member ? toView(member, member) : notMember(this.db, conversationId);
  }

  private async read(keys: readonly { conversationId: string; userId: string }[]): Promise<(MemberRow | undefined)[]> {
    const byConversation = new Map<string, Set<string>>();
    for (const { conversationId, userId } of keys) {
      const users = byConversation.get(conversationId) ?? new Set();
      byConversation.set(conversationId, users.add(userId));
    }
    const found = new Map<string, MemberRow>();
    await Promise.all(
      [...byConversation].map(async ([conversationId, users]) => {
        const rows =
          users.size === 1
            ? await this.db.sql.query<MemberRow>(memberSelect('user_id = $2'), [conversationId, ...users], 'chat_require_member')
            : await this.db.sql.query<MemberRow>(memberSelect('user_id = ANY($2::text[])'), [conversationId, [...users]], 'chat_require_members');
        for (const row of rows) found.set(`${conversationId}\n${row.userId}`, row);
      }),
    );
    return keys.map(({ conversationId, userId }) => found.get(`${conversationId}\n${userId}`));
  }
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
