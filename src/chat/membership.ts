import type { Viewer } from '../auth.js';
import type { Database } from '../db/client.js';
import { badInput, forbidden, notFound } from '../errors.js';
import { bumpInboxVersions, CONVERSATION_WITHOUT_KIND, requireMember, toView } from './access.js';
import { MAX_MEMBERS_PER_CALL } from './conversations.js';
import type { Audience, ChatEvents } from './events.js';
import type { ConversationView, DepartureReason, UserRecord } from './records.js';
import type { UserService } from './users.js';
import { conversationIdArgument, seqArgument, userIdArgument, userIdList } from './validate.js';

type Tx = Parameters<Parameters<Database['$transaction']>[0]>[0];

/**
 * Locks the conversation row for the rest of the transaction. Sends take the
 * same lock (they take the next seq and event number), so a membership change
 * and a send are ordered: the positions read here are exactly the last
 * message and event before the change.
 */
async function lockConversation(tx: Tx, id: string) {
  const rows = await tx.$queryRaw<{ kind: string; last_seq: number; last_event_seq: number }[]>`
    SELECT kind::text AS kind, last_seq, last_event_seq FROM conversations WHERE id = ${id}::uuid FOR UPDATE`;
  if (rows.length === 0) throw notFound(`Conversation ${id} not found`);
  return { kind: rows[0]!.kind, lastSeq: rows[0]!.last_seq, lastEventSeq: rows[0]!.last_event_seq };
}

/** Takes the next `count` event numbers of a locked conversation; returns the last. */
async function takeEvents(tx: Tx, id: string, count: number): Promise<number> {
  const rows = await tx.$queryRaw<{ last_event_seq: number }[]>`
    UPDATE conversations SET last_event_seq = last_event_seq + ${count}::integer WHERE id = ${id}::uuid RETURNING last_event_seq`;
  return rows[0]!.last_event_seq;
}

async function memberRole(tx: Tx, conversationId: string, userId: string) {
  const row = await tx.conversationMember.findUnique({
    where: { conversationId_userId: { conversationId, userId } },
    select: { role: true },
  });
  return row?.role ?? null;
}

/** Who hears a conversation's events now: its members (the list when small enough to fan out per member). */
async function audienceOf(tx: Tx, conversationId: string, memberCount: number, listMax: number): Promise<Audience> {
  if (memberCount > listMax) return { memberCount, memberIds: null };
  const rows = await tx.conversationMember.findMany({ where: { conversationId }, select: { userId: true } });
  return { memberCount, memberIds: rows.map((row) => row.userId) };
}

export type MembershipService = ReturnType<typeof createMembershipService>;

