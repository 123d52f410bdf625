import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TestServer, TRANSPORTS, uid, type TestUser } from './support/server.js';

// Issue 10: any authenticated user could read anyone's `online` and exact
// `lastSeenAt` through user(id:), while the presence subscription refused the
// same stranger. One rule now (README, "Presence and privacy"): you see your
// own presence and that of people you share a conversation with; to anyone
// else it is FORBIDDEN, in queries as in subscriptions.

let db: TestDatabase;
let server: TestServer;
let alice: TestUser;
let bob: TestUser;
let mallory: TestUser;
let group: string;

const PRESENCE = 'query($id: ID!) { user(id: $id) { id name online lastSeenAt } }';

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
  [alice, bob, mallory] = [await server.user(uid('alice')), await server.user(uid('bob')), await server.user(uid('mallory'))];
  group = (await alice.ok('mutation($m: [ID!]!) { createGroup(title: "friends", memberIds: $m) { id } }', { m: [bob.id] })).createGroup.id;
});
afterAll(async () => {
  await Promise.all([alice, bob, mallory].map((u) => u?.closeSockets()));
  await server?.stop();
  await db?.drop();
});

describe('presence in queries', () => {
  it('is FORBIDDEN to someone who shares no conversation with the user, for online and lastSeenAt alike', async () => {
    for (const field of ['online', 'lastSeenAt']) {
      const result = await mallory.query(`query($id: ID!) { user(id: $id) { id ${field} } }`, { id: alice.id });
      expect(result.errors?.[0]?.extensions?.code, field).toBe('FORBIDDEN');
      expect(result.errors?.[0]?.path, field).toEqual(['user', field]);
    }
  });

  it("still shows a stranger the user's id and name", async () => {
    expect((await mallory.ok('query($id: ID!) { user(id: $id) { id name } }', { id: alice.id })).user).toEqual({ id: alice.id, name: alice.id });
  });

  it('is visible to the user themself and to people who share a group or a direct conversation with them', async () => {
    expect((await alice.ok('{ viewer { online lastSeenAt } }')).viewer).toHaveProperty('online');
    expect((await bob.ok(PRESENCE, { id: alice.id })).user).toHaveProperty('online');
    const carol = await server.user(uid('carol'));
    await carol.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: alice.id });
    expect((await carol.ok(PRESENCE, { id: alice.id })).user).toHaveProperty('lastSeenAt');
  });

  it('is visible through a conversation: members and senders', async () => {
    const members = await bob.ok('query($c: ID!) { conversation(id: $c) { members { edges { node { user { id online } } } } } }', { c: group });
    expect(members.conversation.members.edges.map((e: { node: { user: { online: boolean } } }) => typeof e.node.user.online)).toEqual(['boolean', 'boolean']);
    await alice.ok('mutation($c: ID!) { sendMessage(conversationId: $c, body: "hi", clientMessageId: "p-1") { seq } }', { c: group });
    const history = await bob.ok('query($c: ID!) { messages(conversationId: $c) { messages { sender { id online lastSeenAt } } } }', { c: group });
    expect(history.messages.messages[0].sender.id).toBe(alice.id);
  });

  it('stops being visible when the last shared conversation ends', async () => {
    const dave = await server.user(uid('dave'));
    const shared = (await dave.ok('mutation($m: [ID!]!) { createGroup(title: "brief", memberIds: $m) { id } }', { m: [mallory.id] })).createGroup.id;
    expect((await mallory.ok(PRESENCE, { id: dave.id })).user).toHaveProperty('online');
    await mallory.ok('mutation($c: ID!) { leaveConversation(conversationId: $c) }', { c: shared });
    expect(await mallory.errorCode(PRESENCE, { id: dave.id })).toBe('FORBIDDEN');
  });
});

describe.each(TRANSPORTS)('presence subscriptions over %s, by the same rule', (transport) => {
  it("refuses a stranger watching a conversation's members with FORBIDDEN, as the query does", async () => {
    const sub = mallory.subscribeVia(transport, 'subscription($c: ID) { presence(conversationId: $c) { online } }', { c: group });
    await sub.until((s) => s.ended, 10_000, 'the refusal');
    expect(sub.errorCode).toBe('FORBIDDEN');
    expect(await mallory.errorCode(PRESENCE, { id: alice.id })).toBe('FORBIDDEN');
    sub.close();
  });

  it('shows a member the others, as the query does', async () => {
    const sub = bob.subscribeVia(transport, 'subscription($c: ID) { presence(conversationId: $c) { user { id online } online } }', { c: group });
    await sub.count(1);
    expect(sub.data[0]!.presence.user.id).toBe(alice.id);
    expect((await bob.ok(PRESENCE, { id: alice.id })).user.id).toBe(alice.id);
    sub.close();
  });
});
