import { randomUUID } from 'node:crypto';
import type { ChatEvents } from '../chat/events.js';
import type { DepartureReason, MessageRecord } from '../chat/records.js';
import { ignoreObserver, type Broker, type BusEvent, type RealtimeObserver } from './broker/broker.js';

/** Channel names: one per user (fan-out on write), one per conversation (fan-out on read), one per user's presence. */
export const channels = {
  user: (userId: string) => `chat:user:${userId}`,
  conversation: (conversationId: string) => `chat:conversation:${conversationId}`,
  presence: (userId: string) => `chat:presence-changes:${userId}`,
};

/**
 * The one owner of the fan-out threshold (docs/architecture.md, "Routing").
 *
 * - Small conversations (at most `directMax` members) fan out on write: an
 *   event is published to the user channel of every member. An instance
 *   subscribes to the user channel of each user it holds a live subscription
 *   of, on any transport, so the broker's own subscription table is the
 *   user → instance map: no lookup on the send path, nothing to go stale.
 * - Large ones fan out on read: one publish to the conversation channel,
 *   which an instance subscribes to while it hosts a subscriber of it.
 */
export class FanoutPolicy {
  constructor(readonly directMax: number) {}

  /** Whether the conversation is published on its own channel rather than its members'. */
  isLarge(memberCount: number): boolean {
    return memberCount > this.directMax;
  }

  /** Where an event of a conversation goes: its members' user channels, or its own channel. */
  channelsFor(conversationId: string, audience: Audience): string[] {
    if (audience.memberIds && !this.isLarge(audience.memberCount)) return audience.memberIds.map(channels.user);
    return [channels.conversation(conversationId)];
  }
}

/** Who is in a conversation, as the writing transaction saw it: the member list when it is small. */
export interface Audience {
  memberCount: number;
  /** Every member; null when the conversation is large (nobody needs the list). */
  memberIds: string[] | null;
}

export interface PublisherOptions {
  broker: Broker;
  policy: FanoutPolicy;
  /** Every member of a conversation; needed only when it crosses the threshold. */
  memberIds: (conversationId: string) => Promise<string[]>;
  onError: (error: unknown, what: string) => void;
  observer?: RealtimeObserver;
}

/**
 * Announces committed changes on the broker (the `ChatEvents` the services
 * call after commit). Publishing is best effort and never awaited by the
 * mutation: a lost or failed publish is repaired within the delivery bound by
 * every instance's position check (docs/architecture.md, "Delivery guarantees").
 */
export function createPublisher(options: PublisherOptions): ChatEvents {
  const { broker, policy } = options;
  const observer = options.observer ?? ignoreObserver;

  function publish(what: string, targets: string | readonly string[], event: BusEvent): void {
    if (targets.length === 0) return;
    broker.publish(targets, event).catch((error) => {
      observer.publishFailed();
      options.onError(error, what);
    });
  }

  return {
    memberListMax: policy.directMax,

    messageSent(message: MessageRecord, threadRoot, audience) {
      observer.messageSent();
      publish('publish message', policy.channelsFor(message.conversationId, audience), { type: 'message', message, threadRoot, at: Date.now() });
    },

    changed(event, audience) {
      publish('publish event', policy.channelsFor(event.conversationId, audience), { type: 'event', event });
    },

    typing(conversationId, user, typing, expiresAt, audience) {
      publish('publish typing', policy.channelsFor(conversationId, audience), {
        type: 'typing',
        id: randomUUID(),
        conversationId,
        user,
        typing,
        expiresAt: expiresAt.toISOString(),
      });
    },

    membersJoined(conversationId, userIds, lastSeq, lastEventSeq, memberCount) {
      for (const userId of userIds) {
        publish('publish joined', channels.user(userId), { type: 'joined', conversationId, userId, lastSeq, lastEventSeq, memberCount });
      }
      const before = memberCount - userIds.length;
      if (!policy.isLarge(before) && policy.isLarge(memberCount)) {
        // From now on events go to the conversation channel, which instances
        // hosting members have not subscribed to yet: tell them, on the user
        // channels they do hear, to subscribe and read what they missed. (If
        // this is lost, the position check and the next acquire catch up.)
        options
          .memberIds(conversationId)
          .then((members) => publish('publish resized', members.map(channels.user), { type: 'resized', conversationId, memberCount }))
          .catch((error) => options.onError(error, 'publish resized'));
      }
    },

    membersLeft(conversationId, userIds, reason: DepartureReason, memberCount) {
      for (const userId of userIds) {
        publish('publish left', channels.user(userId), { type: 'left', conversationId, userId, reason, memberCount });
      }
    },
  };
}
