import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TestServer, uid, type TestUser } from './support/server.js';

let db: TestDatabase;
let server: TestServer;
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
  alice = await server.user(uid('alice'), 'Alice');
  bob = await server.user(uid('bob'), 'Bob');
  carol = await server.user(uid('carol'), 'Carol');
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

const SEND = `mutation Send($c: ID!, $b: String!, $m: String!) {
  sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { id conversationId seq body clientMessageId createdAt sender { id name } }
}`;

async function dm(a: TestUser, b: TestUser): Promise<string> {
  const data = await a.ok<{ startDirectConversation: { id: string } }>(
    'mutation($u: ID!) { startDirectConversation(userId: $u) { id } }',
    { u: b.id },
  );
  return data.startDirectConversation.id;
}

async function group(owner: TestUser, members: TestUser[], title = 'Team'): Promise<string> {
  const data = await owner.ok<{ createGroup: { id: string } }>(
    'mutation($t: String!, $m: [ID!]!) { createGroup(title: $t, memberIds: $m) { id } }',
    { t: title, m: members.map((m) => m.id) },
  );
  return data.createGroup.id;
}

async function send(user: TestUser, conversationId: string, body: string, clientMessageId = uid('m')) {
  const data = await user.ok<{ sendMessage: { id: string; seq: number; body: string } }>(SEND, {
    c: conversationId,
    b: body,
    m: clientMessageId,
  });
  return data.sendMessage;
}

describe('users', () => {
  it('creates the viewer on first use, with the name from the token', async () => {
    const data = await alice.ok('{ viewer { id name } }');
    expect(data.viewer).toEqual({ id: alice.id, name: 'Alice' });
    const rows = await db.query('SELECT id, name FROM users WHERE id = $1', [alice.id]);
    expect(rows).toEqual([{ id: alice.id, name: 'Alice' }]);
  });

  it('creates the viewers of many sign-ins at once (written together), each with the name from its token', async () => {
    const ids = Array.from({ length: 40 }, () => uid('crowd'));
    // The same user twice at once, under two names: one row, with one of them.
    const users = await Promise.all([...ids.map((id, i) => server.user(id, `Crowd ${i}`)), server.user(ids[0]!, 'Crowd Zero')]);
    expect(users).toHaveLength(41);
    const rows = await db.query<{ id: string; name: string }>('SELECT id, name FROM users WHERE id = ANY($1::text[]) ORDER BY id', [ids]);
    const names = new Map(rows.map((row) => [row.id, row.name]));
    expect(names.size).toBe(40);
    ids.slice(1).forEach((id, i) => expect(names.get(id)).toBe(`Crowd ${i + 1}`));
    expect(['Crowd 0', 'Crowd Zero']).toContain(names.get(ids[0]!));
    // A later sign-in with another name renames the user.
    const renamed = await server.user(ids[1]!, 'Crowd One');
    expect((await renamed.ok('{ viewer { name } }')).viewer.name).toBe('Crowd One');
    expect(await db.query('SELECT name FROM users WHERE id = $1', [ids[1]])).toEqual([{ name: 'Crowd One' }]);
  });

  it("signs other users in while one sign-in's write is stuck (its row locked): a stuck write holds only its own", async () => {
    const stuckId = uid('stuck');
    await server.user(stuckId, 'Stuck');
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [stuckId]);
      // A new name makes the sign-in write the row again: that upsert waits for the lock.
      let stuckDone = false;
      const stuck = server.user(stuckId, 'Stuck Renamed').then((u) => ((stuckDone = true), u));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const others = await Promise.all([server.user(uid('free'), 'Free 1'), server.user(uid('free'), 'Free 2')]);
      expect((await others[1]!.ok('{ viewer { name } }')).viewer.name).toBe('Free 2');
      expect(stuckDone).toBe(false);
      await locker.query('ROLLBACK');
      expect((await (await stuck).ok('{ viewer { name } }')).viewer.name).toBe('Stuck Renamed');
    } finally {
      await locker.end();
    }
  });

  it('looks up another user by id, and says NOT_FOUND for an unknown one', async () => {
    expect((await alice.ok('query($id: ID!) { user(id: $id) { id name } }', { id: bob.id })).user).toEqual({ id: bob.id, name: 'Bob' });
    expect(await alice.errorCode('{ user(id: "nobody-at-all") { id } }')).toBe('NOT_FOUND');
  });

  it('refuses anonymous operations with UNAUTHENTICATED but allows introspection', async () => {
    const anonymous = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ viewer { id } }' }),
    }).then((r) => r.json());
    expect(anonymous.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    const schema = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __schema { queryType { name } } }' }),
    }).then((r) => r.json());
    expect(schema.data.__schema.queryType.name).toBe('Query');
  });

  it('refuses a token signed with another secret, an expired token, and a malformed header', async () => {
    const { signToken } = await import('../src/auth.js');
    for (const authorization of [
      `Bearer ${await signToken('another-secret-that-is-also-32-chars-long!', 'mallory')}`,
      `Bearer ${await signToken('test-secret-that-is-at-least-32-characters-long', 'mallory', { expiresIn: -10 })}`,
      'Token abc',
    ]) {
      const result = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization },
        body: JSON.stringify({ query: '{ viewer { id } }' }),
      }).then((r) => r.json());
      expect(result.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    }
    expect(await db.query("SELECT id FROM users WHERE id = 'mallory'")).toEqual([]);
  });
});

