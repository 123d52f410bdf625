import { builder } from '../builder.js';
import { requireViewer } from '../context.js';
import { conversationIdArgument } from '../chat/validate.js';
import { PresenceStream, type PresenceChangedEvent } from '../realtime/streams/presence-stream.js';
import { TypingStream, type TypingEvent } from '../realtime/streams/typing-stream.js';
import { User, viaConversation } from './user.js';

const PresenceEvent = builder.objectRef<PresenceChangedEvent>('PresenceEvent').implement({
  description: "A user's presence: sent for every watched user when the subscription starts, then on each change.",
  fields: (t) => ({
    user: t.field({ type: User, resolve: (event, _args, context) => context.services.users.get(event.userId).then((u) => viaConversation(u ?? { id: event.userId, name: event.userId })) }),
    online: t.exposeBoolean('online'),
  }),
});

const Typing = builder.objectRef<TypingEvent>('TypingEvent').implement({
  description: 'Someone started or stopped typing. Ephemeral: never stored. Treat it as over at `expiresAt` unless renewed.',
  fields: (t) => ({
    conversationId: t.exposeID('conversationId'),
    user: t.field({ type: User, resolve: (event) => viaConversation(event.user) }),
    typing: t.exposeBoolean('typing'),
    expiresAt: t.expose('expiresAt', { type: 'DateTime' }),
  }),
});

/** Most users one presence subscription may watch. */
const PRESENCE_WATCH_MAX = 1000;

builder.mutationFields((t) => ({
  setTyping: t.boolean({
    description:
      'Tells the other members that the viewer is typing (or stopped). Call it as often as you like while typing: renewals are coalesced; an indicator lasts 6 s unless renewed. Too many calls get RATE_LIMITED.',
    args: {
      conversationId: t.arg.id({ required: true }),
      typing: t.arg.boolean({ defaultValue: true }),
    },
    resolve: (_root, args, context) =>
      context.services.typing.setTyping(requireViewer(context), String(args.conversationId), args.typing ?? true),
  }),
}));

builder.subscriptionFields((t) => ({
  presence: t.field({
    type: PresenceEvent,
    description:
      "Online/offline changes of a conversation's members (up to 1000 members), or, without conversationId, of the viewer's contacts (the other people in their direct conversations). Starts with the current state of each.",
    args: { conversationId: t.arg.id() },
    subscribe: (_root, args, context) => {
      const viewer = requireViewer(context);
      const id = args.conversationId == null ? null : conversationIdArgument(String(args.conversationId));
      return new PresenceStream(context).start(id, () => context.services.streams.presenceTargets(viewer, id, PRESENCE_WATCH_MAX));
    },
    resolve: (event) => event as PresenceChangedEvent,
  }),
  typing: t.field({
    type: Typing,
    description: 'Typing indicators of one conversation (not the viewer\'s own). Ends with FORBIDDEN if the viewer leaves it.',
    args: { conversationId: t.arg.id({ required: true }) },
    subscribe: (_root, args, context) => {
      const viewer = requireViewer(context);
      const id = conversationIdArgument(String(args.conversationId));
      return new TypingStream(context).start(id, () => context.services.streams.conversation(viewer, id, null));
    },
    resolve: (event) => event as TypingEvent,
  }),
}));
