import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Broker, BusEvent, BusHandler } from '../src/realtime/broker/broker.js';
import { createMemoryBroker } from '../src/realtime/broker/memory-broker.js';
import { createRedisBroker } from '../src/realtime/broker/redis-broker.js';
import { resolveRedis } from '../src/realtime/broker/redis-connection.js';
import { redisServerBin, startRedisCluster, type RedisClusterHandle } from './support/redis-cluster.js';
import { uid } from './support/server.js';

// One contract over every broker (in-process, one Redis, a Redis Cluster), as graphql-ws runs one
// suite over every adapter: who hears a publish, and how subscriptions of one handler are counted.

const redisUrl = inject('redisUrl');
const clusterBin = redisServerBin();

function event(n: number): BusEvent {
  return { type: 'resized', conversationId: `c${n}`, memberCount: n };
}

async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function contract(name: string, open: () => Promise<Broker>, close: (broker: Broker) => Promise<void>) {
  describe(name, () => {
    let broker: Broker;
    beforeAll(async () => {
      broker = await open();
    }, 60_000);
    afterAll(async () => {
      if (broker) await close(broker);
    });

    it('delivers a publish to every handler of its channels, once each, and to no other channel', async () => {
      const [a, b] = [uid('a'), uid('b')];
      const heard: string[] = [];
      const one: BusHandler = (e) => heard.push(`one ${(e as { memberCount: number }).memberCount}`);
      const two: BusHandler = (e) => heard.push(`two ${(e as { memberCount: number }).memberCount}`);
      const other: BusHandler = (e) => heard.push(`other ${(e as { memberCount: number }).memberCount}`);
      await broker.subscribe(a, one);
      await broker.subscribe(a, two);
      await broker.subscribe(b, other);
      await broker.publish(a, event(1));
      await broker.publish(b, event(2));
      await until(() => heard.length >= 3, 'three deliveries');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(heard.sort()).toEqual(['one 1', 'other 2', 'two 1']);
      await Promise.all([broker.unsubscribe(a, one), broker.unsubscribe(a, two), broker.unsubscribe(b, other)]);
    });

    it('keeps a handler subscribed until each of its subscriptions ended: a late unsubscribe does not end a newer one', async () => {
      const channel = uid('twice');
      const heard: number[] = [];
      const probed: number[] = [];
      const handler: BusHandler = (e) => heard.push((e as { memberCount: number }).memberCount);
      // A second handler on the same channel: when it has heard a publish, so would have `handler`.
      const probe: BusHandler = (e) => probed.push((e as { memberCount: number }).memberCount);
      await broker.subscribe(channel, probe);
      await broker.subscribe(channel, handler);
      await broker.subscribe(channel, handler);
      await broker.unsubscribe(channel, handler);
      await broker.publish(channel, event(1));
      await until(() => probed.includes(1), 'the probe to hear 1');
      expect(heard).toEqual([1]);
      await broker.unsubscribe(channel, handler);
      await broker.publish(channel, event(2));
      await until(() => probed.includes(2), 'the probe to hear 2');
      expect(heard).toEqual([1]);
      // One more is a no-op, not an error, and leaves the probe subscribed.
      await broker.unsubscribe(channel, handler);
      await broker.publish(channel, event(3));
      await until(() => probed.includes(3), 'the probe to hear 3');
      expect(heard).toEqual([1]);
      await broker.unsubscribe(channel, probe);
    });
  });
}

contract('the in-process broker', async () => createMemoryBroker(), (broker) => broker.close());

describe.skipIf(!redisUrl)('over one Redis', () => {
  contract('the Redis broker', async () => createRedisBroker((await resolveRedis(redisUrl!, []))!, 'brokers-test'), (broker) => broker.close());
});

describe.skipIf(!clusterBin)('over a Redis Cluster', () => {
  let cluster: RedisClusterHandle | undefined;
  afterAll(async () => {
    await cluster?.close();
  });
  contract(
    'the Redis Cluster broker',
    async () => {
      cluster = await startRedisCluster(clusterBin!);
      return createRedisBroker((await resolveRedis(undefined, cluster.seeds))!, 'brokers-test');
    },
    (broker) => broker.close(),
  );
});
