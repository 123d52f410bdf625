import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, holdConversation, type TestDatabase } from './support/database.js';
import { TestServer, uid, type TestUser } from './support/server.js';

// What an instance does between SIGTERM and exit (src/main.ts calls app.stop()):
// requests already running are answered, deferred writes are made, and only
// then do the database pool and Redis close. A rolling restart behind a load
// balancer depends on it (test/cluster.test.ts): a request cut off by the
// pool closing under it is an INTERNAL_SERVER_ERROR for a send that may or
// may not be stored.

const SEND = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq createdAt } }';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

async function pair(server: TestServer): Promise<[TestUser, TestUser, string]> {
  const alice = await server.user(uid('alice'), 'Alice');
  const bob = await server.user(uid('bob'), 'Bob');
  const c = (await alice.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: bob.id })).startDirectConversation.id as string;
  return [alice, bob, c];
}

describe('stopping an instance', () => {
  it('answers a request that is running when the stop begins, and stops only after it', async () => {
    const server = await TestServer.start({ DATABASE_URL: db.url });
    const [alice, , c] = await pair(server);
    // Hold the conversation's row so that a send waits inside the database.
    const blocker = await holdConversation(db.url, c);
    try {
      const answer = fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${alice.token}` },
        body: JSON.stringify({ query: SEND, variables: { c, b: 'in flight', m: 'drain-1' } }),
      });
      // The send is waiting for the lock: it is in flight, inside the database.
      await blocker.untilWaiting(1);
      let stopped = false;
      const stopping = server.stop().then(() => (stopped = true));
      // Whatever the stop does first, it must not get past the running request.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(stopped).toBe(false);
      await blocker.release();
      const response = await answer;
      // Its connection ends after the answer: a load balancer does not send another request on it.
      expect(response.headers.get('connection')).toBe('close');
      const body = await response.json();
      expect(body.errors).toBeUndefined();
      expect(body.data.sendMessage.seq).toBe(1);
      await stopping;
      const rows = await db.query('SELECT body FROM messages WHERE conversation_id = $1', [c]);
      expect(rows.map((r) => r.body)).toEqual(['in flight']);
      // What the send writes after its message, before answering, was written
      // too (the sender's inbox copy moves up), on a pool not yet closed.
      const copies = await db.query<{ active_at: Date }>('SELECT active_at FROM user_conversations WHERE user_id = $1 AND conversation_id = $2', [alice.id, c]);
      expect(copies.map((r) => r.active_at.toISOString())).toEqual([body.data.sendMessage.createdAt]);
    } finally {
      await blocker.end();
      await server.stop();
    }
  });

  it('without Redis, takes its users offline (last seen when their connections ended) even within a presence grace', async () => {
    // A long grace: without the stop seeing to it, the goodbye would never be written.
    const server = await TestServer.start({ DATABASE_URL: db.url, PRESENCE_GRACE_MS: '600000' });
    const [alice] = await pair(server);
    const socket = alice.socket();
    await new Promise<void>((resolve) => socket.on('connected', () => resolve()));
    const online = async () => (await db.query<{ last_seen_at: Date | null }>('SELECT last_seen_at FROM users WHERE id = $1', [alice.id]))[0]?.last_seen_at;
    // Online is written when the connection opens (after it is acknowledged: wait for it).
    for (let polls = 0; !(await online()); polls++) {
      expect(polls, 'the online time written').toBeLessThan(500);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const ended = Date.now();
    await server.stop();
    expect((await online())!.getTime()).toBeGreaterThanOrEqual(ended);
  });

  it("writes the other members' deferred inbox moves before the database pool closes", async () => {
    const server = await TestServer.start({ DATABASE_URL: db.url });
    const [alice, bob, c] = await pair(server);
    // The first send moves bob's copy at once; the second one's move waits out
    // the once-a-second interval (src/chat/inbox-order.ts), and the stop comes first.
    await alice.ok(SEND, { c, b: 'one', m: 'defer-1' });
    const second = (await alice.ok(SEND, { c, b: 'two', m: 'defer-2' })).sendMessage;
    await server.stop();
    const rows = await db.query<{ active_at: Date }>('SELECT active_at FROM user_conversations WHERE user_id = $1 AND conversation_id = $2', [bob.id, c]);
    expect(rows.map((r) => r.active_at.toISOString())).toEqual([second.createdAt]);
  });
});
