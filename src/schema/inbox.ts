import { builder } from '../builder.js';
import type { MessageRecord } from '../chat/records.js';
import { requireViewer } from '../context.js';
import { badInput } from '../errors.js';
import { InboxStream, type ConversationJoinedEvent, type ConversationLeftEvent } from '../realtime/streams/inbox-stream.js';
import { Conversation } from './conversation.js';
import { Message } from './message.js';

export const DepartureReason = builder.enumType('DepartureReason', {
  values: {
    LEFT: { description: 'The viewer left.' },
    REMOVED: { description: 'The owner removed the viewer.' },
  } as const,
});

export const ConversationJoined = builder.objectRef<ConversationJoinedEvent>('ConversationJoined').implement({
  description:
    'The viewer was added to a conversation (or started it), or, with `announce`, a conversation the subscription was not given a cursor for. Its messages after `afterSeq` follow on the same subscription.',
  fields: (t) => ({
    conversationId: t.exposeID('conversationId'),
    afterSeq: t.exposeInt('afterSeq', {
      description:
        'Exactly where this subscription starts the conversation: every message with a greater seq follows on it. Earlier ones are history (`messages`, `messagesSince`). Use this, not conversation.lastSeq, as the cursor.',
    }),
    afterEventSeq: t.exposeInt('afterEventSeq', {
      description: 'The same in the event log: on `events`, every event with a greater number follows. Earlier ones: `eventsSince`.',
    }),
    conversation: t.field({
      type: Conversation,
      nullable: true,
      description: 'Null if the viewer has already left again.',
      resolve: (event, _args, context) =>
        context.services.conversations.get(requireViewer(context), event.conversationId).catch(() => null),
    }),
  }),
});

export const ConversationLeft = builder.objectRef<ConversationLeftEvent>('ConversationLeft').implement({
  description: 'The viewer is no longer in a conversation; nothing more arrives from it.',
  fields: (t) => ({
    conversationId: t.exposeID('conversationId'),
    reason: t.field({ type: DepartureReason, resolve: (event) => event.reason }),
  }),
});

const InboxEvent = builder.unionType('InboxEvent', {
  types: [Message, ConversationJoined, ConversationLeft],
  resolveType: (event) => ('seq' in event ? Message : event.kind === 'ConversationJoined' ? ConversationJoined : ConversationLeft),
});

const ConversationCursor = builder.inputType('ConversationCursor', {
  description: 'Where a client stands in one conversation: the highest seq it holds without a gap.',
  fields: (t) => ({
    conversationId: t.id({ required: true }),
    afterSeq: t.int({ required: true }),
  }),
});

builder.subscriptionFields((t) => ({
  inbox: t.field({
    type: InboxEvent,
    description:
      "Everything for the viewer on one subscription: messages of all their conversations (each conversation's seqs exactly once, in order), including conversations joined later, and membership changes. Conversations with a cursor resume after it; the rest start live. Cursors of conversations the viewer is no longer in are ignored.",
    args: {
      cursors: t.arg({ type: [ConversationCursor] }),
      announce: t.arg.boolean({
        description:
          'Also send ConversationJoined, with its exact afterSeq, for each of the viewer\'s conversations not in `cursors`: how a client learns of conversations it did not know when it subscribed.',
      }),
    },
    subscribe: (_root, args, context) => {
      const viewer = requireViewer(context);
      const cursors = new Map<string, number>();
      for (const cursor of args.cursors ?? []) {
        if (!Number.isInteger(cursor.afterSeq) || cursor.afterSeq < 0) throw badInput('afterSeq must be a non-negative integer', 'cursors');
        cursors.set(String(cursor.conversationId).toLowerCase(), cursor.afterSeq);
      }
      return new InboxStream(context, 'inbox').start(() => context.services.streams.inbox(viewer.id), cursors, args.announce ?? false);
    },
    resolve: (event) => event as MessageRecord | ConversationJoinedEvent | ConversationLeftEvent,
  }),
}));