describe('conversations', () => {
  it('starts a direct conversation idempotently: the same pair always gets the same one', async () => {
    const first = await dm(alice, bob);
    const again = await dm(alice, bob);
    const fromBob = await dm(bob, alice);
    expect(again).toBe(first);
    expect(fromBob).toBe(first);
    const data = await bob.ok('query($id: ID!) { conversation(id: $id) { id kind title memberCount lastSeq members { edges { node { user { id } role } } } } }', { id: first });
    expect(data.conversation).toMatchObject({ id: first, kind: 'DIRECT', title: null, memberCount: 2, lastSeq: 0 });
    expect(data.conversation.members.edges.map((e: any) => e.node.user.id).sort()).toEqual([alice.id, bob.id].sort());
    expect(await db.query('SELECT count(*)::int AS n FROM conversations WHERE id = $1', [first])).toEqual([{ n: 1 }]);
  });

  it('rejects a direct conversation with yourself or an unknown user', async () => {
    expect(await alice.errorCode('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: alice.id })).toBe('BAD_USER_INPUT');
    expect(await alice.errorCode('mutation { startDirectConversation(userId: "ghost-user") { id } }')).toBe('NOT_FOUND');
  });

  it('creates a group with its owner and members', async () => {
    const id = await group(alice, [bob, carol], '  Launch  ');
    const data = await carol.ok('query($id: ID!) { conversation(id: $id) { kind title memberCount viewerRole members { edges { node { user { id name } role } } } } }', { id });
    expect(data.conversation).toMatchObject({ kind: 'GROUP', title: 'Launch', memberCount: 3, viewerRole: 'MEMBER' });
    const roles = Object.fromEntries(data.conversation.members.edges.map((e: any) => [e.node.user.id, e.node.role]));
    expect(roles).toEqual({ [alice.id]: 'OWNER', [bob.id]: 'MEMBER', [carol.id]: 'MEMBER' });
  });

  it('validates group input and changes nothing when it is bad', async () => {
    const before = await db.query('SELECT count(*)::int AS n FROM conversations');
    expect(await alice.errorCode('mutation { createGroup(title: "   ", memberIds: []) { id } }')).toBe('BAD_USER_INPUT');
    expect(await alice.errorCode('mutation($m: [ID!]!) { createGroup(title: "x", memberIds: $m) { id } }', { m: [bob.id, 'ghost-user'] })).toBe('NOT_FOUND');
    expect(await db.query('SELECT count(*)::int AS n FROM conversations')).toEqual(before);
  });

  it('lists the viewer\'s conversations most recently active first, with cursor paging', async () => {
    const dave = await server.user(uid('dave'), 'Dave');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await group(dave, [alice], `g${i}`));
    await send(dave, ids[1]!, 'bump'); // ids[1] becomes the most recent
    const expected = [ids[1], ids[4], ids[3], ids[2], ids[0]];
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const data: any = await dave.ok('query($after: String) { conversations(first: 2, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }', { after });
      seen.push(...data.conversations.edges.map((e: any) => e.node.id));
      if (!data.conversations.pageInfo.hasNextPage) break;
      after = data.conversations.pageInfo.endCursor;
    }
    expect(seen).toEqual(expected);
    expect(await dave.errorCode('{ conversations(after: "not-a-cursor") { edges { cursor } } }')).toBe('BAD_USER_INPUT');
    expect(await dave.errorCode('{ conversations(first: 1000) { edges { cursor } } }')).toBe('BAD_USER_INPUT');
  });

  it('keeps non-members out with FORBIDDEN and unknown ids with NOT_FOUND', async () => {
    const id = await dm(alice, bob);
    const errors = await Promise.all([
      carol.errorCode('query($id: ID!) { conversation(id: $id) { id } }', { id }),
      carol.errorCode('query($id: ID!) { messages(conversationId: $id) { hasMore } }', { id }),
      carol.errorCode('query($id: ID!) { messagesSince(conversationId: $id, afterSeq: 0) { hasMore } }', { id }),
      carol.errorCode(SEND, { c: id, b: 'let me in', m: 'x1' }),
      carol.errorCode('mutation($id: ID!) { markRead(conversationId: $id, seq: 0) { id } }', { id }),
    ]);
    expect(errors).toEqual(['FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN']);
    expect(await alice.errorCode('{ conversation(id: "8d3b8a4e-0000-4000-8000-000000000000") { id } }')).toBe('NOT_FOUND');
    expect(await alice.errorCode('{ conversation(id: "not-a-uuid") { id } }')).toBe('NOT_FOUND');
    expect(await db.query('SELECT count(*)::int AS n FROM messages WHERE conversation_id = $1', [id])).toEqual([{ n: 0 }]);
  });
});

