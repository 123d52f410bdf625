import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { Redis } from 'ioredis';
import { TestServer, TestUser, uid } from './support/server.js';

const redisUrl = inject('redisUrl');

const SEND = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq } }';
const MESSAGE_ADDED = 'subscription($c: ID!, $a: Int) { messageAdded(conversationId: $c, afterSeq: $a) { seq body } }';

// Two instances sharing one database and one Redis: what one publishes, the other delivers.
describe.skipIf(!redisUrl)('the Redis bus between instances', () => {
  let db: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  const bName = uid('b');
  const users: TestUser[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    // A small threshold so that both fan-out paths are easy to reach.
    const env = { DATABASE_URL: db.url, REDIS_URL: redisUrl!, FANOUT_DIRECT_MAX: '3' };
    a = await TestServer.start({ ...env, INSTANCE_ID: uid('a') });
    b = await TestServer.start({ ...env, INSTANCE_ID: bName });
  });
  afterAll(async () => {
    await Promise.all(users.map((u) => u.closeSockets()));
    await a?.stop();
    await b?.stop();
    await db?.drop();
  });

  async function on(server: TestServer, name: string): Promise<TestUser> {
    const user = await server.user(uid(name), name);
    users.push(user);
    return user;
  }

  it('delivers a message sent on one instance to a subscriber on another (fan-out on write)', async () => {
    const alice = await on(a, 'alice');
    const bob = await on(b, 'bob');
    const c = (await alice.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: bob.id })).startDirectConversation.id;
    const live = b.app.realtime.hub.stats().live;
    const sub = bob.subscribe(MESSAGE_ADDED, { c });
    await b.live(live + 1);
    for (let i = 1; i <= 5; i++) await alice.ok(SEND, { c, b: `from a ${i}`, m: `m${i}` });
    await sub.count(5);
    expect(sub.data.map((d) => d.messageAdded.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('delivers a large conversation through its conversation channel (fan-out on read)', async () => {
    const owner = await on(a, 'owner');
    const members = [await on(b, 'm1'), await on(b, 'm2'), await on(a, 'm3'), await on(b, 'm4')];
    const c = (await owner.ok('mutation($m: [ID!]!) { createGroup(title: "big", memberIds: $m) { id memberCount } }', { m: members.map((m) => m.id) })).createGroup.id;
    const subs = members.map((m) => m.subscribe(MESSAGE_ADDED, { c, a: 0 }));
    for (let i = 1; i <= 10; i++) await owner.ok(SEND, { c, b: `big ${i}`, m: `big${i}` });
    for (const sub of subs) {
      await sub.count(10);
      expect(sub.data.map((d) => d.messageAdded.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }
  });

  it('switches a live conversation to fan-out on read when it grows past the threshold', async () => {
    const owner = await on(a, 'owner');
    const friend = await on(b, 'friend');
    const c = (await owner.ok('mutation($m: [ID!]!) { createGroup(title: "growing", memberIds: $m) { id } }', { m: [friend.id] })).createGroup.id;
    const sub = friend.subscribe(MESSAGE_ADDED, { c, a: 0 });
    await owner.ok(SEND, { c, b: 'small', m: 's1' });
    await sub.count(1);
    const newcomers = [await on(a, 'n1'), await on(a, 'n2'), await on(a, 'n3')];
    await owner.ok('mutation($c: ID!, $u: [ID!]!) { addMembers(conversationId: $c, userIds: $u) { memberCount } }', { c, u: newcomers.map((n) => n.id) });
    for (let i = 2; i <= 6; i++) await owner.ok(SEND, { c, b: `large ${i}`, m: `l${i}` });
    await sub.count(6);
    expect(sub.data.map((d) => d.messageAdded.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("tells a user's inbox on one instance about a group created on another", async () => {
    const creator = await on(a, 'creator');
    const member = await on(b, 'member');
    const direct = (await creator.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: member.id })).startDirectConversation.id;
    const sub = member.subscribe('subscription { inbox { __typename ... on Message { body } ... on ConversationJoined { conversationId } } }');
    // Once a live message arrives the subscription has certainly started.
    await b.listening(member.id);
    await creator.ok(SEND, { c: direct, b: 'ping', m: 'p1' });
    await sub.count(1);
    const c = (await creator.ok('mutation($m: [ID!]!) { createGroup(title: "hi", memberIds: $m) { id } }', { m: [member.id] })).createGroup.id;
    await creator.ok(SEND, { c, b: 'welcome', m: 'w1' });
    await sub.count(3);
    expect(sub.data.map((d) => d.inbox)).toEqual([
      { __typename: 'Message', body: 'ping' },
      { __typename: 'ConversationJoined', conversationId: c },
      { __typename: 'Message', body: 'welcome' },
    ]);
  });

  it('recovers what was published while its Redis subscription was down', async () => {
    const alice = await on(a, 'alice');
    const bob = await on(b, 'bob');
    const c = (await alice.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: bob.id })).startDirectConversation.id;
    const sub = bob.subscribe(MESSAGE_ADDED, { c, a: 0 });
    await alice.ok(SEND, { c, b: 'before', m: 'r1' });
    await sub.count(1);
    // Cut instance b's subscriber connection, as a network blip or a Redis failover would.
    const admin = new Redis(redisUrl!);
    try {
      const clients = (await admin.client('LIST')) as string;
      const subscriber = clients
        .split('\n')
        .find((line) => line.includes(`name=chat:${bName} `) && /\bsub=[1-9]/.test(line));
      expect(subscriber).toBeDefined();
      await admin.client('KILL', 'ID', /\bid=(\d+)/.exec(subscriber!)![1]!);
    } finally {
      admin.disconnect();
    }
    // Published while b is reconnecting: Redis drops these for b.
    await alice.ok(SEND, { c, b: 'during 1', m: 'r2' });
    await alice.ok(SEND, { c, b: 'during 2', m: 'r3' });
    // No further message arrives to reveal the gap: b's resync on reconnect must find it.
    await sub.count(3, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(sub.data.map((d) => d.messageAdded.body)).toEqual(['before', 'during 1', 'during 2']);
  });

  it("ends a removed member's subscription even when the removal's event was lost", async () => {
    const owner = await on(a, 'owner');
    const gone = await on(b, 'gone');
    const c = (await owner.ok('mutation($m: [ID!]!) { createGroup(title: "lossy", memberIds: $m) { id } }', { m: [gone.id] })).createGroup.id;
    const sub = gone.subscribe(MESSAGE_ADDED, { c, a: 0 });
    await owner.ok(SEND, { c, b: 'hello', m: 'l1' });
    await sub.count(1);
    const admin = new Redis(redisUrl!);
    try {
      const clients = (await admin.client('LIST')) as string;
      const subscriber = clients.split('\n').find((line) => line.includes(`name=chat:${bName} `) && /\bsub=[1-9]/.test(line));
      await admin.client('KILL', 'ID', /\bid=(\d+)/.exec(subscriber!)![1]!);
    } finally {
      admin.disconnect();
    }
    // Removed while instance b cannot hear it: the `left` event is lost.
    await owner.ok('mutation($c: ID!, $u: ID!) { removeMember(conversationId: $c, userId: $u) { id } }', { c, u: gone.id });
    await sub.until((s) => s.error !== undefined || s.completed, 15_000, 'the end of the subscription');
    const error = (sub.error as any[])?.[0] ?? sub.results.at(-1)?.errors?.[0];
    expect(error?.extensions?.code).toBe('FORBIDDEN');
  });
});
