import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TestServer, uid, type TestUser } from './support/server.js';

// The conversation list is chosen on the viewer's shard of the inbox index,
// which keeps each member's copy of a conversation's activity
// (docs/citus.md, "The conversation list"). These check that sends keep
// those copies right, for small and large conversations.

const SEND = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq } }';
const LIST = '{ conversations(first: 50) { edges { node { id } } } }';

let db: TestDatabase;
let server: TestServer;
const users: TestUser[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  // FANOUT_DIRECT_MAX=2: direct conversations are small (their member list comes back with a send), groups large.
  server = await TestServer.start({ DATABASE_URL: db.url, FANOUT_DIRECT_MAX: '2' });
});
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

async function user(name: string): Promise<TestUser> {
  const u = await server.user(uid(name), name);
  users.push(u);
  return u;
}
const list = async (u: TestUser) => ((await u.ok(LIST)).conversations.edges as { node: { id: string } }[]).map((e) => e.node.id);
const direct = async (from: TestUser, to: TestUser) => (await from.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: to.id })).startDirectConversation.id as string;

describe("the inbox index's order", () => {
  it("moves a small conversation to the top of every member's list as soon as a message is sent", async () => {
    const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
    const withBob = await direct(alice, bob);
    const withCarol = await direct(alice, carol);
    const bobAndCarol = await direct(bob, carol);
    expect(await list(bob)).toEqual([bobAndCarol, withBob]);
    await alice.ok(SEND, { c: withBob, b: 'hi', m: 'o-1' });
    expect(await list(alice)).toEqual([withBob, withCarol]);
    expect(await list(bob)).toEqual([withBob, bobAndCarol]);
    expect(await list(carol)).toEqual([bobAndCarol, withCarol]);
  });

  it('ends at the last message when many are sent at once: every copy equals the conversation\'s own activity', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await direct(alice, bob);
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? alice : bob).ok(SEND, { c, b: `m${i}`, m: `burst-${i}` })));
    const copies = await db.query<{ user_id: string; same: boolean }>(
      `SELECT uc.user_id, uc.active_at = c.last_message_at AS same
         FROM user_conversations uc, (SELECT id, last_message_at FROM conversations WHERE id = $1) c
        WHERE uc.conversation_id = $1 ORDER BY 1`,
      [c],
    );
    expect(copies.map((r) => r.same)).toEqual([true, true]);
  });

  it("moves a large conversation up for its sender at once, and for every other member in the background", async () => {
    const [owner, m1, m2] = [await user('owner'), await user('m1'), await user('m2')];
    const quiet = await direct(m1, m2);
    const group = (await owner.ok('mutation($m: [ID!]!) { createGroup(title: "big", memberIds: $m) { id } }', { m: [m1.id, m2.id] })).createGroup.id as string;
    await m1.ok(SEND, { c: quiet, b: 'psst', m: 'q-1' });
    expect((await list(m2))[0]).toBe(quiet);
    await m2.ok(SEND, { c: group, b: 'hello all', m: 'g-1' });
    expect((await list(m2))[0]).toBe(group);
    for (const member of [owner, m1]) {
      const deadline = Date.now() + 30_000;
      while ((await list(member))[0] !== group) {
        if (Date.now() > deadline) throw new Error(`the group never reached the top of ${member.id}'s list`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  });
});
