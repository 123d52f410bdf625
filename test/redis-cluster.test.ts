import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channels } from '../src/realtime/fanout.js';
import { keySlot } from '../src/realtime/broker/key-slot.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { redisServerBin, startRedisCluster, type RedisClusterHandle } from './support/redis-cluster.js';
import { TestServer, uid, type Subscription, type TestUser } from './support/server.js';

// Instances over a real Redis Cluster (three masters, three replicas) with
// sharded pub/sub (docs/architecture.md, "Redis Cluster"): what one instance
// publishes reaches subscribers on another, and a master killed while
// messages flow loses nothing that was acknowledged.

const bin = redisServerBin();
if (!bin) {
  if (process.env.CI === 'true') throw new Error('CI=true but redis-server and redis-cli are not installed (REDIS_SERVER_BIN)');
  console.warn('\n  NOTICE: redis-server not found (REDIS_SERVER_BIN); the Redis Cluster tests are SKIPPED.\n');
}

const SEND = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq } }';
const MESSAGE_ADDED = 'subscription($c: ID!) { messageAdded(conversationId: $c, afterSeq: 0) { seq body } }';
/** How long to wait for a subscription to see something: an upper bound for a loaded machine, not a latency claim. */
const PATIENCE_MS = 30_000;

describe.skipIf(!bin)('instances over a Redis Cluster', () => {
  let cluster: RedisClusterHandle;
  let db: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  const users: TestUser[] = [];

  beforeAll(async () => {
    [cluster, db] = await Promise.all([startRedisCluster(bin!), createTestDatabase()]);
    // FANOUT_DIRECT_MAX=3: direct conversations go to user channels, groups of five to their conversation channel.
    const env = { DATABASE_URL: db.url, REDIS_CLUSTER_NODES: cluster.seeds.join(','), FANOUT_DIRECT_MAX: '3', DELIVERY_CHECK_MS: '1000' };
    a = await TestServer.start({ ...env, INSTANCE_ID: uid('a') });
    b = await TestServer.start({ ...env, INSTANCE_ID: uid('b') });
  }, 120_000);
  afterAll(async () => {
    await Promise.all(users.map((u) => u.closeSockets()));
    await a?.stop();
    await b?.stop();
    await db?.drop();
    await cluster?.close();
  });

  async function on(server: TestServer, name: string): Promise<TestUser> {
    const user = await server.user(uid(name), name);
    users.push(user);
    return user;
  }

  /** A connection to the master serving a channel now. */
  async function masterOf(channel: string): Promise<Redis> {
    const { port } = await cluster.masterOf(keySlot(channel));
    return new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  }

  async function shardSubscribers(channel: string): Promise<number> {
    const redis = await masterOf(channel);
    try {
      await redis.connect();
      const [, count] = (await redis.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number];
      return Number(count);
    } finally {
      redis.disconnect();
    }
  }

  it('places channels and presence keys in the slots Redis computes', async () => {
    const redis = new Redis({ port: Number(cluster.seeds[0]!.split(':')[1]), host: '127.0.0.1' });
    try {
      for (const key of [channels.user('alice'), channels.conversation('6f1c0000-0000-4000-8000-000000000001'), 'chat:presence:{p7}:user:bob', 'a{}b{c}', 'héllo']) {
        expect(keySlot(key), key).toBe(Number(await redis.call('CLUSTER', 'KEYSLOT', key)));
      }
    } finally {
      redis.disconnect();
    }
  });

  it('delivers between instances over sharded channels: direct, large groups, joins, presence', async () => {
    const alice = await on(a, 'alice');
    const bob = await on(b, 'bob');
    const dm = (await alice.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: bob.id })).startDirectConversation.id;
    const bobInbox = bob.subscribe('subscription { inbox { __typename ... on Message { body } ... on ConversationJoined { conversationId } } }');
    const bobPresence = bob.subscribe('subscription { presence { user { id } online } }');
    await b.listening(bob.id);
    // Bob's instance holds his user channel as a sharded subscription on the master of its slot, not a classic one.
    expect(await shardSubscribers(channels.user(bob.id))).toBe(1);

    for (let i = 1; i <= 3; i++) await alice.ok(SEND, { c: dm, b: `dm ${i}`, m: `dm-${i}` });
    const members = [bob, await on(b, 'm1'), await on(a, 'm2'), await on(b, 'm3')];
    const group = (await alice.ok('mutation($m: [ID!]!) { createGroup(title: "big", memberIds: $m) { id } }', { m: members.map((m) => m.id) })).createGroup.id;
    const groupSubs = members.map((m) => m.subscribe(MESSAGE_ADDED, { c: group }));
    for (let i = 1; i <= 3; i++) await alice.ok(SEND, { c: group, b: `group ${i}`, m: `group-${i}` });

    await bobInbox.until((s) => s.results.length >= 7, PATIENCE_MS, 'three direct messages, a join and three group messages');
    expect(bobInbox.data.map((d) => d.inbox)).toEqual([
      { __typename: 'Message', body: 'dm 1' },
      { __typename: 'Message', body: 'dm 2' },
      { __typename: 'Message', body: 'dm 3' },
      { __typename: 'ConversationJoined', conversationId: group },
      { __typename: 'Message', body: 'group 1' },
      { __typename: 'Message', body: 'group 2' },
      { __typename: 'Message', body: 'group 3' },
    ]);
    for (const sub of groupSubs) {
      await sub.until((s) => s.results.length >= 3, PATIENCE_MS, 'the group messages');
      expect(sub.data.map((d) => d.messageAdded.seq)).toEqual([1, 2, 3]);
    }
    // Alice is connected to the other instance: Bob's presence hears it through her presence channel.
    const aliceSocket = alice.subscribe(MESSAGE_ADDED, { c: dm });
    await bobPresence.until((s) => s.data.some((d) => d.presence.user.id === alice.id && d.presence.online), PATIENCE_MS, 'alice online');
    aliceSocket.close();
  }, 3 * PATIENCE_MS); // longer than one wait, so that a wait that runs out says which it was

  it('finds the cluster from REDIS_URL naming any one of its nodes', async () => {
    const c = await TestServer.start({ DATABASE_URL: db.url, REDIS_URL: `redis://${cluster.seeds.at(-1)}`, INSTANCE_ID: uid('c') });
    try {
      const sender = await on(a, 'sender');
      const reader = await on(c, 'reader');
      const dm = (await sender.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: reader.id })).startDirectConversation.id;
      const sub = reader.subscribe(MESSAGE_ADDED, { c: dm });
      await c.listening(reader.id);
      expect(await shardSubscribers(channels.user(reader.id))).toBe(1);
      await sender.ok(SEND, { c: dm, b: 'found you', m: 'found-1' });
      await sub.until((s) => s.results.length >= 1, PATIENCE_MS, 'the message');
      expect(sub.data[0]!.messageAdded.body).toBe('found you');
      await reader.closeSockets();
    } finally {
      await c.stop();
    }
  });

  it("follows a subscriber's channel when its slot moves to another master", async () => {
    const sender = await on(a, 'mover');
    const receiver = await on(b, 'moved');
    const dm = (await sender.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: receiver.id })).startDirectConversation.id;
    const sub = receiver.subscribe(MESSAGE_ADDED, { c: dm });
    await b.listening(receiver.id);
    await sender.ok(SEND, { c: dm, b: 'before the move', m: 'mv-1' });
    await sub.until((s) => s.results.length >= 1, PATIENCE_MS, 'the first message');

    const channel = channels.user(receiver.id);
    const slot = keySlot(channel);
    const from = await cluster.masterOf(slot);
    const to = (await cluster.masters()).find((m) => m.port !== from.port)!;
    await cluster.moveSlot(slot, to);
    // B's broker notices (Redis unsubscribes it, or the slot map changed) and subscribes on the new master.
    await waitUntil(async () => (await shardSubscribers(channel)) === 1, 'the channel on its new master');
    for (let i = 2; i <= 4; i++) await sender.ok(SEND, { c: dm, b: `after the move ${i}`, m: `mv-${i}` });
    await sub.until((s) => s.results.length >= 4, PATIENCE_MS, 'the messages after the move');
    expect(sub.data.map((d) => d.messageAdded.seq)).toEqual([1, 2, 3, 4]);
  });

  it('loses nothing acknowledged when the master of a subscriber\'s channel is killed during traffic, and subscribes again on the promoted replica', async () => {
    // Receivers on B, senders on A, one direct conversation each: their user channels spread over the masters.
    const pairs: { sender: TestUser; receiver: TestUser; c: string; sub: Subscription; acked: number[]; ackedAt: number[] }[] = [];
    for (let i = 0; i < 6; i++) {
      const sender = await on(a, `s${i}`);
      const receiver = await on(b, `r${i}`);
      const c = (await sender.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: receiver.id })).startDirectConversation.id;
      pairs.push({ sender, receiver, c, sub: receiver.subscribe(MESSAGE_ADDED, { c }), acked: [], ackedAt: [] });
    }
    for (const pair of pairs) await b.listening(pair.receiver.id);
    const victimChannel = channels.user(pairs[0]!.receiver.id);
    const victim = await cluster.masterOf(keySlot(victimChannel));

    let sending = true;
    const traffic = pairs.map(async (pair, i) => {
      let n = 0;
      while (sending) {
        const result = await pair.sender.ok(SEND, { c: pair.c, b: `m${++n}`, m: `${i}-${n}` });
        pair.acked.push(result.sendMessage.seq);
        pair.ackedAt.push(Date.now());
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
    });
    const ackedNow = () => pairs.reduce((sum, p) => sum + p.acked.length, 0);
    await waitUntil(() => ackedNow() >= 30, 'messages flowing before the failure');

    cluster.kill(victim.port);
    await cluster.waitUntilHealthy(PATIENCE_MS);
    const promoted = await cluster.masterOf(keySlot(victimChannel));
    expect(promoted.port).not.toBe(victim.port);
    // B's broker finds the promoted replica and subscribes there again (acknowledged by Redis).
    await waitUntil(async () => (await shardSubscribers(victimChannel)) === 1, "the receiver's channel on the promoted replica");
    const afterRecovery = ackedNow();
    await waitUntil(() => ackedNow() >= afterRecovery + 30, 'messages flowing after the failover');
    sending = false;
    await Promise.all(traffic);

    for (const pair of pairs) {
      await pair.sub.until((s) => s.results.length >= pair.acked.length, PATIENCE_MS, `every acknowledged message of ${pair.c}`);
      expect(pair.sub.data.map((d) => d.messageAdded.seq), 'each acknowledged message once, in order').toEqual(pair.acked);
    }
    expect(b.app.realtime.hub.stats().live).toBeGreaterThanOrEqual(pairs.length);
    // Reported, not asserted (the machine is shared): how late the slowest message was, against the stated bound.
    const lags = pairs.flatMap((pair) => pair.ackedAt.map((at, i) => pair.sub.receivedAt[i]! - at));
    const metric = async (server: TestServer, name: string) => {
      const text = await (await fetch(server.url.replace('/graphql', '/metrics'))).text();
      return Number(text.split('\n').find((line) => line.startsWith(`${name} `))?.split(' ')[1] ?? 0);
    };
    console.log(
      `\nRedis Cluster failover: ${lags.length} messages acknowledged, master :${victim.port} killed, replica :${promoted.port} promoted; ` +
        `${await metric(a, 'chat_publish_failures_total')} publishes failed, ${await metric(b, 'chat_messages_repaired_total')} messages delivered by the position check; ` +
        `slowest acknowledged → delivered ${Math.max(...lags)} ms (DELIVERY_CHECK_MS 1000; docs/architecture.md, "The delivery bound and the position check")\n`,
    );
    const ready = await fetch(b.url.replace('/graphql', '/ready'));
    expect(ready.status).toBe(200);
  }, 120_000);
});

async function waitUntil(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = PATIENCE_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