describe('membership', () => {
  it('lets members add people, the owner remove them, and anyone leave', async () => {
    const erin = await server.user(uid('erin'), 'Erin');
    const id = await group(alice, [bob]);
    const added = await bob.ok('mutation($id: ID!, $u: [ID!]!) { addMembers(conversationId: $id, userIds: $u) { memberCount } }', { id, u: [carol.id, erin.id, carol.id] });
    expect(added.addMembers.memberCount).toBe(4);
    // Adding someone twice is a no-op.
    const again = await bob.ok('mutation($id: ID!, $u: [ID!]!) { addMembers(conversationId: $id, userIds: $u) { memberCount } }', { id, u: [carol.id] });
    expect(again.addMembers.memberCount).toBe(4);

    expect(await bob.errorCode('mutation($id: ID!, $u: ID!) { removeMember(conversationId: $id, userId: $u) { id } }', { id, u: carol.id })).toBe('FORBIDDEN');
    const removed = await alice.ok('mutation($id: ID!, $u: ID!) { removeMember(conversationId: $id, userId: $u) { memberCount } }', { id, u: carol.id });
    expect(removed.removeMember.memberCount).toBe(3);
    expect(await carol.errorCode('query($id: ID!) { conversation(id: $id) { id } }', { id })).toBe('FORBIDDEN');

    expect((await erin.ok('mutation($id: ID!) { leaveConversation(conversationId: $id) }', { id })).leaveConversation).toBe(id);
    const ids = (await erin.ok('{ conversations { edges { node { id } } } }')).conversations.edges.map((e: any) => e.node.id);
    expect(ids).not.toContain(id);
  });

  it('starts added members caught up: history is readable, not unread', async () => {
    const [owner, late] = [await server.user(uid('owner')), await server.user(uid('late'))];
    const id = await group(owner, []);
    for (let i = 0; i < 3; i++) await send(owner, id, `old ${i}`);
    await owner.ok('mutation($id: ID!, $u: [ID!]!) { addMembers(conversationId: $id, userIds: $u) { id } }', { id, u: [late.id] });
    const view = await late.ok('query($id: ID!) { conversation(id: $id) { lastSeq lastReadSeq unreadCount } messages(conversationId: $id) { messages { seq } } }', { id });
    expect(view.conversation).toEqual({ lastSeq: 3, lastReadSeq: 3, unreadCount: 0 });
    expect(view.messages.messages.map((m: any) => m.seq)).toEqual([1, 2, 3]);
    await send(owner, id, 'new');
    expect((await late.ok('query($id: ID!) { conversation(id: $id) { unreadCount } }', { id })).conversation.unreadCount).toBe(1);
  });

  it('passes ownership on when the owner leaves', async () => {
    const id = await group(alice, [bob, carol]);
    await alice.ok('mutation($id: ID!) { leaveConversation(conversationId: $id) }', { id });
    const data = await bob.ok('query($id: ID!) { conversation(id: $id) { memberCount members { edges { node { user { id } role } } } } }', { id });
    expect(data.conversation.memberCount).toBe(2);
    expect(data.conversation.members.edges.filter((e: any) => e.node.role === 'OWNER')).toHaveLength(1);
  });

  it('keeps the members of a direct conversation fixed', async () => {
    const id = await dm(alice, bob);
    expect(await alice.errorCode('mutation($id: ID!, $u: [ID!]!) { addMembers(conversationId: $id, userIds: $u) { id } }', { id, u: [carol.id] })).toBe('BAD_USER_INPUT');
    expect(await alice.errorCode('mutation($id: ID!) { leaveConversation(conversationId: $id) }', { id })).toBe('BAD_USER_INPUT');
  });

  it('pages members by user id', async () => {
    const many = await Promise.all(Array.from({ length: 7 }, (_, i) => server.user(uid(`m${i}`))));
    const id = await group(alice, many);
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const data: any = await alice.ok('query($id: ID!, $after: String) { conversation(id: $id) { members(first: 3, after: $after) { edges { node { user { id } } } pageInfo { hasNextPage endCursor } } } }', { id, after });
      seen.push(...data.conversation.members.edges.map((e: any) => e.node.user.id));
      if (!data.conversation.members.pageInfo.hasNextPage) break;
      after = data.conversation.members.pageInfo.endCursor;
    }
    expect(seen).toEqual([alice.id, ...many.map((u) => u.id)].sort());
  });
});

