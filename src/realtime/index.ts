import type { GraphQLResolveInfo } from 'graphql';
import type { Config } from '../config.js';
import { createSharedContext, requireViewer, type Context } from '../context.js';
import { conversationIdArgument } from '../chat/validate.js';
import type { Services } from '../services.js';
import { ignoreObserver, type EventBus, type RealtimeObserver } from './bus.js';
import { PresenceStream, TypingStream } from './ephemeral-streams.js';
import type { Presence } from './presence.js';
import { PresenceWatch } from './presence-watch.js';
import { Router } from './router.js';
import { ConversationStream, InboxStream, type StreamEvent } from './streams.js';

/** Most users one presence subscription may watch. */
export const PRESENCE_WATCH_MAX = 1000;

export interface Realtime {
  readonly router: Router;
  /** `Subscription.messageAdded`: authorizes, then streams one conversation from a cursor. */
  messageAdded(
    context: Context,
    args: { conversationId: string; afterSeq?: number | null },
    info: GraphQLResolveInfo,
  ): Promise<AsyncIterableIterator<StreamEvent>>;
  /** `Subscription.inbox`: every conversation of the viewer, optionally from per-conversation cursors. */
  inbox(
    context: Context,
    args: { cursors?: readonly { conversationId: string; afterSeq: number }[] | null; announce?: boolean | null },
    info: GraphQLResolveInfo,
  ): Promise<AsyncIterableIterator<StreamEvent>>;
  /** `Subscription.presence`: a conversation's members, or the viewer's contacts; current state, then changes. */
  presence(context: Context, args: { conversationId?: string | null }, info: GraphQLResolveInfo): Promise<AsyncIterableIterator<StreamEvent>>;
  /** `Subscription.typing`: typing indicators of one conversation. */
  typing(context: Context, args: { conversationId: string }, info: GraphQLResolveInfo): Promise<AsyncIterableIterator<StreamEvent>>;
  /** Whether each user is online (for `User.online`). */
  onlineAmong(userIds: readonly string[]): Promise<string[]>;
}

export function createRealtime(options: {
  bus: EventBus;
  presence: Presence;
  services: Services;
  config: Config;
  onError: (error: unknown, what: string) => void;
  observer?: RealtimeObserver;
}): Realtime {
  const { services, config, onError } = options;
  const observer = options.observer ?? ignoreObserver;
  const router = new Router({
    bus: options.bus,
    fanoutDirectMax: config.fanoutDirectMax,
    onError,
    observer,
    store: { range: services.messages.range, lastSeqs: services.streams.lastSeqs },
  });
  const watch = new PresenceWatch(options.bus, onError);
  const realtime: Realtime = {
    router,
    onlineAmong: (userIds) => options.presence.onlineAmong(userIds),
    async presence(context, args, info) {
      const viewer = requireViewer(context);
      const targets = await services.streams.presenceTargets(viewer, args.conversationId, PRESENCE_WATCH_MAX);
      return new PresenceStream(context, info, deps).start(options.presence, watch, targets);
    },
    async typing(context, args, info) {
      const viewer = requireViewer(context);
      const id = conversationIdArgument(args.conversationId);
      return new TypingStream(context, info, deps).start(id, () => services.streams.conversation(viewer, id, null));
    },
    async messageAdded(context, args, info) {
      const viewer = requireViewer(context);
      const id = conversationIdArgument(args.conversationId);
      return new ConversationStream(context, info, deps).start(id, () => services.streams.conversation(viewer, id, args.afterSeq));
    },
    async inbox(context, args, info) {
      const viewer = requireViewer(context);
      const cursors = new Map<string, number>();
      for (const cursor of args.cursors ?? []) cursors.set(cursor.conversationId.toLowerCase(), cursor.afterSeq);
      return new InboxStream(context, info, deps).start(() => services.streams.inbox(viewer.id), cursors, args.announce ?? false);
    },
  };
  const deps = {
    router,
    sharedContext: createSharedContext(services, realtime),
    maxSocketBufferBytes: config.maxSocketBufferBytes,
    onError,
    observer,
    isMember: services.streams.isMember,
  };
  return realtime;
}
