import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TestServer, TRANSPORTS, uid, type TestUser } from './support/server.js';

// Every app built in a process is its own: its services, its renderers, its
// error handling. Tests build several; so may anyone embedding the server.

let db: TestDatabase;
const users: TestUser[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await Promise.all(users.map((u) => u.closeSockets()));
  await db?.drop();
});

const SUBSCRIPTION = 'subscription($c: ID!) { messageAdded(conversationId: $c) { seq sender { id lastSeenAt } } }';
const SEND = 'mutation($c: ID!, $m: String!) { sendMessage(conversationId: $c, body: "hi", clientMessageId: $m) { seq } }';

describe.each(TRANSPORTS)('two apps in one process, over %s', (transport) => {
  it('renders live payloads with the services of the app that delivers them, after another app stopped', async () => {
    const first = await TestServer.start({ DATABASE_URL: db.url });
    const log: string[] = [];
    const second = await TestServer.start({ DATABASE_URL: db.url, LOG_LEVEL: 'error' }, {}, { write: (line) => log.push(line) });
    try {
      // The first app renders this selection first, then stops (its database pool with it).
      const [a1, b1] = [await first.user(uid('alice'), 'alice'), await first.user(uid('bob'), 'bob')];
      users.push(a1, b1);
      const c1 = (await a1.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: b1.id })).startDirectConversation.id;
      const warmup = b1.subscribeVia(transport, SUBSCRIPTION, { c: c1 });
      await first.listening(b1.id);
      await a1.ok(SEND, { c: c1, m: uid('m') });
      await warmup.count(1);
      await b1.closeSockets();
      await first.stop();

      const [alice, bob] = [await second.user(uid('alice'), 'alice'), await second.user(uid('bob'), 'bob')];
      users.push(alice, bob);
      const c = (await alice.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: bob.id })).startDirectConversation.id;
      const sub = bob.subscribeVia(transport, SUBSCRIPTION, { c });
      await second.listening(bob.id);
      await alice.ok(SEND, { c, m: uid('m') });
      await sub.count(1);
      expect(sub.results[0]).toEqual({ data: { messageAdded: { seq: 1, sender: { id: alice.id, lastSeenAt: null } } } });

      // A live payload whose rendering fails: the subscriber gets the masked
      // error, and the app logs it at error level (as for any operation).
      await new Promise((resolve) => setTimeout(resolve, 1100)); // past the loaders' one-second cache
      await db.query('ALTER TABLE users RENAME TO users_away');
      try {
        await alice.ok(SEND, { c, m: uid('m') });
        await sub.count(2);
      } finally {
        await db.query('ALTER TABLE users_away RENAME TO users');
      }
      expect(sub.results[1]!.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
      expect(sub.results[1]!.data).toEqual({ messageAdded: { seq: 2, sender: { id: alice.id, lastSeenAt: null } } });
      const errors = log.map((line) => JSON.parse(line)).filter((line) => line.level >= 50);
      expect(errors.some((line) => line.msg === 'unexpected error')).toBe(true);
    } finally {
      await first.stop();
      await second.stop();
    }
  });
});
