import { builder } from '../builder.js';
import type { EventsSincePage } from '../chat/event-log.js';
import type { ConversationEventRecord } from '../chat/records.js';
import { requireViewer } from '../context.js';
import { badInput } from '../errors.js';
import { InboxStream, type ConversationJoinedEvent, type ConversationLeftEvent } from '../realtime/streams/inbox-stream.js';
import { MemberRole } from './conversation.js';
import { ConversationJoined, ConversationLeft } from './inbox.js';
import { Message } from './message.js';
import { User, viaConversation } from './user.js';

// The conversation event log (docs/architecture.md, "The event log"): every
// change a member sees, numbered 1, 2, 3, … per conversation without gaps.
// Live, each event arrives as it happens; catching up (eventsSince, or the
// `events` subscription from a cursor) each changed thing arrives once, in
// its current state, stamped with its latest event (`catchUp: true`).

type Of<K extends ConversationEventRecord['kind']> = Extract<ConversationEventRecord, { kind: K }>;

const catchUp = {
  description: 'Compacted: this stands for every change of it up to eventSeq (catch-up or a repaired gap); `action` is the last one known.',
};

// One enum for every event type, so that a selection over the union can ask
// for `action` on each without aliases (GraphQL forbids one field name with
// two types in one selection).
const EventAction = builder.enumType('EventAction', {
  description: 'What happened. MessageEvent: SENT … UPDATED (a thread reply is SENT, with its root in `threadRoot`); MemberEvent: JOINED, LEFT, REMOVED.',
  values: {
    SENT: {},
    EDITED: {},
    DELETED: { description: 'The message is a tombstone now.' },
    REACTION_ADDED: {},
    REACTION_REMOVED: {},
    UPDATED: {
      description:
        'Only in compacted reads (catchUp): the message changed since it was sent (edited, reacted to, replied to in its thread); `message` is its current state.',
    },
    JOINED: {},
    LEFT: {},
    REMOVED: {},
  } as const,
});

const MessageEvent = builder.objectRef<Of<'message'>>('MessageEvent').implement({
  description: 'A message was sent, edited, deleted or reacted to: `message` is its state after this event.',
  fields: (t) => ({
    conversationId: t.exposeID('conversationId'),
    eventSeq: t.exposeInt('eventSeq'),
    action: t.field({ type: EventAction, resolve: (e) => e.action }),
    message: t.field({ type: Message, resolve: (e) => e.message }),
    threadRoot: t.field({
      type: Message,
      nullable: true,
      description: "For a thread reply: its thread's root, with the new reply count and last reply.",
      resolve: (e) => e.threadRoot,
    }),
    reaction: t.exposeString('reaction', { nullable: true, description: 'For REACTION_ADDED / REACTION_REMOVED: which one.' }),
    actor: t.field({ type: User, nullable: true, description: 'Who did it (live events).', resolve: (e) => (e.actor ? viaConversation(e.actor) : e.actor) }),
    catchUp: t.exposeBoolean('catchUp', catchUp),
  }),
});

const MemberEvent = builder.objectRef<Of<'member'>>('MemberEvent').implement({
  description: 'Someone joined, left or was removed.',
  fields: (t) => ({
    conversationId: t.exposeID('conversationId'),
    eventSeq: t.exposeInt('eventSeq'),
    action: t.field({ type: EventAction, resolve: (e) => e.action }),
    user: t.field({ type: User, resolve: (e) => viaConversation(e.user) }),
    role: t.field({ type: MemberRole, nullable: true, description: 'For JOINED: their role now.', resolve: (e) => e.role }),
    joinedAtSeq: t.exposeInt('lastReadSeq', {
      nullable: true,
      description: 'For JOINED: the last seq when they joined. New members start caught up: everything up to it counts as read.',
    }),
    newOwner: t.field({ type: User, nullable: true, description: 'When the owner left: who owns the group now.', resolve: (e) => (e.newOwner ? viaConversation(e.newOwner) : e.newOwner) }),
    catchUp: t.exposeBoolean('catchUp', catchUp),
  }),
});

const ReadReceipt = builder.objectRef<Of<'receipt'>>('ReadReceipt').implement({
  description: "A member's read position moved: everything up to lastReadSeq is read. (A member's own message moves it too, within that message's event.)",
  fields: (t) => ({
    conversationId: t.exposeID('conversationId'),
    eventSeq: t.exposeInt('eventSeq'),
    user: t.field({ type: User, resolve: (e) => viaConversation(e.user) }),
    lastReadSeq: t.exposeInt('lastReadSeq'),
    catchUp: t.exposeBoolean('catchUp', catchUp),
  }),
});