describe('messages', () => {
  it('sends messages with consecutive seqs and returns them in history and catch-up', async () => {
    const id = await dm(alice, carol);
    const sent = [];
    for (let i = 1; i <= 5; i++) sent.push(await send(i % 2 ? alice : carol, id, `message ${i}`));
    expect(sent.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);

    const since = await carol.ok('query($id: ID!) { messagesSince(conversationId: $id, afterSeq: 1, first: 2) { messages { seq body sender { name } } hasMore nextAfterSeq lastSeq } }', { id });
    expect(since.messagesSince).toEqual({
      messages: [{ seq: 2, body: 'message 2', sender: { name: 'Carol' } }, { seq: 3, body: 'message 3', sender: { name: 'Alice' } }],
      hasMore: true,
      nextAfterSeq: 3,
      lastSeq: 5,
    });
    const rest = await carol.ok('query($id: ID!) { messagesSince(conversationId: $id, afterSeq: 3) { messages { seq } hasMore nextAfterSeq } }', { id });
    expect(rest.messagesSince).toEqual({ messages: [{ seq: 4 }, { seq: 5 }], hasMore: false, nextAfterSeq: 5 });

    const newest = await alice.ok('query($id: ID!) { messages(conversationId: $id, last: 2) { messages { seq } hasMore } }', { id });
    expect(newest.messages).toEqual({ messages: [{ seq: 4 }, { seq: 5 }], hasMore: true });
    const older = await alice.ok('query($id: ID!) { messages(conversationId: $id, before: 4, last: 10) { messages { seq } hasMore } }', { id });
    expect(older.messages).toEqual({ messages: [{ seq: 1 }, { seq: 2 }, { seq: 3 }], hasMore: false });
  });

  it('returns the stored message for a retry with the same clientMessageId', async () => {
    const id = await dm(bob, carol);
    const first = await send(bob, id, 'once', 'retry-1');
    const retry = await send(bob, id, 'once', 'retry-1');
    expect(retry).toEqual(first);
    // Concurrent retries too: still one row, and no seq is burnt.
    const racing = await Promise.all(Array.from({ length: 8 }, () => send(bob, id, 'racing', 'retry-2')));
    expect(new Set(racing.map((m) => m.id)).size).toBe(1);
    expect(racing[0]!.seq).toBe(2);
    const next = await send(bob, id, 'after');
    expect(next.seq).toBe(3);
    expect(await db.query('SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq', [id])).toEqual([{ seq: 1 }, { seq: 2 }, { seq: 3 }]);
  });

  it('rejects empty, oversized and badly identified messages, storing nothing and burning no seq', async () => {
    const id = await dm(alice, bob);
    const before = await db.query('SELECT last_seq FROM conversations WHERE id = $1', [id]);
    expect(await alice.errorCode(SEND, { c: id, b: '', m: 'e1' })).toBe('BAD_USER_INPUT');
    expect(await alice.errorCode(SEND, { c: id, b: ' \n\t ', m: 'e2' })).toBe('BAD_USER_INPUT');
    expect(await alice.errorCode(SEND, { c: id, b: 'x'.repeat(4001), m: 'e3' })).toBe('BAD_USER_INPUT');
    expect(await alice.errorCode(SEND, { c: id, b: 'fine', m: '' })).toBe('BAD_USER_INPUT');
    expect(await alice.errorCode(SEND, { c: id, b: 'fine', m: 'x'.repeat(65) })).toBe('BAD_USER_INPUT');
    expect(await alice.errorCode(SEND, { c: '0b1c2d3e-0000-4000-8000-000000000000', b: 'fine', m: 'e4' })).toBe('NOT_FOUND');
    expect(await db.query('SELECT last_seq FROM conversations WHERE id = $1', [id])).toEqual(before);
    // 4000 emoji are 4000 characters (8000 UTF-16 units): accepted.
    const emoji = await send(alice, id, '🙂'.repeat(4000));
    expect(emoji.body).toHaveLength(8000);
  });

  it('rejects bad cursors and page sizes with BAD_USER_INPUT', async () => {
    const id = await dm(alice, bob);
    await send(alice, id, 'one');
    expect(await alice.errorCode('query($id: ID!) { messagesSince(conversationId: $id, afterSeq: -1) { hasMore } }', { id })).toBe('BAD_USER_INPUT');
    expect(await alice.errorCode('query($id: ID!) { messagesSince(conversationId: $id, afterSeq: 99) { hasMore } }', { id })).toBe('BAD_USER_INPUT');
    expect(await alice.errorCode('query($id: ID!) { messagesSince(conversationId: $id, afterSeq: 0, first: 0) { hasMore } }', { id })).toBe('BAD_USER_INPUT');
    expect(await alice.errorCode('query($id: ID!) { messages(conversationId: $id, last: 101) { hasMore } }', { id })).toBe('BAD_USER_INPUT');
    expect(await alice.errorCode('query($id: ID!) { messages(conversationId: $id, before: -5) { hasMore } }', { id })).toBe('BAD_USER_INPUT');
  });

  it('orders concurrent senders in one conversation without gaps or duplicates', async () => {
    const senders = [alice, bob, carol];
    const id = await group(alice, [bob, carol], 'race');
    // Three senders at once, each sending its 20 messages one after another.
    const perSender = await Promise.all(
      senders.map(async (user) => {
        const sent = [];
        for (let i = 0; i < 20; i++) sent.push(await send(user, id, `${user.id}:${i}`));
        return sent;
      }),
    );
    const results = perSender.flat();
    const seqs = results.map((m) => m.seq).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    const rows = await db.query<{ seq: number; body: string }>('SELECT seq, body FROM messages WHERE conversation_id = $1 ORDER BY seq', [id]);
    expect(rows.map((r) => r.seq)).toEqual(seqs);
    // Each sender's own messages keep their send order.
    for (const user of senders) {
      const mine = rows.filter((r) => r.body.startsWith(`${user.id}:`)).map((r) => Number(r.body.split(':').pop()));
      expect(mine).toEqual([...mine].sort((a, b) => a - b));
    }
  });
});

