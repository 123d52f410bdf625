import type { Viewer } from '../auth.js';
import type { Database } from '../db/client.js';
import { badInput, forbidden, notFound } from '../errors.js';
import { bumpInboxVersions, CONVERSATION_WITHOUT_KIND, requireMember, toView } from './access.js';
import { MAX_MEMBERS_PER_CALL } from './conversations.js';
import type { ChatEvents } from './events.js';
import type { ConversationView, DepartureReason } from './records.js';
import type { UserService } from './users.js';
import { conversationIdArgument, seqArgument, userIdArgument, userIdList } from './validate.js';

type Tx = Parameters<Parameters<Database['$transaction']>[0]>[0];

/**
 * Locks the conversation row for the rest of the transaction. Sends take the
 * same lock (they increment last_seq), so a membership change and a send are
 * ordered: the `lastSeq` read here is exactly the last message before the change.
 */
async function lockConversation(tx: Tx, id: string) {
  const rows = await tx.$queryRaw<{ kind: string; last_seq: number }[]>`
    SELECT kind::text AS kind, last_seq FROM conversations WHERE id = ${id}::uuid FOR UPDATE`;
  if (rows.length === 0) throw notFound(`Conversation ${id} not found`);
  return { kind: rows[0]!.kind, lastSeq: rows[0]!.last_seq };
}

async function memberRole(tx: Tx, conversationId: string, userId: string) {
  const row = await tx.conversationMember.findUnique({
    where: { conversationId_userId: { conversationId, userId } },
    select: { role: true },
  });
  return row?.role ?? null;
}

export type MembershipService = ReturnType<typeof createMembershipService>;

export function createMembershipService(db: Database, users: UserService, events: ChatEvents) {
  async function depart(viewer: Viewer, conversationId: string, userId: string, reason: DepartureReason) {
    const result = await db.$transaction(async (tx) => {
      const conversation = await lockConversation(tx, conversationId);
      const viewerRole = await memberRole(tx, conversationId, viewer.id);
      if (!viewerRole) throw forbidden('You are not a member of this conversation');
      if (conversation.kind !== 'GROUP') throw badInput('Members of a direct conversation cannot change', 'conversationId');
      if (userId !== viewer.id && viewerRole !== 'OWNER') throw forbidden('Only the group owner can remove members');
      const targetRole = userId === viewer.id ? viewerRole : await memberRole(tx, conversationId, userId);
      if (!targetRole) throw notFound(`User ${userId} is not a member of this conversation`);

      // deleteMany / updateMany send no RETURNING, so no `"role"::text`, which Citus refuses (docs/citus.md).
      await tx.conversationMember.deleteMany({ where: { conversationId, userId } });
      await tx.userConversation.deleteMany({ where: { userId, conversationId } });
      await bumpInboxVersions(tx, [userId]);
      const updated = await tx.conversation.update({
        where: { id: conversationId },
        data: { memberCount: { decrement: 1 }, activeAt: new Date() },
        select: CONVERSATION_WITHOUT_KIND,
      });
      if (targetRole === 'OWNER') {
        // A group keeps an owner while it has members: the longest-standing member inherits.
        const heir = await tx.conversationMember.findFirst({
          where: { conversationId },
          orderBy: [{ joinedAt: 'asc' }, { userId: 'asc' }],
        });
        if (heir) {
          await tx.conversationMember.updateMany({
            where: { conversationId, userId: heir.userId },
            data: { role: 'OWNER' },
          });
        }
      }
      return { ...updated, kind: conversation.kind };
    });
    events.membersLeft(conversationId, [userId], reason, result.memberCount);
    return result;
  }

  return {
    async addMembers(viewer: Viewer, id: string, userIds: readonly string[]): Promise<ConversationView> {
      const conversationId = conversationIdArgument(id);
      const candidates = userIdList(userIds, 'userIds', MAX_MEMBERS_PER_CALL);
      if (candidates.length === 0) throw badInput('userIds must name at least one user', 'userIds');
      await users.requireAll(candidates);
      const { row, joined, lastSeq, viewerMember } = await db.$transaction(async (tx) => {
        const conversation = await lockConversation(tx, conversationId);
        const viewerRole = await memberRole(tx, conversationId, viewer.id);
        if (!viewerRole) throw forbidden('You are not a member of this conversation');
        if (conversation.kind !== 'GROUP') throw badInput('Members of a direct conversation cannot change', 'conversationId');
        const created = await tx.conversationMember.createManyAndReturn({
          // New members start caught up: the history is theirs to read, not unread.
          data: candidates.map((userId) => ({ conversationId, userId, lastReadSeq: conversation.lastSeq })),
          skipDuplicates: true,
          select: { userId: true },
        });
        const joinedIds = created.map((member) => member.userId);
        if (joinedIds.length > 0) {
          await tx.userConversation.createMany({
            data: joinedIds.map((userId) => ({ userId, conversationId })),
            skipDuplicates: true,
          });
          await bumpInboxVersions(tx, joinedIds);
        }
        const updated = await tx.conversation.update({
          where: { id: conversationId },
          data: { memberCount: { increment: joinedIds.length }, ...(joinedIds.length > 0 && { activeAt: new Date() }) },
          select: CONVERSATION_WITHOUT_KIND,
        });
        const member = await tx.conversationMember.findUniqueOrThrow({
          where: { conversationId_userId: { conversationId, userId: viewer.id } },
        });
        return { row: { ...updated, kind: conversation.kind }, joined: joinedIds, lastSeq: conversation.lastSeq, viewerMember: member };
      });
      if (joined.length > 0) events.membersJoined(conversationId, joined, lastSeq, row.memberCount);
      return toView(row, viewerMember);
    },

    /** The owner removes someone else (leaving is `leave`). Returns the conversation as the viewer now sees it. */
    async removeMember(viewer: Viewer, id: string, userId: string): Promise<ConversationView> {
      const conversationId = conversationIdArgument(id);
      const target = userIdArgument(userId);
      if (target === viewer.id) throw badInput('To remove yourself, use leaveConversation', 'userId');
      await depart(viewer, conversationId, target, 'REMOVED');
      return requireMember(db, conversationId, viewer.id);
    },

    async leave(viewer: Viewer, id: string): Promise<string> {
      const conversationId = conversationIdArgument(id);
      await depart(viewer, conversationId, viewer.id, 'LEFT');
      return conversationId;
    },

    /** Moves the viewer's read position forward to `seq` (never backward). */
    async markRead(viewer: Viewer, id: string, seq: number): Promise<ConversationView> {
      const conversationId = conversationIdArgument(id);
      const position = seqArgument(seq, 'seq');
      const view = await requireMember(db, conversationId, viewer.id);
      if (position > view.lastSeq) throw badInput(`seq ${position} is beyond the last message (${view.lastSeq})`, 'seq');
      if (position <= view.viewerLastReadSeq) return view;
      await db.conversationMember.updateMany({
        where: { conversationId, userId: viewer.id, lastReadSeq: { lt: position } },
        data: { lastReadSeq: position },
      });
      return { ...view, viewerLastReadSeq: position };
    },
  };
}
