import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../src/auth.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { ALL_TRANSPORTS, codeOf, runVia } from './support/raw.js';
import { TEST_JWT_SECRET, TestServer, TestUser, uid } from './support/server.js';

// Issue 10: two sendMessage fields, the second invalid, answered `data: null`
// although the first was stored; NUL answered INTERNAL_SERVER_ERROR; a lone
// surrogate was delivered live as sent but stored as U+FFFD; a reused
// clientMessageId with another body succeeded silently.

let db: TestDatabase;
let server: TestServer;
let alice: TestUser;
let bob: TestUser;
let group: string;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
  alice = await server.user(uid('alice'));
  bob = await server.user(uid('bob'));
  group = (await alice.ok('mutation($m: [ID!]!) { createGroup(title: "text", memberIds: $m) { id } }', { m: [bob.id] })).createGroup.id;
});
afterAll(async () => {
  await Promise.all([alice, bob].map((u) => u?.closeSockets()));
  await server?.stop();
  await db?.drop();
});

const stored = async (conversationId: string) =>
  (await db.query<{ seq: number; body: string; client_message_id: string }>('SELECT seq, body, client_message_id FROM messages WHERE conversation_id = $1 ORDER BY seq', [conversationId]));
const newGroup = async (title = 'g') => (await alice.ok('mutation($t: String!) { createGroup(title: $t, memberIds: []) { id } }', { t: title })).createGroup.id as string;

describe('an operation with several mutations', () => {
  it('reports each one: the stored one with its result, the refused one as null with its error', async () => {
    const c = await newGroup();
    const result = await alice.query(
      `mutation($c: ID!) {
        first: sendMessage(conversationId: $c, body: "stored", clientMessageId: "m-1") { seq body }
        second: sendMessage(conversationId: $c, body: "   ", clientMessageId: "m-2") { seq body }
      }`,
      { c },
    );
    expect(result.data).toEqual({ first: { seq: 1, body: 'stored' }, second: null });
    expect(result.errors).toHaveLength(1);
    expect(result.errors![0]).toMatchObject({ path: ['second'], extensions: { code: 'BAD_USER_INPUT', field: 'body' } });
    expect(await stored(c)).toEqual([{ seq: 1, body: 'stored', client_message_id: 'm-1' }]);
  });

  it('runs the ones after a failure, and a failure found only by the database hides nothing', async () => {
    const c = await newGroup();
    const stranger = await server.user(uid('mallory'));
    const mine = (await stranger.ok('mutation { createGroup(title: "mine", memberIds: []) { id } }')).createGroup.id;
    const result = await stranger.query(
      `mutation($c: ID!, $mine: ID!) {
        a: sendMessage(conversationId: $mine, body: "one", clientMessageId: "s-1") { seq }
        b: sendMessage(conversationId: $c, body: "not a member", clientMessageId: "s-2") { seq }
        c: sendMessage(conversationId: $mine, body: "two", clientMessageId: "s-3") { seq }
      }`,
      { c, mine },
    );
    expect(result.data).toEqual({ a: { seq: 1 }, b: null, c: { seq: 2 } });
    expect(result.errors).toMatchObject([{ path: ['b'], extensions: { code: 'FORBIDDEN' } }]);
    expect((await stored(mine)).map((m) => m.body)).toEqual(['one', 'two']);
    expect(await stored(c)).toEqual([]);
  });

  it('runs none of them when any argument is text that cannot be stored (checked before anything runs)', async () => {
    const c = await newGroup();
    const result = await alice.query(
      `mutation($c: ID!, $b: String!) {
        ok: sendMessage(conversationId: $c, body: "fine", clientMessageId: "n-1") { seq }
        bad: sendMessage(conversationId: $c, body: $b, clientMessageId: "n-2") { seq }
      }`,
      { c, b: 'a\u0000b' },
    );
    expect(result.data ?? null).toBeNull();
    expect(result.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'body' });
    expect(await stored(c)).toEqual([]);
  });
});

