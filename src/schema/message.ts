import { builder } from '../builder.js';
import type { MessageRecord, ReactionCount as ReactionCountRecord } from '../chat/records.js';
import type { MessageHistoryPage, MessagesSincePage } from '../chat/messages.js';
import { conversationIdArgument } from '../chat/validate.js';
import { requireViewer } from '../context.js';
import { MessageStream } from '../realtime/streams/message-stream.js';
import { User, viaConversation } from './user.js';
import { VIEWER_DEPENDENT } from './viewer-dependent.js';

const ReactionCount = builder.objectRef<ReactionCountRecord & { conversationId: string; messageSeq: number }>('ReactionCount').implement({
  description: 'One reaction on a message and how many members reacted with it.',
  fields: (t) => ({
    reaction: t.exposeString('reaction', { description: 'One emoji, or a short name (a-z, 0-9, _, +, -).' }),
    count: t.exposeInt('count'),
    reactedByViewer: t.boolean({
      description:
        "Whether the viewer is among them. Depends on who asks: a live payload selecting it is rendered for each subscriber (one read each), not shared; the SDK tracks its user's own reactions instead.",
      extensions: VIEWER_DEPENDENT,
      resolve: (r, _args, context) =>
        r.mine ?? context.loaders.ownReactions.load({ conversationId: r.conversationId, seq: r.messageSeq }).then((own) => own.includes(r.reaction)),
    }),
  }),
});

