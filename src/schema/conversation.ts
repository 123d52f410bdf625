import { builder, PageInfo } from '../builder.js';
import type { ConversationView, MemberRecord } from '../chat/records.js';
import { requireViewer } from '../context.js';
import { Message } from './message.js';
import { User, viaConversation } from './user.js';
import { VIEWER_DEPENDENT } from './viewer-dependent.js';

export const ConversationKind = builder.enumType('ConversationKind', {
  values: {
    DIRECT: { description: 'Two people; exactly one per pair.' },
    GROUP: { description: 'A titled conversation of any size.' },
  } as const,
});

export const MemberRole = builder.enumType('MemberRole', {
  values: {
    OWNER: { description: 'May remove members. A group has one while it has members.' },
    MEMBER: {},
  } as const,
});

export const Member = builder.objectRef<MemberRecord>('Member').implement({
  fields: (t) => ({
    user: t.field({ type: User, resolve: (member) => viaConversation(member.user) }),
    role: t.field({ type: MemberRole, resolve: (member) => member.role }),
    joinedAt: t.expose('joinedAt', { type: 'DateTime' }),
    lastReadSeq: t.exposeInt('lastReadSeq', { description: 'Everything up to this seq has been read by this member.' }),
  }),
});

const MemberEdge = builder.objectRef<{ cursor: string; node: MemberRecord }>('MemberEdge').implement({
  fields: (t) => ({
    cursor: t.exposeString('cursor'),
    node: t.field({ type: Member, resolve: (edge) => edge.node }),
  }),
});

const MemberConnection = builder
  .objectRef<{ edges: { cursor: string; node: MemberRecord }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } }>('MemberConnection')
  .implement({
    fields: (t) => ({
      edges: t.field({ type: [MemberEdge], resolve: (connection) => connection.edges }),
      pageInfo: t.field({ type: PageInfo, resolve: (connection) => connection.pageInfo }),
    }),
  });

export const Conversation = builder.objectRef<ConversationView>('Conversation').implement({
  description: 'A direct or group conversation, as the viewer (a member) sees it.',
  fields: (t) => ({
    id: t.exposeID('id'),
    kind: t.field({ type: ConversationKind, resolve: (c) => c.kind }),
    title: t.exposeString('title', { nullable: true, description: 'Groups have a title; direct conversations do not.' }),
    memberCount: t.exposeInt('memberCount'),
    lastSeq: t.exposeInt('lastSeq', { description: 'Seq of the newest message; 0 when there is none. Seqs are 1, 2, 3, … without gaps.' }),
    lastEventSeq: t.exposeInt('lastEventSeq', {
      description: 'Number of the newest event of its log (eventsSince, `events`); 0 when nothing happened yet. Event numbers are 1, 2, 3, … without gaps.',
    }),
    lastReadSeq: t.exposeInt('viewerLastReadSeq', { description: "The viewer's read position (see markRead).", extensions: VIEWER_DEPENDENT }),
    unreadCount: t.int({
      description: 'Messages after the viewer\'s read position. Sending a message marks everything before it read.',
      extensions: VIEWER_DEPENDENT,
      resolve: (c) => Math.max(0, c.lastSeq - c.viewerLastReadSeq),
    }),
    viewerRole: t.field({ type: MemberRole, extensions: VIEWER_DEPENDENT, resolve: (c) => c.viewerRole }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    lastMessageAt: t.expose('lastMessageAt', { type: 'DateTime', nullable: true }),
    lastMessage: t.field({
      type: Message,
      nullable: true,
      resolve: (c, _args, context) => (c.lastSeq > 0 ? context.loaders.lastMessage.load({ id: c.id, lastSeq: c.lastSeq }) : null),
    }),
    members: t.field({
      type: MemberConnection,
      description: 'Members ordered by user id.',
      args: {
        first: t.arg.int({ description: '1 to 500; default 50.' }),
        after: t.arg.string({ description: 'endCursor of the previous page.' }),
      },
      resolve: async (c, args, context) => {
        const page = await context.services.conversations.members(requireViewer(context), c.id, args.first, args.after);
        return {
          edges: page.items.map((node, i) => ({ cursor: page.cursors[i]!, node })),
          pageInfo: { hasNextPage: page.hasNextPage, endCursor: page.endCursor },
        };
      },
    }),
  }),
});

const ConversationEdge = builder.objectRef<{ cursor: string; node: ConversationView }>('ConversationEdge').implement({
  fields: (t) => ({
    cursor: t.exposeString('cursor'),
    node: t.field({ type: Conversation, resolve: (edge) => edge.node }),
  }),
});

const ConversationConnection = builder
  .objectRef<{ edges: { cursor: string; node: ConversationView }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } }>(
    'ConversationConnection',
  )
  .implement({
    fields: (t) => ({
      edges: t.field({ type: [ConversationEdge], resolve: (connection) => connection.edges }),
      pageInfo: t.field({ type: PageInfo, resolve: (connection) => connection.pageInfo }),
    }),
  });

