import type { Viewer } from '../auth.js';
import type { Database } from '../db/client.js';
import { badInput, forbidden, notFound } from '../errors.js';
import { bumpInboxVersions, CONVERSATION_WITHOUT_KIND, requireMember, toView } from './access.js';
import type { ChatEvents } from './events.js';
import { directConversationId, newId } from './ids.js';
import type { ConversationView, MemberRecord } from './records.js';
import type { UserService } from './users.js';
import { conversationIdArgument, groupTitle, pageSize, userIdArgument, userIdList } from './validate.js';

/** Most users one createGroup or addMembers call may name. */
export const MAX_MEMBERS_PER_CALL = 1000;

export interface Page<T> {
  items: T[];
  /** One opaque cursor per item: pass as `after` to continue after that item. */
  cursors: string[];
  hasNextPage: boolean;
  endCursor: string | null;
}

function encodeCursor(parts: unknown[]): string {
  return Buffer.from(JSON.stringify(parts)).toString('base64url');
}

function decodeInboxCursor(cursor: string): { activeAt: Date; id: string } {
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [string, string];
    const activeAt = new Date(at);
    if (typeof id !== 'string' || Number.isNaN(activeAt.getTime())) throw new Error('bad cursor');
    return { activeAt, id };
  } catch {
    throw badInput('after is not a cursor this API issued', 'after');
  }
}

export type ConversationService = ReturnType<typeof createConversationService>;

