import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TestServer, uid, type TestUser } from './support/server.js';

let db: TestDatabase;
let server: TestServer;
const logs: Record<string, any>[] = [];
const users: TestUser[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url, LOG_LEVEL: 'debug' }, {}, { write: (line) => logs.push(JSON.parse(line)) });
});
afterAll(async () => {
  await Promise.all(users.map((u) => u.closeSockets()));
  await server?.stop();
  await db?.drop();
});

async function scrape(): Promise<Map<string, number>> {
  const text = await fetch(`http://127.0.0.1:${server.port}/metrics`).then((r) => r.text());
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const space = line.lastIndexOf(' ');
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

const SEND = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq } }';

describe('/metrics', () => {
  it('reports connections, subscriptions, sends, deliveries, latencies, pool and errors under real traffic', async () => {
    const alice = await server.user(uid('alice'));
    const members = await Promise.all([1, 2, 3].map((i) => server.user(uid(`m${i}`))));
    users.push(alice, ...members);
    const c = (await alice.ok('mutation($m: [ID!]!) { createGroup(title: "m", memberIds: $m) { id } }', { m: members.map((m) => m.id) })).createGroup.id;
    const before = await scrape();
    const live = server.app.realtime.hub.stats().live;
    const subs = members.map((m) => m.subscribe('subscription($c: ID!) { messageAdded(conversationId: $c, afterSeq: 0) { seq } }', { c }));
    await server.live(live + 3);
    for (let i = 0; i < 10; i++) await alice.ok(SEND, { c, b: `metric ${i}`, m: `mm${i}` });
    await Promise.all(subs.map((s) => s.count(10)));
    expect(await alice.errorCode('{ conversation(id: "not-a-uuid") { id } }')).toBe('NOT_FOUND');

    const after = await scrape();
    const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    expect(after.get('chat_connections')).toBeGreaterThanOrEqual(3);
    expect(after.get('chat_subscriptions_active{field="messageAdded"}')).toBeGreaterThanOrEqual(3);
    expect(delta('chat_messages_sent_total')).toBe(10);
    expect(delta('chat_messages_delivered_total')).toBeGreaterThanOrEqual(30);
    expect(delta('chat_operation_duration_seconds_count{type="mutation",field="sendMessage"}')).toBe(10);
    expect(delta('chat_delivery_latency_seconds_count')).toBeGreaterThanOrEqual(10);
    expect(delta('chat_pubsub_lag_seconds_count')).toBeGreaterThanOrEqual(10);
    expect(delta('chat_db_query_duration_seconds_count{outcome="ok"}')).toBeGreaterThan(10);
    expect(after.has('chat_db_pool_connections{state="total"}')).toBe(true);
    expect(delta('chat_graphql_errors_total{code="NOT_FOUND"}')).toBe(1);
    expect(after.get('chat_process_resident_memory_bytes')).toBeGreaterThan(0);
  });
});

describe('logs', () => {
  it('are JSON lines with request or operation ids, and never carry message bodies or tokens', async () => {
    const bob = await server.user(uid('bob'));
    users.push(bob);
    const c = (await bob.ok('mutation { createGroup(title: "logs", memberIds: []) { id } }')).createGroup.id;
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${bob.token}`, 'x-request-id': 'req-12345' },
      body: JSON.stringify({ query: SEND, variables: { c, b: 'top secret body', m: 'log-1' } }),
    });
    expect(response.headers.get('x-request-id')).toBe('req-12345');
    await bob.query(SEND, { c, b: '', m: 'log-2' }); // a failure, logged at info with its code
    const sub = bob.subscribe('subscription($c: ID!) { messageAdded(conversationId: $c, afterSeq: 0) { seq } }', { c });
    await sub.count(1);

    const mine = logs.filter((line) => line.requestId === 'req-12345');
    expect(mine).toContainEqual(expect.objectContaining({ msg: 'operation', operation: expect.objectContaining({ type: 'mutation', fields: ['sendMessage'] }) }));
    expect(logs).toContainEqual(expect.objectContaining({ msg: 'operation failed', errors: ['BAD_USER_INPUT'] }));
    expect(logs).toContainEqual(expect.objectContaining({ msg: 'subscription started', connectionId: expect.any(String), operationId: expect.any(String) }));
    const everything = JSON.stringify(logs);
    expect(everything).not.toContain('top secret body');
    expect(everything).not.toContain(bob.token);
  });
});
