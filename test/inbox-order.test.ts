import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TestServer, uid, type TestUser } from './support/server.js';

// The conversation list is chosen on the viewer's shard of the inbox index,
// which keeps each member's copy of a conversation's activity
// (docs/citus.md, "The conversation list"). These check that sends keep
// those copies right: the sender's at once, the other members' in the
// background (at most once a second, or every 10 s for a large conversation).

/** How long the background moves may take here: an upper bound for a loaded machine, not a latency claim. */
const PATIENCE_MS = 30_000;

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + PATIENCE_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

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
  it("moves a conversation to the top of the sender's list at once, and of the other members' lists soon after", async () => {
    const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
    const withBob = await direct(alice, bob);
    const withCarol = await direct(alice, carol);
    const bobAndCarol = await direct(bob, carol);
    expect(await list(bob)).toEqual([bobAndCarol, withBob]);
    await alice.ok(SEND, { c: withBob, b: 'hi', m: 'o-1' });
    expect(await list(alice)).toEqual([withBob, withCarol]);
    await eventually(async () => (await list(bob))[0] === withBob, "the conversation at the top of bob's list");
    expect(await list(bob)).toEqual([withBob, bobAndCarol]);
    expect(await list(carol)).toEqual([bobAndCarol, withCarol]);
  });

  it('ends at the last message when many are sent at once: every copy equals the conversation\'s own activity', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await direct(alice, bob);
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? alice : bob).ok(SEND, { c, b: `m${i}`, m: `burst-${i}` })));
    const copies = () =>
      db.query<{ user_id: string; same: boolean }>(
        `SELECT uc.user_id, uc.active_at = c.last_message_at AS same
           FROM user_conversations uc, (SELECT id, last_message_at FROM conversations WHERE id = $1) c
          WHERE uc.conversation_id = $1 ORDER BY 1`,
        [c],
      );
    await eventually(async () => (await copies()).every((r) => r.same), 'both copies at the last message');
    expect((await copies()).map((r) => r.same)).toEqual([true, true]);
  });

  it("moves a large conversation up for its sender at once, and for every other member in the background", async () => {
    const [owner, m1, m2] = [await user('owner'), await user('m1'), await user('m2')];
    const quiet = await direct(m1, m2);
    const group = (await owner.ok('mutation($m: [ID!]!) { createGroup(title: "big", memberIds: $m) { id } }', { m: [m1.id, m2.id] })).createGroup.id as string;
    await m1.ok(SEND, { c: quiet, b: 'psst', m: 'q-1' });
    await eventually(async () => (await list(m2))[0] === quiet, "the direct conversation at the top of m2's list");
    await m2.ok(SEND, { c: group, b: 'hello all', m: 'g-1' });
    expect((await list(m2))[0]).toBe(group);
    for (const member of [owner, m1]) await eventually(async () => (await list(member))[0] === group, `the group at the top of ${member.id}'s list`);
  });

  it('moves a batch of rows in one call of chat_move_inbox_rows: each pair alone, only forward (several user shards on Citus)', async () => {
    // What the group commit sends when moves coincide (src/chat/inbox-order.ts).
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const people = Array.from({ length: 12 }, () => uid('batch'));
    await db.query('INSERT INTO users (id, name) SELECT u, u FROM unnest($1::text[]) u', [people]);
    for (const c of ids) await db.query("INSERT INTO conversations (id, kind, title, member_count) VALUES ($1, 'GROUP', 't', 12)", [c]);
    for (const c of ids) await db.query("INSERT INTO user_conversations (user_id, conversation_id, active_at) SELECT u, $1, '2020-01-01' FROM unnest($2::text[]) u", [c, people]);
    const at = new Date('2026-01-01T00:00:00Z');
    // Every person in the first two conversations, one person earlier than now in the first.
    const pairs = people.flatMap((u) => ids.slice(0, 2).map((c) => ({ u, c, at: u === people[0] && c === ids[0] ? new Date('2019-01-01') : at })));
    const move = () =>
      db.query<{ moved: number }>('SELECT chat_move_inbox_rows($1::text[], $2::uuid[], $3::timestamptz[]) AS moved', [pairs.map((p) => p.u), pairs.map((p) => p.c), pairs.map((p) => p.at)]);
    expect((await move())[0]!.moved).toBe(23);
    const rows = await db.query<{ conversation_id: string; active_at: Date; n: number }>(
      'SELECT conversation_id::text, active_at, count(*)::int AS n FROM user_conversations WHERE conversation_id = ANY($1::uuid[]) GROUP BY 1, 2',
      [ids],
    );
    const count = (c: string, when: string) => rows.find((r) => r.conversation_id === c && r.active_at.toISOString() === when)?.n ?? 0;
    expect([count(ids[0]!, at.toISOString()), count(ids[0]!, '2020-01-01T00:00:00.000Z')]).toEqual([11, 1]);
    expect(count(ids[1]!, at.toISOString())).toBe(12);
    expect(count(ids[2]!, '2020-01-01T00:00:00.000Z')).toBe(12);
    expect((await move())[0]!.moved).toBe(0);
  });
});