builder.queryFields((t) => ({
  conversation: t.field({
    type: Conversation,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, context) => context.services.conversations.get(requireViewer(context), String(args.id)),
  }),
  conversations: t.field({
    type: ConversationConnection,
    description: "The viewer's conversations, most recently active first.",
    args: {
      first: t.arg.int({ description: '1 to 100; default 20.' }),
      after: t.arg.string({ description: 'endCursor of the previous page.' }),
    },
    resolve: async (_root, args, context) => {
      const page = await context.services.conversations.list(requireViewer(context), args.first, args.after);
      return {
        edges: page.items.map((node, i) => ({ cursor: page.cursors[i]!, node })),
        pageInfo: { hasNextPage: page.hasNextPage, endCursor: page.endCursor },
      };
    },
  }),
}));

builder.mutationFields((t) => ({
  startDirectConversation: t.field({
    type: Conversation,
    description: 'The direct conversation with another user, created on first call. Idempotent.',
    args: { userId: t.arg.id({ required: true }) },
    resolve: (_root, args, context) => context.services.conversations.startDirect(requireViewer(context), String(args.userId)),
  }),
  createGroup: t.field({
    type: Conversation,
    description: 'A new group owned by the viewer, with these members (at most 1000 per call).',
    args: {
      title: t.arg.string({ required: true }),
      memberIds: t.arg.idList({ required: true }),
    },
    resolve: (_root, args, context) =>
      context.services.conversations.createGroup(requireViewer(context), args.title, args.memberIds.map(String)),
  }),
  addMembers: t.field({
    type: Conversation,
    description: 'Adds users to a group (any member may). Users already in it are ignored.',
    args: {
      conversationId: t.arg.id({ required: true }),
      userIds: t.arg.idList({ required: true }),
    },
    resolve: (_root, args, context) =>
      context.services.membership.addMembers(requireViewer(context), String(args.conversationId), args.userIds.map(String)),
  }),
  removeMember: t.field({
    type: Conversation,
    description: "Removes someone from a group (the owner only). Their live subscriptions stop at once.",
    args: {
      conversationId: t.arg.id({ required: true }),
      userId: t.arg.id({ required: true }),
    },
    resolve: (_root, args, context) =>
      context.services.membership.removeMember(requireViewer(context), String(args.conversationId), String(args.userId)),
  }),
  leaveConversation: t.field({
    type: 'ID',
    description: 'The viewer leaves a group. Returns its id.',
    args: { conversationId: t.arg.id({ required: true }) },
    resolve: (_root, args, context) => context.services.membership.leave(requireViewer(context), String(args.conversationId)),
  }),
  renameConversation: t.field({
    type: Conversation,
    description: 'Gives a group a new title (any member may): one event of its log, ConversationRenamed.',
    args: {
      conversationId: t.arg.id({ required: true }),
      title: t.arg.string({ required: true, description: '1 to 200 characters.' }),
    },
    resolve: (_root, args, context) => context.services.conversations.rename(requireViewer(context), String(args.conversationId), args.title),
  }),
  markRead: t.field({
    type: Conversation,
    description:
      "Moves the viewer's read position forward to `seq` (never backward): a read receipt the other members see live (ReadReceipt on `events`). Moving it to where it is changes nothing.",
    args: {
      conversationId: t.arg.id({ required: true }),
      seq: t.arg.int({ required: true }),
    },
    resolve: (_root, args, context) =>
      context.services.membership.markRead(requireViewer(context), String(args.conversationId), args.seq),
  }),
}));
