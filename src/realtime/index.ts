import type { GraphQLError, GraphQLSchema } from 'graphql';
import type { ConversationEventRecord, MessageRecord } from '../chat/records.js';
import type { Config } from '../config.js';
import { createSharedContext } from '../context.js';
import type { Services } from '../services.js';
import { ignoreObserver, type Broker, type RealtimeObserver } from './broker/broker.js';
import type { RedisEndpoint } from './broker/redis-connection.js';
import type { FanoutPolicy } from './fanout.js';
import type { FeedStore } from './feed.js';
import { Hub } from './hub.js';
import { createLocalPresence, type Presence, type PresenceChange } from './presence/presence.js';
import { PresenceWatch } from './presence/presence-watch.js';
import { withDisconnectGrace } from './presence/grace.js';
import { createRedisPresence } from './presence/redis-presence.js';
import { Renderers } from './render.js';
import type { StreamDeps } from './streams/live-stream.js';

/**
 * The delivery core of one app (docs/architecture.md): the hub and its
 * position check, presence, rendering, and what subscription streams need.
 * Transports (src/realtime/transport/) are adapters over it.
 */
export interface Realtime {
  readonly hub: Hub;
  readonly presence: Presence;
  readonly renderers: Renderers;
  /** What LiveStreams take from the context they start in. */
  readonly streamDeps: StreamDeps;
  /** Whether each user is online (for `User.online`). */
  onlineAmong(userIds: readonly string[]): Promise<string[]>;
  close(): Promise<void>;
}

export interface RealtimeOptions {
  broker: Broker;
  /** Where presence is kept across instances; undefined: in this process only. */
  redis: RedisEndpoint | undefined;
  policy: FanoutPolicy;
  services: Services;
  schema: GraphQLSchema;
  config: Config;
  /** The app's error masking for rendered payloads (counts errors, logs unexpected ones). */
  maskError: (error: GraphQLError) => GraphQLError;
  /** A user came online or went offline (announce it, record lastSeenAt). */
  onPresenceChange: PresenceChange;
  onError: (error: unknown, what: string) => void;
  observer?: RealtimeObserver;
}

/** What feeds read from the database: messages by seq, the event log by event number. */
export function feedStores(services: Services): { messages: FeedStore<MessageRecord>; events: FeedStore<ConversationEventRecord> } {
  return {
    // Messages are gapless: a short page means everything below `before` was read.
    messages: {
      async range(conversationId, after, limit, before) {
        const items = await services.messages.range(conversationId, after, limit, before);
        return { items, through: items.length < limit ? before - 1 : items[items.length - 1]!.seq };
      },
    },
    // The event log is read compacted: `through` carries a feed past superseded numbers.
    events: {
      async range(conversationId, after, limit, before) {
        const { events, end } = await services.eventLog.window(conversationId, after, limit, before - 1);
        return { items: events, through: end };
      },
    },
  };
}

export async function createRealtime(options: RealtimeOptions): Promise<Realtime> {
  const { services, config, onError, broker } = options;
  const observer = options.observer ?? ignoreObserver;
  const connections = options.redis
    ? await createRedisPresence(options.redis, `chat:${config.instanceId}`, {
        ttlMs: config.presenceTtlMs,
        onChange: options.onPresenceChange,
        onError,
      })
    : createLocalPresence(options.onPresenceChange);
  const presence = withDisconnectGrace(connections, config.presenceGraceMs, onError);
  const hub = new Hub({
    broker,
    policy: options.policy,
    checkIntervalMs: config.deliveryCheckMs,
    onError,
    observer,
    store: {
      ...feedStores(services),
      positions: services.streams.positions,
      inboxVersions: services.streams.inboxVersions,
      takeInboxVersion: services.users.takeInboxVersion,
    },
  });
  const streamDeps: StreamDeps = {
    hub,
    presence,
    presenceWatch: new PresenceWatch(broker, onError),
    isMember: services.streams.isMember,
    onError,
    observer,
  };
  const realtime: Realtime = {
    hub,
    presence,
    streamDeps,
    renderers: undefined as unknown as Renderers,
    onlineAmong: (userIds) => presence.onlineAmong(userIds),
    async close() {
      hub.close();
      await presence.close();
    },
  };
  // The shared context reaches services and presence through this very object.
  (realtime as { renderers: Renderers }).renderers = new Renderers(options.schema, createSharedContext(services, realtime), options.maskError);
  return realtime;
}
