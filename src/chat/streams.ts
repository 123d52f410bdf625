import type { Viewer } from '../auth.js';
import type { Database } from '../db/client.js';
import { badInput } from '../errors.js';
import { MemberChecks } from './access.js';
import { conversationIdArgument, seqArgument } from './validate.js';

export interface StreamStart {
  conversationId: string;
  memberCount: number;
  lastSeq: number;
  lastEventSeq: number;
}

/** What subscriptions read from the database: authorization, starting points, membership. */
export function createStreamService(db: Database) {
  const memberChecks = new MemberChecks(db);
  return {
    /** Authorizes a conversation subscription and checks its cursor. */
    async conversation(viewer: Viewer, id: string, afterSeq: number | null | undefined): Promise<StreamStart & { cursor: number }> {
      const conversationId = conversationIdArgument(id);
      if (afterSeq != null) seqArgument(afterSeq, 'afterSeq');
      const view = await memberChecks.require(conversationId, viewer.id);
      if (afterSeq != null && afterSeq > view.lastSeq) {
        throw badInput(`afterSeq ${afterSeq} is beyond the last message (${view.lastSeq})`, 'afterSeq');
      }
      return { conversationId, memberCount: view.memberCount, lastSeq: view.lastSeq, lastEventSeq: view.lastEventSeq, cursor: afterSeq ?? view.lastSeq };
    },

    /** Every conversation the user is in, with where each stands now. */
    async inbox(userId: string): Promise<StreamStart[]> {
      const links = await db.userConversation.findMany({ where: { userId }, select: { conversationId: true } });
      if (links.length === 0) return [];
      const rows = await db.conversation.findMany({
        where: { id: { in: links.map((link) => link.conversationId) } },
        select: { id: true, memberCount: true, lastSeq: true, lastEventSeq: true },
      });
      return rows.map((row) => ({ conversationId: row.id, memberCount: row.memberCount, lastSeq: row.lastSeq, lastEventSeq: row.lastEventSeq }));
    },

    /** Where each conversation stands now: the position check's read (one statement per batch). */
    async positions(conversationIds: readonly string[]): Promise<Map<string, { lastSeq: number; lastEventSeq: number; memberCount: number }>> {
      if (conversationIds.length === 0) return new Map();
      const rows = await db.conversation.findMany({
        where: { id: { in: [...conversationIds] } },
        select: { id: true, lastSeq: true, lastEventSeq: true, memberCount: true },
      });
      return new Map(rows.map((row) => [row.id, { lastSeq: row.lastSeq, lastEventSeq: row.lastEventSeq, memberCount: row.memberCount }]));
    },

    /** Each user's inbox version (bumped by every membership change of theirs); missing users are omitted. */
    async inboxVersions(userIds: readonly string[]): Promise<Map<string, number>> {
      if (userIds.length === 0) return new Map();
      // On the driver, not Prisma: every subscription start reads one (src/realtime/hub.ts, attachUser),
      // and Prisma's engine cost more CPU than the rest of a connect. One user: a statement Citus
      // routes to the user's shard; several (the position check): one statement for the batch.
      const rows =
        userIds.length === 1
          ? await db.sql.query<{ id: string; inboxVersion: number }>('SELECT id, inbox_version AS "inboxVersion" FROM users WHERE id = $1', [userIds[0]], 'chat_inbox_version')
          : await db.sql.query<{ id: string; inboxVersion: number }>('SELECT id, inbox_version AS "inboxVersion" FROM users WHERE id = ANY($1::text[])', [[...userIds]], 'chat_inbox_versions');
      return new Map(rows.map((row) => [row.id, row.inboxVersion]));
    },

    /**
     * Whose presence a viewer may watch: the members of one of their
     * conversations (up to `max`), or by default their contacts, the other
     * people in their direct conversations.
     */
    async presenceTargets(viewer: Viewer, conversationId: string | null | undefined, max: number): Promise<string[]> {
      if (conversationId != null) {
        const id = conversationIdArgument(conversationId);
        const view = await memberChecks.require(id, viewer.id);
        if (view.memberCount > max) {
          throw badInput(`presence can watch conversations of up to ${max} members`, 'conversationId');
        }
        const rows = await db.conversationMember.findMany({ where: { conversationId: id }, select: { userId: true } });
        return rows.map((row) => row.userId).filter((userId) => userId !== viewer.id);
      }
      const links = await db.userConversation.findMany({ where: { userId: viewer.id }, select: { conversationId: true } });
      if (links.length === 0) return [];
      const direct = await db.conversation.findMany({
        where: { id: { in: links.map((link) => link.conversationId) }, kind: 'DIRECT' },
        select: { id: true },
      });
      const members = await db.conversationMember.findMany({
        where: { conversationId: { in: direct.map((c) => c.id) }, userId: { not: viewer.id } },
        select: { userId: true },
        take: max,
      });
      return [...new Set(members.map((m) => m.userId))];
    },

    async isMember(conversationId: string, userId: string): Promise<boolean> {
      const row = await db.conversationMember.findUnique({
        where: { conversationId_userId: { conversationId, userId } },
        select: { userId: true },
      });
      return row !== null;
    },

    async memberIds(conversationId: string): Promise<string[]> {
      const rows = await db.conversationMember.findMany({ where: { conversationId }, select: { userId: true } });
      return rows.map((row) => row.userId);
    },
  };
}