describe('read state', () => {
  it('tracks unread counts and moves the read position only forward', async () => {
    const [bob, carol] = [await server.user(uid('bob')), await server.user(uid('carol'))];
    const id = await dm(bob, carol);
    for (let i = 0; i < 4; i++) await send(bob, id, `n${i}`);
    const q = 'query($id: ID!) { conversation(id: $id) { lastSeq lastReadSeq unreadCount lastMessage { seq body } } }';
    expect((await carol.ok(q, { id })).conversation).toEqual({ lastSeq: 4, lastReadSeq: 0, unreadCount: 4, lastMessage: { seq: 4, body: 'n3' } });
    expect((await bob.ok(q, { id })).conversation.unreadCount).toBe(0);
    const marked = await carol.ok('mutation($id: ID!) { markRead(conversationId: $id, seq: 3) { lastReadSeq unreadCount } }', { id });
    expect(marked.markRead).toEqual({ lastReadSeq: 3, unreadCount: 1 });
    const backwards = await carol.ok('mutation($id: ID!) { markRead(conversationId: $id, seq: 1) { lastReadSeq } }', { id });
    expect(backwards.markRead.lastReadSeq).toBe(3);
    expect(await carol.errorCode('mutation($id: ID!) { markRead(conversationId: $id, seq: 5) { lastReadSeq } }', { id })).toBe('BAD_USER_INPUT');
    // Sending marks your own position.
    await send(carol, id, 'reply');
    expect((await carol.ok(q, { id })).conversation).toMatchObject({ lastSeq: 5, lastReadSeq: 5, unreadCount: 0 });
  });
});
