import type { ChatEvents } from '../chat/events.js';
import { randomUUID } from 'node:crypto';
import type { DepartureReason, MessageRecord } from '../chat/records.js';
import { channels, ignoreObserver, type BusEvent, type EventBus, type RealtimeObserver } from './bus.js';
import type { Presence } from './presence.js';

export interface PublisherOptions {
  bus: EventBus;
  presence: Presence;
  /** Conversations with more members than this fan out on read (one conversation channel). */
  fanoutDirectMax: number;
  /** Every member of a conversation; needed only when it crosses the threshold. */
  memberIds: (conversationId: string) => Promise<string[]>;
  onError: (error: unknown, what: string) => void;
  observer?: RealtimeObserver;
}

/**
 * The hybrid fan-out of DESIGN §5, run after each change commits.
 *
 * - Small conversations fan out on write: one publish per online member's user
 *   channel. Instances subscribe to the user channels of the users they host,
 *   so an instance hears about exactly the conversations its users are in.
 * - Large ones fan out on read: one publish to the conversation channel, which
 *   an instance subscribes to while it hosts at least one member.
 *
 * A failed publish never fails the mutation: the change is committed, and
 * subscribers fill the gap from the database when the next event arrives.
 */
export function createPublisher(options: PublisherOptions): ChatEvents {
  const { bus, presence, fanoutDirectMax } = options;
  const observer = options.observer ?? ignoreObserver;

  async function safely(what: string, work: () => Promise<void>) {
    try {
      await work();
    } catch (error) {
      options.onError(error, what);
    }
  }

  async function toOnlineUsers(userIds: readonly string[], event: BusEvent) {
    const online = await presence.onlineAmong(userIds);
    if (online.length > 0) await bus.publish(online.map(channels.user), event);
  }

  /** Small conversations: each online member's user channel; large: the conversation channel. */
  async function toAudience(conversationId: string, audience: { memberIds: string[] | null }, event: BusEvent) {
    if (audience.memberIds) await toOnlineUsers(audience.memberIds, event);
    else await bus.publish(channels.conversation(conversationId), event);
  }

  return {
    messageSent(message: MessageRecord, audience) {
      observer.messageSent();
      return safely('publish message', () => toAudience(message.conversationId, audience, { type: 'message', message, at: Date.now() }));
    },

    typing(conversationId, user, typing, expiresAt, audience) {
      return safely('publish typing', () =>
        toAudience(conversationId, audience, {
          type: 'typing',
          id: randomUUID(),
          conversationId,
          user,
          typing,
          expiresAt: expiresAt.toISOString(),
        }),
      );
    },

    membersJoined(conversationId, userIds, lastSeq, memberCount) {
      return safely('publish joined', async () => {
        const online = await presence.onlineAmong(userIds);
        await Promise.all(
          online.map((userId) =>
            bus.publish(channels.user(userId), { type: 'joined', conversationId, userId, lastSeq, memberCount }),
          ),
        );
        const before = memberCount - userIds.length;
        if (before <= fanoutDirectMax && memberCount > fanoutDirectMax) {
          // From now on sends go to the conversation channel, which instances
          // hosting members have not subscribed to yet: tell them (on the user
          // channels they do hear) to subscribe and resync.
          const event: BusEvent = { type: 'resized', conversationId, memberCount };
          await toOnlineUsers(await options.memberIds(conversationId), event);
        }
      });
    },

    membersLeft(conversationId, userIds, reason: DepartureReason, memberCount) {
      return safely('publish left', async () => {
        const online = await presence.onlineAmong(userIds);
        await Promise.all(
          online.map((userId) =>
            bus.publish(channels.user(userId), { type: 'left', conversationId, userId, reason, memberCount }),
          ),
        );
      });
    },
  };
}