export function createConversationService(db: Database, users: UserService, events: ChatEvents) {
  return {
    async get(viewer: Viewer, id: string): Promise<ConversationView> {
      return requireMember(db, conversationIdArgument(id), viewer.id);
    },

    /**
     * The viewer's conversations, most recently active first. The page is
     * chosen on the viewer's own shard: the inbox index (user_conversations,
     * distributed by user) keeps each member's copy of the activity, in an
     * index in list order, so this is one indexed read however many
     * conversations the viewer has. Only that page is then read from the
     * conversation shards, by primary key (docs/citus.md, "The conversation list").
     */
    async list(viewer: Viewer, first: number | null | undefined, after: string | null | undefined): Promise<Page<ConversationView>> {
      const take = pageSize(first, 'first', 20, 100);
      const cursor = after ? decodeInboxCursor(after) : null;
      const links = await db.userConversation.findMany({
        where: {
          userId: viewer.id,
          ...(cursor && {
            OR: [{ activeAt: { lt: cursor.activeAt } }, { activeAt: cursor.activeAt, conversationId: { lt: cursor.id } }],
          }),
        },
        orderBy: [{ activeAt: 'desc' }, { conversationId: 'desc' }],
        take: take + 1,
        select: { conversationId: true, activeAt: true },
      });
      const page = links.slice(0, take);
      if (page.length === 0) return { items: [], cursors: [], hasNextPage: false, endCursor: null };
      const ids = page.map((link) => link.conversationId);
      const [rows, memberships] = await Promise.all([
        db.conversation.findMany({ where: { id: { in: ids } } }),
        db.conversationMember.findMany({
          where: { userId: viewer.id, conversationId: { in: ids } },
          select: { conversationId: true, role: true, lastReadSeq: true },
        }),
      ]);
      const byId = new Map(rows.map((row) => [row.id, row]));
      const byConversation = new Map(memberships.map((m) => [m.conversationId, m]));
      const kept = page.filter((link) => byId.has(link.conversationId) && byConversation.has(link.conversationId)); // left between the reads
      const cursorOf = (link: (typeof page)[number]) => encodeCursor([link.activeAt.toISOString(), link.conversationId]);
      return {
        items: kept.map((link) => toView(byId.get(link.conversationId)!, byConversation.get(link.conversationId)!)),
        cursors: kept.map(cursorOf),
        hasNextPage: links.length > take,
        endCursor: cursorOf(page[page.length - 1]!),
      };
    },

    /** Members ordered by user id, paged by user id. */
    async members(viewer: Viewer, conversationId: string, first: number | null | undefined, after: string | null | undefined): Promise<Page<MemberRecord>> {
      await requireMember(db, conversationId, viewer.id);
      const take = pageSize(first, 'first', 50, 500);
      const rows = await db.conversationMember.findMany({
        where: { conversationId, ...(after ? { userId: { gt: after } } : {}) },
        orderBy: { userId: 'asc' },
        take: take + 1,
      });
      const page = rows.slice(0, take);
      const names = await users.getMany(page.map((row) => row.userId));
      return {
        items: page.map((row) => ({
          conversationId,
          user: names.get(row.userId) ?? { id: row.userId, name: row.userId },
          role: row.role,
          joinedAt: row.joinedAt,
          lastReadSeq: row.lastReadSeq,
        })),
        cursors: page.map((row) => row.userId),
        hasNextPage: rows.length > take,
        endCursor: page.length > 0 ? page[page.length - 1]!.userId : null,
      };
    },

    /** Idempotent: a pair of users always gets the same conversation (its id derives from the pair). */
    async startDirect(viewer: Viewer, otherUserId: string): Promise<ConversationView> {
      const otherId = userIdArgument(otherUserId);
      if (otherId === viewer.id) throw badInput('A direct conversation needs another user', 'userId');
      await users.requireAll([otherId]);
      const id = directConversationId(viewer.id, otherId);
      const created = await db.$transaction(async (tx) => {
        const inserted = await tx.conversation.createMany({
          data: [{ id, kind: 'DIRECT', memberCount: 2 }],
          skipDuplicates: true,
        });
        if (inserted.count === 0) return false;
        const pair = [viewer.id, otherId];
        await tx.conversationMember.createMany({ data: pair.map((userId) => ({ conversationId: id, userId })) });
        await tx.userConversation.createMany({ data: pair.map((userId) => ({ conversationId: id, userId })) });
        await bumpInboxVersions(tx, pair);
        return true;
      });
      if (created) events.membersJoined(id, [viewer.id, otherId], 0, 0, 2);
      return requireMember(db, id, viewer.id);
    },

    async createGroup(viewer: Viewer, title: string, memberIds: readonly string[]): Promise<ConversationView> {
      const name = groupTitle(title);
      const others = userIdList(memberIds, 'memberIds', MAX_MEMBERS_PER_CALL).filter((id) => id !== viewer.id);
      await users.requireAll(others);
      const id = newId();
      const everyone = [viewer.id, ...others];
      const row = await db.$transaction(async (tx) => {
        const conversation = await tx.conversation.create({
          data: { id, kind: 'GROUP', title: name, memberCount: everyone.length },
          select: CONVERSATION_WITHOUT_KIND,
        });
        await tx.conversationMember.createMany({
          data: everyone.map((userId) => ({ conversationId: id, userId, role: userId === viewer.id ? 'OWNER' : 'MEMBER' })),
        });
        await tx.userConversation.createMany({ data: everyone.map((userId) => ({ conversationId: id, userId })) });
        await bumpInboxVersions(tx, everyone);
        return { ...conversation, kind: 'GROUP' };
      });
      events.membersJoined(id, everyone, 0, 0, everyone.length);
      return toView(row, { role: 'OWNER', lastReadSeq: 0 });
    },

    /** A member renames a group: one event of its log (chat_rename). */
    async rename(viewer: Viewer, id: string, title: string): Promise<ConversationView> {
      const conversationId = conversationIdArgument(id);
      const name = groupTitle(title);
      const [row] = await db.$queryRaw<{ outcome: string; event_seq: number | null; members: number | null; member_ids: string[] | null }[]>`
        SELECT outcome, event_seq, members, member_ids FROM chat_rename(${conversationId}::uuid, ${viewer.id}, ${name}, ${events.memberListMax}::integer)`;
      switch (row!.outcome) {
        case 'no_conversation':
          throw notFound(`Conversation ${conversationId} not found`);
        case 'not_member':
          throw forbidden('You are not a member of this conversation');
        case 'not_group':
          throw badInput('Only a group has a title', 'conversationId');
        case 'ok':
          events.changed(
            { kind: 'renamed', conversationId, eventSeq: row!.event_seq!, title: name, catchUp: false },
            { memberCount: row!.members!, memberIds: row!.member_ids },
          );
      }
      return requireMember(db, conversationId, viewer.id);
    },
  };
}