describe.each(ALL_TRANSPORTS)('text that PostgreSQL cannot store, over %s', (transport) => {
  const run = (query: string, variables?: Record<string, unknown>) => runVia(transport, query, variables, { url: server.url, token: alice.token });

  it.each([
    ['NUL in a message body', 'body', 'a\u0000b'],
    ['a lone surrogate in a message body', 'body', '\ud800x'],
  ])('refuses %s with BAD_USER_INPUT naming the field, and stores nothing', async (_what, field, body) => {
    const c = await newGroup();
    const result = await run('mutation($c: ID!, $b: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: "t-1") { seq } }', { c, b: body });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors![0]!.extensions!.field).toBe(field);
    expect(await stored(c)).toEqual([]);
  });

  it('refuses NUL in a group title, in the query text itself, with BAD_USER_INPUT naming the field', async () => {
    const result = await run('mutation { createGroup(title: "a\\u0000b", memberIds: []) { id } }');
    expect(result.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'title' });
  });

  it('refuses NUL in an id or a cursor instead of failing in the database', async () => {
    for (const [query, field] of [
      ['{ user(id: "a\\u0000b") { id } }', 'id'],
      ['query($c: ID!) { conversation(id: $c) { members(after: "x\\u0000") { pageInfo { hasNextPage } } } }', 'after'],
      // (GraphQL's own syntax has no lone surrogates: a variable carries one.)
      ['mutation($c: ID!, $m: String!) { sendMessage(conversationId: $c, body: "x", clientMessageId: $m) { seq } }', 'clientMessageId'],
    ] as const) {
      const result = await run(query, { c: group, m: '\ud800' });
      expect(result.errors![0]!.extensions, query).toMatchObject({ code: 'BAD_USER_INPUT', field });
    }
  });
});

describe('what is stored is what is delivered', () => {
  it('stores, answers and delivers a body in NFC, the same text everywhere', async () => {
    const live = bob.subscribe('subscription($c: ID!) { messageAdded(conversationId: $c) { body } }', { c: group });
    await server.live(1);
    const decomposed = 'Cafe\u0301 \u1100\u1161'; // "Café 가" as e + combining acute, and conjoining jamo
    const answer = (await alice.ok('mutation($c: ID!, $b: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: "nfc-1") { body } }', { c: group, b: decomposed })).sendMessage;
    await live.count(1);
    const [row] = await db.query<{ body: string }>("SELECT body FROM messages WHERE conversation_id = $1 AND client_message_id = 'nfc-1'", [group]);
    expect(answer.body).toBe(decomposed.normalize('NFC'));
    expect(live.data[0]!.messageAdded.body).toBe(row!.body);
    expect(row!.body).toBe(answer.body);
    live.close();
  });

  it('refuses a token whose name claim cannot be stored, naming the field', async () => {
    const token = await signToken(TEST_JWT_SECRET, uid('nul'), { name: 'Eve\u0000' });
    const result = await new TestUser(server, 'x', token).query('{ viewer { id } }');
    expect(result.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'name' });
  });

  it("stores a token's name in NFC", async () => {
    const id = uid('nfc');
    const token = await signToken(TEST_JWT_SECRET, id, { name: 'Zoe\u0308' });
    await new TestUser(server, id, token).ok('{ viewer { id } }');
    expect(await db.query('SELECT name FROM users WHERE id = $1', [id])).toEqual([{ name: 'Zoë' }]);
  });
});

describe('a clientMessageId reused', () => {
  const SEND = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { id seq body } }';

  it('with the same body returns the stored message (a retry)', async () => {
    const c = await newGroup();
    const first = (await alice.ok(SEND, { c, b: 'hello', m: 'k-1' })).sendMessage;
    expect((await alice.ok(SEND, { c, b: 'hello', m: 'k-1' })).sendMessage).toEqual(first);
  });

  it('with another body is IDEMPOTENCY_CONFLICT naming clientMessageId, and changes nothing', async () => {
    const c = await newGroup();
    await alice.ok(SEND, { c, b: 'hello', m: 'k-2' });
    const result = await alice.query(SEND, { c, b: 'something else', m: 'k-2' });
    expect(result.errors![0]!.extensions).toMatchObject({ code: 'IDEMPOTENCY_CONFLICT', field: 'clientMessageId' });
    expect((await stored(c)).map((m) => m.body)).toEqual(['hello']);
  });
});
