import { Redis } from 'ioredis';
import { decodeEvent, dispatch, encodeEvent, holdHandler, releaseHandler, type Broker, type BusEvent, type BusHandler, type ChannelHandlers } from './broker.js';
import { createRedisClusterBroker } from './redis-cluster-broker.js';
import { whenReady, type RedisEndpoint } from './redis-connection.js';

interface ChannelEntry {
  handlers: ChannelHandlers | undefined;
  /** The SUBSCRIBE command's reply. */
  subscribed: Promise<unknown>;
}

/** The broker over Redis: one server, or a Redis Cluster with sharded pub/sub (redis-cluster-broker.ts). */
export function createRedisBroker(endpoint: RedisEndpoint, name: string): Promise<Broker> {
  return endpoint.kind === 'cluster' ? createRedisClusterBroker(endpoint, name) : createSingleRedisBroker(endpoint.url, name);
}

/**
 * The broker between instances over one Redis: pub/sub on two ioredis connections.
 *
 * One Redis subscription per channel per process, shared by every local
 * handler; each message is parsed once per process. The subscriber's channel
 * set is what routes events here (docs/architecture.md, "Routing"): ioredis
 * re-subscribes it after a reconnect, and only once Redis has acknowledged
 * those subscriptions are `onReconnect` listeners told to resync.
 *
 * The publisher has no offline queue: while Redis is unreachable a publish
 * fails at once (and is counted) instead of piling up in memory; the hub's
 * position check delivers what it carried from the database.
 */
async function createSingleRedisBroker(url: string, name: string): Promise<Broker> {
  const options = { connectionName: name, enableReadyCheck: true };
  // Auto-pipelining batches the many PUBLISHes of a fan-out on write into few round trips.
  const publisher = new Redis(url, { ...options, enableAutoPipelining: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  // Subscriptions made while Redis is away wait in the offline queue; nobody awaits them meanwhile.
  const subscriber = new Redis(url, { ...options, maxRetriesPerRequest: null });
  // ioredis reconnects by itself; errors between retries are expected and would otherwise be unhandled.
  publisher.on('error', () => {});
  subscriber.on('error', () => {});

  const channels = new Map<string, ChannelEntry>();
  subscriber.on('message', (channel: string, raw: string) => {
    const entry = channels.get(channel);
    if (!entry) return;
    dispatch(entry.handlers, decodeEvent(raw));
  });

  // Settles whenever the subscriber loses its connection: a subscribe that
  // was waiting for its reply stops waiting (the reconnect resync covers it).
  let connectionLost = deferred();
  subscriber.on('close', () => {
    connectionLost.resolve();
    connectionLost = deferred();
  });

  const reconnectListeners: (() => void)[] = [];
  let connectedOnce = false;
  subscriber.on('ready', () => {
    if (connectedOnce) {
      // ioredis sent the re-subscriptions before emitting 'ready'; a PING is
      // answered after them, so once it is, every channel is live again.
      subscriber.ping().then(
        () => {
          for (const listener of reconnectListeners) listener();
        },
        () => {},
      );
    }
    connectedOnce = true;
  });
  await Promise.all([whenReady(publisher, new URL(url).host), whenReady(subscriber, new URL(url).host)]);

  return {
    async publish(names: string | readonly string[], event: BusEvent) {
      const raw = encodeEvent(event);
      if (typeof names === 'string') {
        await publisher.publish(names, raw);
        return;
      }
      await Promise.all(names.map((channel) => publisher.publish(channel, raw)));
    },

    async subscribe(channel: string, handler: BusHandler): Promise<void> {
      let entry = channels.get(channel);
      if (!entry) {
        entry = { handlers: undefined, subscribed: subscriber.subscribe(channel) };
        entry.subscribed.catch(() => {});
        channels.set(channel, entry);
      }
      entry.handlers = holdHandler(entry.handlers, handler);
      if (subscriber.status === 'ready') await Promise.race([entry.subscribed, connectionLost.promise]).catch(() => {});
    },

    async unsubscribe(channel: string, handler: BusHandler) {
      const current = channels.get(channel);
      if (!current) return;
      current.handlers = releaseHandler(current.handlers, handler);
      if (current.handlers) return;
      channels.delete(channel);
      await subscriber.unsubscribe(channel).catch(() => {});
    },

    onReconnect(listener) {
      reconnectListeners.push(listener);
    },
    healthy() {
      return publisher.status === 'ready' && subscriber.status === 'ready';
    },
    async close() {
      channels.clear();
      publisher.disconnect();
      subscriber.disconnect();
    },
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
