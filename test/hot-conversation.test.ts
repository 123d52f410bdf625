import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SENDS_IN_FLIGHT_PER_CONVERSATION } from '../src/chat/conversation-gate.js';
import { createTestDatabase, holdConversation, type TestDatabase } from './support/database.js';
import { TestServer, uid, type TestUser } from './support/server.js';

// Sends into one conversation take its row lock one at a time, so an instance
// lets only a couple of them hold a database connection at once and queues
// the rest in memory: a hot conversation cannot fill the pool
// (docs/citus.md, "A hot conversation").

const SEND = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq } }';

let db: TestDatabase;
let server: TestServer;
/** Each chat_send_message call, as [start, end] on this process's clock. */
const calls: { start: number; end: number }[] = [];
const users: TestUser[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start(
    { DATABASE_URL: db.url, DATABASE_POOL_SIZE: '10' },
    {
      onQuery: (sql, ms) => {
        if (!sql.includes('chat_send_message(')) return;
        const end = performance.now();
        calls.push({ start: end - ms, end });
      },
    },
  );
});
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

describe('a hot conversation', () => {
  it(`holds at most ${SENDS_IN_FLIGHT_PER_CONVERSATION} database connections for its sends, and stores every one, in order`, async () => {
    const owner = await server.user(uid('owner'), 'Owner');
    const members = await Promise.all(Array.from({ length: 8 }, (_, i) => server.user(uid(`m${i}`), `M${i}`)));
    users.push(owner, ...members);
    const c = (await owner.ok('mutation($m: [ID!]!) { createGroup(title: "hot", memberIds: $m) { id } }', { m: members.map((m) => m.id) })).createGroup.id;
    calls.length = 0;
    const seqs = await Promise.all(
      Array.from({ length: 40 }, (_, i) => members[i % members.length]!.ok(SEND, { c, b: `m${i}`, m: `hot-${i}` }).then((d) => d.sendMessage.seq as number)),
    );
    expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    // The most calls running at one moment: each call's start is checked against every call.
    const overlap = Math.max(...calls.map((a) => calls.filter((b) => b.start <= a.start && a.start < b.end).length));
    expect(calls).toHaveLength(40);
    expect(overlap).toBeLessThanOrEqual(SENDS_IN_FLIGHT_PER_CONVERSATION);
  });

  it("lets another conversation's sends through while it is busy", async () => {
    const [a, b, c, d] = await Promise.all(['a', 'b', 'c', 'd'].map((n) => server.user(uid(n), n)));
    users.push(a!, b!, c!, d!);
    const hot = (await a!.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: b!.id })).startDirectConversation.id;
    const quiet = (await c!.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: d!.id })).startDirectConversation.id;
    calls.length = 0;
    // The hot conversation's row is held, so its sends wait for it as long as this test says:
    // whatever the machine's speed, they are all still waiting while the other send goes through.
    const blocker = await holdConversation(db.url, hot);
    try {
      let burstDone = false;
      const burst = Promise.all(Array.from({ length: 30 }, (_, i) => a!.ok(SEND, { c: hot, b: `h${i}`, m: `h-${i}` }))).then(() => (burstDone = true));
      // Thirty sends at the lock would take every pooled connection (10) without the gate.
      await blocker.untilWaiting(SENDS_IN_FLIGHT_PER_CONVERSATION);
      const other = await c!.ok(SEND, { c: quiet, b: 'meanwhile', m: 'q-1' });
      expect(burstDone).toBe(false);
      expect(other.sendMessage.seq).toBe(1);
      expect(await blocker.waiting()).toBe(SENDS_IN_FLIGHT_PER_CONVERSATION);
      await blocker.release();
      await burst;
    } finally {
      await blocker.end();
    }
  });
});
