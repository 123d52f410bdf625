import { RedisPubSub } from 'graphql-redis-subscriptions';
import { Redis } from 'ioredis';
import { decodeEvent, encodeEvent, type BusEvent, type BusHandler, type EventBus, type Unsubscribe } from './bus.js';

/**
 * The bus between instances: Redis pub/sub through graphql-redis-subscriptions
 * on ioredis, with separate publisher and subscriber connections. The library
 * keeps one Redis subscription per channel per process, shared by every local
 * handler, and runs the deserializer once per Redis message, so each event is
 * parsed once per process however many local subscribers it has.
 */
export async function createRedisBus(url: string, name: string): Promise<EventBus> {
  const options = { connectionName: name, maxRetriesPerRequest: null, enableReadyCheck: true };
  // Auto-pipelining batches the many PUBLISHes of a fan-out on write into few round trips.
  const publisher = new Redis(url, { ...options, enableAutoPipelining: true });
  const subscriber = new Redis(url, options);
  // ioredis reconnects by itself; errors between retries are expected and would otherwise be unhandled.
  publisher.on('error', () => {});
  subscriber.on('error', () => {});
  const pubsub = new RedisPubSub({
    publisher,
    subscriber,
    serializer: (payload) => payload as string,
    deserializer: (raw) => decodeEvent(typeof raw === 'string' ? raw : String(raw)),
  });

  const resyncListeners: (() => void)[] = [];
  let connectedOnce = false;
  subscriber.on('ready', () => {
    // A reconnect resubscribes every channel (ioredis autoResubscribe), but
    // whatever was published while we were away is gone: ask consumers to
    // resync, once the resubscriptions are acknowledged (a PING is answered
    // after them), so that nothing falls between their database read and
    // the channels being live again.
    if (connectedOnce) {
      subscriber.ping().then(
        () => {
          for (const listener of resyncListeners) listener();
        },
        () => {},
      );
    }
    connectedOnce = true;
  });
  await Promise.all([publisher.ping(), subscriber.ping()]);

  return {
    async publish(names: string | readonly string[], event: BusEvent) {
      const raw = encodeEvent(event) as never;
      if (typeof names === 'string') return pubsub.publish(names, raw);
      await Promise.all(names.map((channel) => pubsub.publish(channel, raw)));
    },
    async subscribe(channel: string, handler: BusHandler): Promise<Unsubscribe> {
      const id = await pubsub.subscribe(channel, handler as (message: unknown) => void);
      return async () => pubsub.unsubscribe(id);
    },
    onResync(listener) {
      resyncListeners.push(listener);
    },
    async healthy() {
      return publisher.status === 'ready' && subscriber.status === 'ready';
    },
    async close() {
      await pubsub.close();
    },
  };
}