/**
 * Membership changes and read positions. Each change takes event numbers of
 * the conversation's log in its transaction (docs/architecture.md, "The event
 * log"), stamps what it touched, bumps the inbox versions of the users it
 * concerns, and is announced after commit: to the conversation (members see
 * who joined or left) and to each concerned user (their inbox follows).
 */
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

      const eventSeq = await takeEvents(tx, conversationId, 1);
      // deleteMany / updateMany send no RETURNING, so no `"role"::text`, which Citus refuses (docs/citus.md).
      await tx.conversationMember.deleteMany({ where: { conversationId, userId } });
      await tx.userConversation.deleteMany({ where: { userId, conversationId } });
      await bumpInboxVersions(tx, [userId]);
      const updated = await tx.conversation.update({
        where: { id: conversationId },
        data: { memberCount: { decrement: 1 }, activeAt: new Date() },
        select: CONVERSATION_WITHOUT_KIND,
      });
      let newOwnerId: string | null = null;
      if (targetRole === 'OWNER') {
        // A group keeps an owner while it has members: the longest-standing member inherits.
        const heir = await tx.conversationMember.findFirst({
          where: { conversationId },
          orderBy: [{ joinedAt: 'asc' }, { userId: 'asc' }],
        });
        if (heir) {
          newOwnerId = heir.userId;
          await tx.conversationMember.updateMany({
            where: { conversationId, userId: heir.userId },
            data: { role: 'OWNER' },
          });
        }
      }
      const departure = { eventSeq, reason, departedAt: new Date(), newOwnerId };
      await tx.conversationDeparture.upsert({
        where: { conversationId_userId: { conversationId, userId } },
        create: { conversationId, userId, ...departure },
        update: departure,
      });
      const audience = await audienceOf(tx, conversationId, updated.memberCount, events.memberListMax);
      return { updated, eventSeq, newOwnerId, audience };
    });
    const names = await users.getMany(result.newOwnerId ? [userId, result.newOwnerId] : [userId]);
    const user = (id: string): UserRecord => names.get(id) ?? { id, name: id };
    events.membersLeft(conversationId, [userId], reason, result.updated.memberCount);
    events.changed(
      {
        kind: 'member',
        conversationId,
        eventSeq: result.eventSeq,
        action: reason,
        user: user(userId),
        role: null,
        lastReadSeq: null,
        newOwner: result.newOwnerId ? user(result.newOwnerId) : null,
        catchUp: false,
      },
      result.audience,
    );
    return result.updated;
  }

  return {
    async addMembers(viewer: Viewer, id: string, userIds: readonly string[]): Promise<ConversationView> {
      const conversationId = conversationIdArgument(id);
      const candidates = userIdList(userIds, 'userIds', MAX_MEMBERS_PER_CALL);
      if (candidates.length === 0) throw badInput('userIds must name at least one user', 'userIds');
      await users.requireAll(candidates);
      const { row, joined, conversation, viewerMember, lastEventSeq, audience } = await db.$transaction(async (tx) => {
        const conversation = await lockConversation(tx, conversationId);
        const viewerRole = await memberRole(tx, conversationId, viewer.id);
        if (!viewerRole) throw forbidden('You are not a member of this conversation');
        if (conversation.kind !== 'GROUP') throw badInput('Members of a direct conversation cannot change', 'conversationId');
        const existing = await tx.conversationMember.findMany({
          where: { conversationId, userId: { in: candidates } },
          select: { userId: true },
        });
        const present = new Set(existing.map((m) => m.userId));
        const joinedIds = candidates.filter((userId) => !present.has(userId));
        // One event per member who joins, in the order given.
        const lastEventSeq = joinedIds.length > 0 ? await takeEvents(tx, conversationId, joinedIds.length) : conversation.lastEventSeq;
        const firstEventSeq = lastEventSeq - joinedIds.length + 1;
        if (joinedIds.length > 0) {
          await tx.conversationMember.createMany({
            // New members start caught up: the history is theirs to read, not unread.
            data: joinedIds.map((userId, i) => ({ conversationId, userId, lastReadSeq: conversation.lastSeq, memberEventSeq: firstEventSeq + i })),
          });
          await tx.userConversation.createMany({
            data: joinedIds.map((userId) => ({ userId, conversationId })),
            skipDuplicates: true,
          });
          await tx.conversationDeparture.deleteMany({ where: { conversationId, userId: { in: joinedIds } } });
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
        const audience = await audienceOf(tx, conversationId, updated.memberCount, events.memberListMax);
        return { row: { ...updated, kind: conversation.kind }, joined: joinedIds, conversation, viewerMember: member, lastEventSeq, audience };
      });
      if (joined.length > 0) {
        // Each new member's events start after their own join.
        const firstEventSeq = lastEventSeq - joined.length + 1;
        const names = await users.getMany(joined);
        joined.forEach((userId, i) => {
          events.membersJoined(conversationId, [userId], conversation.lastSeq, firstEventSeq + i, row.memberCount);
          events.changed(
            {
              kind: 'member',
              conversationId,
              eventSeq: firstEventSeq + i,
              action: 'JOINED',
              user: names.get(userId) ?? { id: userId, name: userId },
              role: 'MEMBER',
              lastReadSeq: conversation.lastSeq,
              newOwner: null,
              catchUp: false,
            },
            audience,
          );
        });
      }
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

    /**
     * Moves the viewer's read position forward to `seq` (never backward): a
     * read receipt, one event of the log. One call of chat_mark_read.
     */
    async markRead(viewer: Viewer, id: string, seq: number): Promise<ConversationView> {
      const conversationId = conversationIdArgument(id);
      const position = seqArgument(seq, 'seq');
      const [row] = await db.$queryRaw<
        { outcome: string; event_seq: number | null; last_read_seq: number | null; last_seq: number | null; members: number | null; member_ids: string[] | null }[]
      >`SELECT outcome, event_seq, last_read_seq, last_seq, members, member_ids
          FROM chat_mark_read(${conversationId}::uuid, ${viewer.id}, ${position}::integer, ${events.memberListMax}::integer)`;
      switch (row!.outcome) {
        case 'no_conversation':
          throw notFound(`Conversation ${conversationId} not found`);
        case 'not_member':
          throw forbidden('You are not a member of this conversation');
        case 'beyond':
          throw badInput(`seq ${position} is beyond the last message (${row!.last_seq})`, 'seq');
      }
      if (row!.outcome === 'ok') {
        events.changed(
          {
            kind: 'receipt',
            conversationId,
            eventSeq: row!.event_seq!,
            user: { id: viewer.id, name: viewer.name },
            lastReadSeq: row!.last_read_seq!,
            catchUp: false,
          },
          { memberCount: row!.members!, memberIds: row!.member_ids },
        );
      }
      return requireMember(db, conversationId, viewer.id);
    },
  };
}
