import { builder } from '../builder.js';
import type { MessageRecord } from '../chat/records.js';
import type { MessageHistoryPage, MessagesSincePage } from '../chat/messages.js';
import { requireViewer } from '../context.js';
import { conversationIdArgument } from '../chat/validate.js';
import { MessageStream } from '../realtime/streams/message-stream.js';
import { User, viaConversation } from './user.js';

// Message fields must not depend on who is looking: live payloads are
// rendered once and shared by every subscriber (see realtime/render.ts).
export const Message = builder.objectRef<MessageRecord>('Message').implement({
  description: 'A stored message. Within a conversation, seqs are 1, 2, 3, … in send order, without gaps.',
  fields: (t) => ({
    id: t.exposeID('id'),
    conversationId: t.exposeID('conversationId'),
    seq: t.exposeInt('seq'),
    sender: t.field({ type: User, resolve: (message) => viaConversation(message.sender) }),
    body: t.exposeString('body'),
    clientMessageId: t.exposeString('clientMessageId', {
      description: 'The id the sender chose; a retry with the same id returns this message instead of storing another.',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

const MessagesSince = builder.objectRef<MessagesSincePage>('MessagesSince').implement({
  description: 'A page of offline catch-up.',
  fields: (t) => ({
    messages: t.field({ type: [Message], description: 'Ascending by seq.', resolve: (page) => page.messages }),
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
    description: 'History, newest first in paging order (each page is ascending by seq).',
    args: {
      conversationId: t.arg.id({ required: true }),
      before: t.arg.int({ description: 'Only seqs below this; default: from the newest.' }),
      last: t.arg.int({ description: '1 to 100; default 50.' }),
    },
    resolve: (_root, args, context) =>
      context.services.messages.history(requireViewer(context), String(args.conversationId), args.before, args.last),
  }),
  messagesSince: t.field({
    type: MessagesSince,
    description: 'Offline catch-up: messages after `afterSeq`, ascending, paged.',
    args: {
      conversationId: t.arg.id({ required: true }),
      afterSeq: t.arg.int({ required: true }),
      first: t.arg.int({ description: '1 to 500; default 100.' }),
    },
    resolve: (_root, args, context) =>
      context.services.messages.since(requireViewer(context), String(args.conversationId), args.afterSeq, args.first),
  }),
}));

builder.mutationFields((t) => ({
  sendMessage: t.field({
    type: Message,
    description:
      'Stores a message and delivers it to the members. Idempotent per (sender, clientMessageId): a retry returns the stored message.',
    args: {
      conversationId: t.arg.id({ required: true }),
      body: t.arg.string({ required: true, description: '1 to 4000 characters (MAX_MESSAGE_LENGTH); not only whitespace.' }),
      clientMessageId: t.arg.string({ required: true, description: '1 to 64 printable ASCII characters, unique per sender and conversation.' }),
    },
    resolve: (_root, args, context) =>
      context.services.messages.send(requireViewer(context), String(args.conversationId), args.body, args.clientMessageId),
  }),
}));

builder.subscriptionFields((t) => ({
  messageAdded: t.field({
    type: Message,
    description:
      'Messages of one conversation, each seq exactly once and in order. With afterSeq, first replays what is stored after it, then continues live without a gap. Ends with FORBIDDEN if the viewer leaves or is removed.',
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