// Message fields must not depend on who is looking unless marked VIEWER_DEPENDENT:
// live payloads are rendered once and shared by every subscriber (see realtime/render.ts).
export const Message = builder.objectRef<MessageRecord>('Message');
Message.implement({
  description:
    'A message in its current state. Within a conversation, seqs are 1, 2, 3, … in send order, without gaps (thread replies included). A deleted message stays as a tombstone: same seq and sender, empty body, no reactions.',
  fields: (t) => ({
    id: t.exposeID('id'),
    conversationId: t.exposeID('conversationId'),
    seq: t.exposeInt('seq', { description: 'Its place in the conversation: the display order.' }),
    sender: t.field({ type: User, resolve: (message) => viaConversation(message.sender) }),
    body: t.exposeString('body', { description: "The text; '' once deleted." }),
    clientMessageId: t.exposeString('clientMessageId', {
      description: 'The id the sender chose; a retry with the same id returns this message instead of storing another.',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    eventSeq: t.exposeInt('eventSeq', { description: 'The event of the conversation log that last changed this message.' }),
    editedAt: t.expose('editedAt', { type: 'DateTime', nullable: true, description: 'When the sender last edited it; earlier versions are not kept.' }),
    deletedAt: t.expose('deletedAt', { type: 'DateTime', nullable: true, description: 'When it was deleted: its content is gone from storage.' }),
    deleted: t.boolean({ resolve: (message) => message.deletedAt !== null }),
    reactions: t.field({
      type: [ReactionCount],
      description: 'Each reaction with its count, in the order they first appeared (at most 20 different ones).',
      resolve: (message) => message.reactions.map((r) => ({ ...r, conversationId: message.conversationId, messageSeq: message.seq })),
    }),
    replyToSeq: t.exposeInt('replyToSeq', { nullable: true, description: 'The message this one replies to (quotes).' }),
    replyTo: t.field({
      type: Message,
      nullable: true,
      description: 'The message this one replies to, in its current state (a tombstone if it was deleted).',
      resolve: (message, _args, context) =>
        message.replyToSeq === null ? null : context.loaders.message.load({ conversationId: message.conversationId, seq: message.replyToSeq }),
    }),
    threadRootSeq: t.exposeInt('threadRootSeq', { nullable: true, description: 'Set on a thread reply: the seq of its thread\'s root.' }),
    threadReplyCount: t.exposeInt('threadReplyCount', { description: 'On a thread root: how many replies it has.' }),
    threadLastReplySeq: t.exposeInt('threadLastReplySeq', { nullable: true }),
    threadLastReply: t.field({
      type: Message,
      nullable: true,
      description: "On a thread root: its newest reply (the thread's history: messages(threadRootSeq:)).",
      resolve: (message, _args, context) =>
        message.threadLastReplySeq === null
          ? null
          : context.loaders.message.load({ conversationId: message.conversationId, seq: message.threadLastReplySeq }),
    }),
  }),
});

const MessagesSince = builder.objectRef<MessagesSincePage>('MessagesSince').implement({
  description: 'A page of offline catch-up of messages.',
  fields: (t) => ({
    messages: t.field({ type: [Message], description: 'Ascending by seq, each in its current state.', resolve: (page) => page.messages }),
    hasMore: t.exposeBoolean('hasMore', { description: 'More follow: ask again with afterSeq = nextAfterSeq.' }),
    nextAfterSeq: t.exposeInt('nextAfterSeq', { description: 'The highest seq returned (or afterSeq if none).' }),
    lastSeq: t.exposeInt('lastSeq', { description: "The conversation's newest seq when this page was read." }),
  }),
});

const MessageHistory = builder.objectRef<MessageHistoryPage>('MessageHistory').implement({
  description: 'A page of history, paging backwards.',
  fields: (t) => ({
    messages: t.field({ type: [Message], description: 'Ascending by seq.', resolve: (page) => page.messages }),
    hasMore: t.exposeBoolean('hasMore', { description: 'Older messages exist: ask again with before = the first seq returned.' }),
  }),
});

builder.queryFields((t) => ({
  messages: t.field({
    type: MessageHistory,
    description: "History, newest first in paging order (each page is ascending by seq): the whole timeline, or one thread's replies.",
    args: {
      conversationId: t.arg.id({ required: true }),
      before: t.arg.int({ description: 'Only seqs below this; default: from the newest.' }),
      last: t.arg.int({ description: '1 to 100; default 50.' }),
      threadRootSeq: t.arg.int({ description: "Only this thread's replies." }),
    },
    resolve: (_root, args, context) =>
      context.services.messages.history(requireViewer(context), String(args.conversationId), args.before, args.last, args.threadRootSeq),
  }),
  messagesSince: t.field({
    type: MessagesSince,
    description: 'Offline catch-up of messages: those after `afterSeq`, ascending, paged, each in its current state. To learn of edits, deletions and reactions too, use eventsSince.',
    args: {
      conversationId: t.arg.id({ required: true }),
      afterSeq: t.arg.int({ required: true }),
      first: t.arg.int({ description: '1 to 500; default 100.' }),
    },
    resolve: (_root, args, context) =>
      context.services.messages.since(requireViewer(context), String(args.conversationId), args.afterSeq, args.first),
  }),
}));

const ChangeFence = builder.inputType('ChangeFence', {
  description:
    "A fencing token for one attempt of a change (edit, delete, reaction): the change is refused with SUPERSEDED, and changes nothing, when this writer already used a token as high or higher in this conversation. Retrying clients send one so that a delayed earlier attempt (held up in an instance that stopped answering) cannot land after a later change. The SDK sends one with every attempt.",
  fields: (t) => ({
    writer: t.string({ required: true, description: 'Who makes the attempt: 1 to 64 printable ASCII characters, one per client session (the SDK uses a random UUID).' }),
    token: t.int({ required: true, description: "The attempt's number: 1 or more, higher than any this writer used before (a retry takes a new one)." }),
  }),
});

builder.mutationFields((t) => ({
  sendMessage: t.field({
    type: Message,
    description:
      'Stores a message and delivers it to the members. Idempotent per (sender, clientMessageId): a retry returns the stored message. With replyToSeq it quotes another message of the conversation; with threadRootSeq it is a reply in that message\'s thread.',
    args: {
      conversationId: t.arg.id({ required: true }),
      body: t.arg.string({ required: true, description: '1 to 4000 characters (MAX_MESSAGE_LENGTH); not only whitespace.' }),
      clientMessageId: t.arg.string({ required: true, description: '1 to 64 printable ASCII characters, unique per sender and conversation.' }),
      replyToSeq: t.arg.int({ description: 'A message of this conversation this one replies to.' }),
      threadRootSeq: t.arg.int({ description: 'The thread root this message replies in (a message that is not itself a thread reply).' }),
    },
    resolve: (_root, args, context) =>
      context.services.messages.send(requireViewer(context), String(args.conversationId), args.body, args.clientMessageId, {
        replyToSeq: args.replyToSeq,
        threadRootSeq: args.threadRootSeq,
      }),
  }),
  editMessage: t.field({
    type: Message,
    description: 'The sender replaces a message\'s body (editedAt is set; earlier versions are not kept). FORBIDDEN for anyone else; BAD_USER_INPUT for a deleted message.',
    args: {
      conversationId: t.arg.id({ required: true }),
      seq: t.arg.int({ required: true, description: 'The message, by its seq.' }),
      body: t.arg.string({ required: true, description: 'As in sendMessage.' }),
      fence: t.arg({ type: ChangeFence, description: 'Refuse this attempt if a later one of the same writer already arrived (SUPERSEDED).' }),
    },
    resolve: (_root, args, context) =>
      context.services.changes.edit(requireViewer(context), String(args.conversationId), args.seq, args.body, args.fence),
  }),
  deleteMessage: t.field({
    type: Message,
    description:
      'Deletes a message: its sender may, and a group\'s owner may delete any. Its body and reactions are removed from storage; a tombstone keeps its seq. Deleting again changes nothing.',
    args: {
      conversationId: t.arg.id({ required: true }),
      seq: t.arg.int({ required: true, description: 'The message, by its seq.' }),
      fence: t.arg({ type: ChangeFence, description: 'Refuse this attempt if a later one of the same writer already arrived (SUPERSEDED).' }),
    },
    resolve: (_root, args, context) => context.services.changes.delete(requireViewer(context), String(args.conversationId), args.seq, args.fence),
  }),
  addReaction: t.field({
    type: Message,
    description:
      'Adds the viewer\'s reaction to a message (members only): one emoji (one grapheme) or a short name of a-z, 0-9, _, +, - (up to 32). A message carries at most 20 different reactions. Adding one the viewer already has changes nothing.',
    args: {
      conversationId: t.arg.id({ required: true }),
      seq: t.arg.int({ required: true, description: 'The message, by its seq.' }),
      reaction: t.arg.string({ required: true }),
      fence: t.arg({ type: ChangeFence, description: 'Refuse this attempt if a later one of the same writer already arrived (SUPERSEDED).' }),
    },
    resolve: (_root, args, context) =>
      context.services.changes.react(requireViewer(context), String(args.conversationId), args.seq, args.reaction, true, args.fence),
  }),
  removeReaction: t.field({
    type: Message,
    description: "Removes the viewer's reaction from a message; removing one the viewer does not have changes nothing.",
    args: {
      conversationId: t.arg.id({ required: true }),
      seq: t.arg.int({ required: true, description: 'The message, by its seq.' }),
      reaction: t.arg.string({ required: true }),
      fence: t.arg({ type: ChangeFence, description: 'Refuse this attempt if a later one of the same writer already arrived (SUPERSEDED).' }),
    },
    resolve: (_root, args, context) =>
      context.services.changes.react(requireViewer(context), String(args.conversationId), args.seq, args.reaction, false, args.fence),
  }),
}));

builder.subscriptionFields((t) => ({
  messageAdded: t.field({
    type: Message,
    description:
      'Messages of one conversation, each seq exactly once and in order. With afterSeq, first replays what is stored after it, then continues live without a gap. Ends with FORBIDDEN if the viewer leaves or is removed. (Edits, deletions and reactions arrive on `events`.)',
    args: {
      conversationId: t.arg.id({ required: true }),
      afterSeq: t.arg.int({ description: 'Resume after this seq; default: the newest (live only).' }),
    },
    subscribe: (_root, args, context) => {
      const viewer = requireViewer(context);
      const id = conversationIdArgument(String(args.conversationId));
      return new MessageStream(context).start(id, () => context.services.streams.conversation(viewer, id, args.afterSeq));
    },
    resolve: (event) => event as MessageRecord,
  }),
}));