const ConversationRenamed = builder.objectRef<Of<'renamed'>>('ConversationRenamed').implement({
  description: 'A group got a new title.',
  fields: (t) => ({
    conversationId: t.exposeID('conversationId'),
    eventSeq: t.exposeInt('eventSeq'),
    title: t.exposeString('title'),
    catchUp: t.exposeBoolean('catchUp', catchUp),
  }),
});

const typeOf = (record: ConversationEventRecord) =>
  record.kind === 'message' ? MessageEvent : record.kind === 'member' ? MemberEvent : record.kind === 'receipt' ? ReadReceipt : ConversationRenamed;

const ConversationEvent = builder.unionType('ConversationEvent', {
  description: 'One event of a conversation log.',
  types: [MessageEvent, MemberEvent, ReadReceipt, ConversationRenamed],
  resolveType: (record) => typeOf(record),
});

type StreamItem = ConversationEventRecord | ConversationJoinedEvent | ConversationLeftEvent;

const EventStreamItem = builder.unionType('EventStreamItem', {
  description: "What the `events` subscription carries: the events of every conversation of the viewer, and the viewer's joins and departures.",
  types: [MessageEvent, MemberEvent, ReadReceipt, ConversationRenamed, ConversationJoined, ConversationLeft],
  resolveType: (item: StreamItem) =>
    item.kind === 'ConversationJoined' ? ConversationJoined : item.kind === 'ConversationLeft' ? ConversationLeft : typeOf(item),
});

const EventsSince = builder.objectRef<EventsSincePage>('EventsSince').implement({
  description: 'A page of compacted catch-up of a conversation log.',
  fields: (t) => ({
    conversationId: t.exposeID('conversationId'),
    events: t.field({
      type: [ConversationEvent],
      description:
        'Ascending by eventSeq. Each changed message once in its current state (deleted ones as tombstones, reactions as counts), each member who joined or left, each member\'s latest read position, the latest title.',
      resolve: (page) => page.events,
    }),
    nextAfterEventSeq: t.exposeInt('nextAfterEventSeq', { description: 'Everything up to here is in this page or before it: the cursor to continue from.' }),
    hasMore: t.exposeBoolean('hasMore', { description: 'Ask again with afterEventSeq = nextAfterEventSeq.' }),
    lastEventSeq: t.exposeInt('lastEventSeq', { description: "The conversation's newest event when this page was read." }),
  }),
});

const EventCursor = builder.inputType('EventCursor', {
  description: 'Where a client stands in one conversation log: the highest event number it has applied.',
  fields: (t) => ({
    conversationId: t.id({ required: true }),
    afterEventSeq: t.int({ required: true }),
  }),
});

builder.queryFields((t) => ({
  eventsSince: t.field({
    type: EventsSince,
    description:
      'Offline catch-up of everything that changed in a conversation after `afterEventSeq`, compacted: a message edited 50 times arrives once. Pages never split an event; continue with nextAfterEventSeq, then subscribe to `events` from the same cursor.',
    args: {
      conversationId: t.arg.id({ required: true }),
      afterEventSeq: t.arg.int({ required: true }),
      first: t.arg.int({ description: 'Changed messages per page: 1 to 1000; default 500.' }),
    },
    resolve: (_root, args, context) =>
      context.services.eventLog.since(requireViewer(context), String(args.conversationId), args.afterEventSeq, args.first),
  }),
}));

builder.subscriptionFields((t) => ({
  events: t.field({
    type: EventStreamItem,
    description:
      "Every conversation of the viewer's event logs on one subscription, each conversation's events once and in order. Conversations with a cursor first catch up after it (compacted, as eventsSince), then continue live without a gap; the rest start live. Joins and departures of the viewer arrive as ConversationJoined (with afterEventSeq) and ConversationLeft.",
    args: {
      cursors: t.arg({ type: [EventCursor] }),
      announce: t.arg.boolean({
        description: 'Also send ConversationJoined, with its exact afterEventSeq, for each conversation of the viewer not in `cursors`.',
      }),
    },
    subscribe: (_root, args, context) => {
      const viewer = requireViewer(context);
      const cursors = new Map<string, number>();
      for (const cursor of args.cursors ?? []) {
        if (!Number.isInteger(cursor.afterEventSeq) || cursor.afterEventSeq < 0) throw badInput('afterEventSeq must be a non-negative integer', 'cursors');
        cursors.set(String(cursor.conversationId).toLowerCase(), cursor.afterEventSeq);
      }
      return new InboxStream(context, 'events').start(() => context.services.streams.inbox(viewer.id), cursors, args.announce ?? false);
    },
    resolve: (item) => item as StreamItem,
  }),
}));
