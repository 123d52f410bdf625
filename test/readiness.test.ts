import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, holdConversation, type TestDatabase } from './support/database.js';
import { TestServer, uid } from './support/server.js';

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  // One pooled connection: a request waiting inside the database takes it.
  server = await TestServer.start({ DATABASE_URL: db.url, DATABASE_POOL_SIZE: '1' });
});
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

describe('/ready', () => {
  it('answers 503 when the database cannot answer within its bound, rather than leaving the probe waiting; 200 again after', async () => {
    const ready = () => fetch(server.url.replace('/graphql', '/ready'), { signal: AbortSignal.timeout(20_000) });
    expect((await ready()).status).toBe(200);
    const alice = await server.user(uid('alice'), 'Alice');
    const bob = await server.user(uid('bob'), 'Bob');
    const c = (await alice.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: bob.id })).startDirectConversation.id as string;
    const blocker = await holdConversation(db.url, c);
    try {
      const send = alice.query('mutation($c: ID!) { sendMessage(conversationId: $c, body: "held", clientMessageId: "r-1") { seq } }', { c });
      await blocker.untilWaiting(1);
      // The only pooled connection is held by the send.
      const response = await ready();
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({ ready: false, database: false });
      await blocker.release();
      expect((await send).data?.sendMessage.seq).toBe(1);
    } finally {
      await blocker.end();
    }
    expect((await ready()).status).toBe(200);
  });
});
