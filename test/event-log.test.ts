import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TestServer, TRANSPORTS, uid, type TestUser } from './support/server.js';

// The conversation event log: edits, deletes, reactions, replies, threads,
// receipts, renames and membership, numbered per conversation, caught up
// compacted with one cursor and continued live on every transport.

let db: TestDatabase;
let server: TestServer;
const users: TestUser[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url, DELIVERY_CHECK_MS: '200' });
});
afterAll(async () => {
  await Promise.all(users.map((u) => u.closeSockets()));
  await server?.stop();
  await db?.drop();
});

async function user(name: string): Promise<TestUser> {
  const u = await server.user(uid(name), name);
  users.push(u);
  return u;
}

const MESSAGE = 'seq eventSeq body editedAt deleted replyToSeq threadRootSeq threadReplyCount threadLastReplySeq reactions { reaction count reactedByViewer }';
const send = async (u: TestUser, c: string, body: string, extra: { replyToSeq?: number; threadRootSeq?: number } = {}) =>
  (
    await u.ok(
      `mutation($c: ID!, $b: String!, $m: String!, $r: Int, $t: Int) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m, replyToSeq: $r, threadRootSeq: $t) { ${MESSAGE} } }`,
      { c, b: body, m: uid('m'), r: extra.replyToSeq, t: extra.threadRootSeq },
    )
  ).sendMessage;
const edit = (u: TestUser, c: string, seq: number, body: string) =>
  u.query(`mutation($c: ID!, $s: Int!, $b: String!) { editMessage(conversationId: $c, seq: $s, body: $b) { ${MESSAGE} } }`, { c, s: seq, b: body });
const del = (u: TestUser, c: string, seq: number) =>
  u.query(`mutation($c: ID!, $s: Int!) { deleteMessage(conversationId: $c, seq: $s) { ${MESSAGE} } }`, { c, s: seq });
const react = (u: TestUser, c: string, seq: number, reaction: string, add = true) =>
  u.query(`mutation($c: ID!, $s: Int!, $r: String!) { ${add ? 'addReaction' : 'removeReaction'}(conversationId: $c, seq: $s, reaction: $r) { ${MESSAGE} } }`, {
    c,
    s: seq,
    r: reaction,
  });
const group = async (owner: TestUser, members: TestUser[]) =>
  (await owner.ok('mutation($m: [ID!]!) { createGroup(title: "g", memberIds: $m) { id } }', { m: members.map((m) => m.id) })).createGroup.id as string;
const dm = async (a: TestUser, b: TestUser) =>
  (await a.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: b.id })).startDirectConversation.id as string;
const lastEventSeq = async (u: TestUser, c: string) => (await u.ok('query($c: ID!) { conversation(id: $c) { lastEventSeq } }', { c })).conversation.lastEventSeq as number;
const code = (result: { errors?: { extensions?: { code?: string } }[] }) => result.errors?.[0]?.extensions?.code;

const EVENTS_SINCE = `query($c: ID!, $a: Int!, $f: Int) { eventsSince(conversationId: $c, afterEventSeq: $a, first: $f) {
  events { __typename
    ... on MessageEvent { eventSeq action catchUp message { ${MESSAGE} } threadRoot { seq threadReplyCount } }
    ... on MemberEvent { eventSeq action user { id } role joinedAtSeq newOwner { id } }
    ... on ReadReceipt { eventSeq user { id } lastReadSeq }
    ... on ConversationRenamed { eventSeq title } }
  nextAfterEventSeq hasMore lastEventSeq } }`;

const EVENTS = `subscription($cursors: [EventCursor!]) { events(cursors: $cursors) { __typename
  ... on MessageEvent { conversationId eventSeq action catchUp reaction actor { id } message { seq body deleted editedAt reactions { reaction count } threadReplyCount } threadRoot { seq threadReplyCount } }
  ... on MemberEvent { conversationId eventSeq action user { id } }
  ... on ReadReceipt { conversationId eventSeq user { id } lastReadSeq }
  ... on ConversationRenamed { conversationId eventSeq title }
  ... on ConversationJoined { conversationId afterEventSeq }
  ... on ConversationLeft { conversationId reason } } }`;

/** Every page of eventsSince after `after`. */
async function catchUp(u: TestUser, c: string, after: number, first?: number) {
  const events: any[] = [];
  let cursor = after;
  let pages = 0;
  for (;;) {
    const page = (await u.ok(EVENTS_SINCE, { c, a: cursor, f: first })).eventsSince;
    events.push(...page.events);
    pages++;
    cursor = page.nextAfterEventSeq;
    if (!page.hasMore) return { events, cursor, pages, last: page.lastEventSeq as number };
  }
}

describe('edits and deletions', () => {
  it('lets only the sender edit; sets editedAt; refuses deleted messages and over-long bodies, changing nothing', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await dm(alice, bob);
    await send(alice, c, 'first');
    const before = await lastEventSeq(alice, c);
    expect(code(await edit(bob, c, 1, 'not yours'))).toBe('FORBIDDEN');
    expect(code(await edit(alice, c, 1, 'x'.repeat(4001)))).toBe('BAD_USER_INPUT');
    expect(code(await edit(alice, c, 9, 'no such message'))).toBe('NOT_FOUND');
    expect(await lastEventSeq(alice, c)).toBe(before);
    const edited = (await edit(alice, c, 1, 'first, fixed')).data!.editMessage;
    expect(edited).toMatchObject({ seq: 1, body: 'first, fixed', eventSeq: before + 1 });
    expect(edited.editedAt).not.toBeNull();
    // The same body again is no change: no event.
    await edit(alice, c, 1, 'first, fixed');
    expect(await lastEventSeq(alice, c)).toBe(before + 1);
    expect((await del(alice, c, 1)).data!.deleteMessage).toMatchObject({ seq: 1, deleted: true, body: '' });
    expect(code(await edit(alice, c, 1, 'back from the dead'))).toBe('BAD_USER_INPUT');
  });

  it('lets the sender or a group owner delete, and removes the content and reactions from storage', async () => {
    const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
    const c = await group(alice, [bob, carol]);
    await send(bob, c, 'secret from bob');
    await send(carol, c, 'from carol');
    await react(carol, c, 1, '👍');
    expect(code(await del(carol, c, 1))).toBe('FORBIDDEN'); // neither sender nor owner
    expect((await del(alice, c, 1)).data!.deleteMessage).toMatchObject({ deleted: true, body: '', reactions: [] }); // the owner
    expect((await del(carol, c, 2)).data!.deleteMessage).toMatchObject({ deleted: true }); // the sender
    const rows = await db.query('SELECT seq, body, deleted_at FROM messages WHERE conversation_id = $1 ORDER BY seq', [c]);
    expect(rows.map((r) => [r.seq, r.body, r.deleted_at !== null])).toEqual([
      [1, '', true],
      [2, '', true],
    ]);
    expect(await db.query('SELECT count(*)::int AS n FROM message_reactions WHERE conversation_id = $1', [c])).toEqual([{ n: 0 }]);
    // Tombstones keep their place in history.
    const history = await alice.ok('query($c: ID!) { messages(conversationId: $c) { messages { seq deleted body } } }', { c });
    expect(history.messages.messages).toEqual([
      { seq: 1, deleted: true, body: '' },
      { seq: 2, deleted: true, body: '' },
    ]);
  });
});

describe('reactions', () => {
  it('counts reactions per message, tells the viewer their own, and enforces who and what', async () => {
    const [alice, bob, carol, eve] = [await user('alice'), await user('bob'), await user('carol'), await user('eve')];
    const c = await group(alice, [bob, carol]);
    await send(alice, c, 'react to me');
    await react(bob, c, 1, '👍');
    await react(carol, c, 1, '👍');
    await react(carol, c, 1, '🇫🇷');
    const mine = (await react(bob, c, 1, 'party_parrot')).data!.addReaction;
    expect(mine.reactions).toEqual([
      { reaction: '👍', count: 2, reactedByViewer: true },
      { reaction: '🇫🇷', count: 1, reactedByViewer: false },
      { reaction: 'party_parrot', count: 1, reactedByViewer: true },
    ]);
    const removed = (await react(carol, c, 1, '👍', false)).data!.removeReaction;
    expect(removed.reactions[0]).toEqual({ reaction: '👍', count: 1, reactedByViewer: false });
    expect(code(await react(eve, c, 1, '👍'))).toBe('FORBIDDEN');
    for (const bad of ['two words', '👍👍', 'UPPER', '', 'x'.repeat(33), 'a\u0000b']) expect(code(await react(bob, c, 1, bad)), bad).toBe('BAD_USER_INPUT');
    // At most 20 different reactions on one message.
    for (let i = 0; i < 17; i++) await react(bob, c, 1, `r${i}`);
    expect(code(await react(bob, c, 1, 'one_too_many'))).toBe('BAD_USER_INPUT');
    // A member who left can no longer react.
    await carol.ok('mutation($c: ID!) { leaveConversation(conversationId: $c) }', { c });
    expect(code(await react(carol, c, 1, '👍'))).toBe('FORBIDDEN');
  });
});

// A retried change's first attempt may run late, after its retry and after
// later changes (an instance frozen with the request in hand): the attempt's
// fencing token lets the database refuse it (docs/architecture.md, "Retried
// changes: fencing tokens"). Every kind of change, out of order on purpose.
describe('fencing tokens', () => {
  type Fence = { writer: string; token: number };
  const fenced = {
    edit: (u: TestUser, c: string, seq: number, body: string, fence: Fence) =>
      u.query(`mutation($c: ID!, $s: Int!, $b: String!, $f: ChangeFence) { editMessage(conversationId: $c, seq: $s, body: $b, fence: $f) { ${MESSAGE} } }`, {
        c,
        s: seq,
        b: body,
        f: fence,
      }),
    del: (u: TestUser, c: string, seq: number, fence: Fence) =>
      u.query(`mutation($c: ID!, $s: Int!, $f: ChangeFence) { deleteMessage(conversationId: $c, seq: $s, fence: $f) { ${MESSAGE} } }`, { c, s: seq, f: fence }),
    react: (u: TestUser, c: string, seq: number, reaction: string, add: boolean, fence: Fence) =>
      u.query(
        `mutation($c: ID!, $s: Int!, $r: String!, $f: ChangeFence) { ${add ? 'addReaction' : 'removeReaction'}(conversationId: $c, seq: $s, reaction: $r, fence: $f) { ${MESSAGE} } }`,
        { c, s: seq, r: reaction, f: fence },
      ),
  };
  const body = async (c: string, seq: number) => (await db.query('SELECT body, deleted_at FROM messages WHERE conversation_id = $1 AND seq = $2', [c, seq]))[0];

  it('refuses an edit whose token is at or below one its writer already used here, with SUPERSEDED, changing nothing', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await dm(alice, bob);
    await send(alice, c, 'v0');
    const writer = uid('writer');
    // Attempt 1 is held up; its retry (2) and a later edit (3) land first.
    expect((await fenced.edit(alice, c, 1, 'v1', { writer, token: 2 })).data!.editMessage.body).toBe('v1');
    expect((await fenced.edit(alice, c, 1, 'v2', { writer, token: 3 })).data!.editMessage.body).toBe('v2');
    const before = await lastEventSeq(alice, c);
    const late = await fenced.edit(alice, c, 1, 'v1', { writer, token: 1 });
    expect(late.errors![0]!.extensions).toMatchObject({ code: 'SUPERSEDED', field: 'fence.token' });
    expect(code(await fenced.edit(alice, c, 1, 'v1', { writer, token: 3 }))).toBe('SUPERSEDED'); // the same token twice
    expect(await body(c, 1)).toMatchObject({ body: 'v2', deleted_at: null });
    expect(await lastEventSeq(alice, c)).toBe(before);
    // Another writer (another session of the same user) has its own tokens; no token at all is not fenced.
    expect((await fenced.edit(alice, c, 1, 'v3', { writer: uid('other'), token: 1 })).data!.editMessage.body).toBe('v3');
    expect((await edit(alice, c, 1, 'v4')).data!.editMessage.body).toBe('v4');
    expect((await fenced.edit(alice, c, 1, 'v5', { writer, token: 4 })).data!.editMessage.body).toBe('v5');
  });

  it('refuses a late reaction or deletion the same way, and checks the token before anything else', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await group(alice, [bob]);
    await send(bob, c, 'react to me');
    await send(bob, c, 'delete me');
    const writer = uid('writer');
    // Add (token 1) held up; remove (2) lands; the add arrives late.
    await fenced.react(bob, c, 1, '👍', false, { writer, token: 2 });
    expect(code(await fenced.react(bob, c, 1, '👍', true, { writer, token: 1 }))).toBe('SUPERSEDED');
    expect(await db.query('SELECT count(*)::int AS n FROM message_reactions WHERE conversation_id = $1', [c])).toEqual([{ n: 0 }]);
    // Remove (3) held up; add (4) lands; the remove arrives late.
    expect((await fenced.react(bob, c, 1, '👍', true, { writer, token: 4 })).data!.addReaction.reactions).toEqual([{ reaction: '👍', count: 1, reactedByViewer: true }]);
    expect(code(await fenced.react(bob, c, 1, '👍', false, { writer, token: 3 }))).toBe('SUPERSEDED');
    expect(await db.query('SELECT user_id FROM message_reactions WHERE conversation_id = $1', [c])).toEqual([{ user_id: bob.id }]);
    // A late deletion changes nothing either, and a superseded attempt is refused before its own checks.
    expect(code(await fenced.del(bob, c, 2, { writer, token: 1 }))).toBe('SUPERSEDED');
    expect(code(await fenced.del(bob, c, 99, { writer, token: 2 }))).toBe('SUPERSEDED');
    expect(await body(c, 2)).toMatchObject({ body: 'delete me', deleted_at: null });
    expect((await fenced.del(bob, c, 2, { writer, token: 5 })).data!.deleteMessage.deleted).toBe(true);
    // A non-member learns nothing about tokens: FORBIDDEN first.
    const eve = await user('eve');
    expect(code(await fenced.react(eve, c, 1, '👍', true, { writer, token: 1 }))).toBe('FORBIDDEN');
  });

  it('refuses a malformed fence with BAD_USER_INPUT naming its field, and keeps the 16 most recent writers per member', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await dm(alice, bob);
    await send(alice, c, 'm');
    for (const [fence, field] of [
      [{ writer: '', token: 1 }, 'fence.writer'],
      [{ writer: 'x'.repeat(65), token: 1 }, 'fence.writer'],
      [{ writer: 'has space', token: 1 }, 'fence.writer'],
      [{ writer: 'w', token: 0 }, 'fence.token'],
      [{ writer: 'w', token: -5 }, 'fence.token'],
    ] as const) {
      const result = await fenced.edit(alice, c, 1, 'bad fence', fence);
      expect(result.errors![0]!.extensions, JSON.stringify(fence)).toMatchObject({ code: 'BAD_USER_INPUT', field });
    }
    expect(await body(c, 1)).toMatchObject({ body: 'm' });
    for (let i = 0; i < 20; i++) await fenced.edit(alice, c, 1, `by writer ${i}`, { writer: `w${i}`, token: 1 });
    const [row] = await db.query<{ fences: Record<string, [number, number]> }>(
      'SELECT change_fences AS fences FROM conversation_members WHERE conversation_id = $1 AND user_id = $2',
      [c, alice.id],
    );
    expect(Object.keys(row!.fences).sort()).toEqual(Array.from({ length: 16 }, (_, i) => `w${i + 4}`).sort());
  });
});

describe('replies and threads', () => {
  it('quotes a message of the same conversation, shows a deleted target as deleted, and refuses others', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await dm(alice, bob);
    const other = await dm(alice, await user('carol'));
    await send(alice, c, 'question');
    const reply = await send(bob, c, 'answer', { replyToSeq: 1 });
    expect(reply.replyToSeq).toBe(1);
    await del(alice, c, 1);
    const read = await bob.ok('query($c: ID!) { messages(conversationId: $c) { messages { seq replyTo { seq deleted body } } } }', { c });
    expect(read.messages.messages[1].replyTo).toEqual({ seq: 1, deleted: true, body: '' });
    const before = await lastEventSeq(alice, other);
    const refused = await alice.query('mutation($c: ID!) { sendMessage(conversationId: $c, body: "x", clientMessageId: "r-x", replyToSeq: 5) { seq } }', { c: other });
    expect(code(refused)).toBe('BAD_USER_INPUT');
    expect(await lastEventSeq(alice, other)).toBe(before);
  });

  it('keeps threads under their root: reply count, last reply, thread history, no nesting', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await dm(alice, bob);
    await send(alice, c, 'root');
    await send(bob, c, 'in the timeline');
    for (let i = 1; i <= 3; i++) await send(i % 2 ? bob : alice, c, `thread ${i}`, { threadRootSeq: 1 });
    const root = await alice.ok('query($c: ID!) { messages(conversationId: $c, before: 2) { messages { seq threadReplyCount threadLastReply { seq body } } } }', { c });
    expect(root.messages.messages[0]).toEqual({ seq: 1, threadReplyCount: 3, threadLastReply: { seq: 5, body: 'thread 3' } });
    const thread = await alice.ok('query($c: ID!) { messages(conversationId: $c, threadRootSeq: 1, last: 2) { messages { seq body threadRootSeq } hasMore } }', { c });
    expect(thread.messages).toEqual({
      messages: [
        { seq: 4, body: 'thread 2', threadRootSeq: 1 },
        { seq: 5, body: 'thread 3', threadRootSeq: 1 },
      ],
      hasMore: true,
    });
    const nested = await bob.query('mutation($c: ID!) { sendMessage(conversationId: $c, body: "x", clientMessageId: "nest", threadRootSeq: 3) { seq } }', { c });
    expect(code(nested)).toBe('BAD_USER_INPUT');
  });
});

describe('catch-up with one cursor', () => {
  it('returns each changed message once in its current state: 50 edits are one event, deletions are tombstones, reactions are counts', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await dm(alice, bob);
    for (let i = 1; i <= 5; i++) await send(alice, c, `m${i}`);
    const cursor = await lastEventSeq(bob, c);
    for (let i = 1; i <= 50; i++) await edit(alice, c, 2, `m2 v${i}`);
    await del(alice, c, 3);
    await react(bob, c, 4, '🎉');
    await react(alice, c, 4, '🎉');
    await bob.ok('mutation($c: ID!) { markRead(conversationId: $c, seq: 5) { id } }', { c });
    await send(bob, c, 'm6');
    const { events, cursor: end, last } = await catchUp(bob, c, cursor);
    expect(end).toBe(last);
    const messages = events.filter((e) => e.__typename === 'MessageEvent');
    expect(messages.map((e) => [e.message.seq, e.message.body, e.action, e.catchUp])).toEqual([
      [2, 'm2 v50', 'UPDATED', true],
      [3, '', 'DELETED', true],
      [4, 'm4', 'UPDATED', true],
      [6, 'm6', 'SENT', true],
    ]);
    expect(messages[2].message.reactions).toEqual([{ reaction: '🎉', count: 2, reactedByViewer: true }]);
    // Bob's read position: his markRead, then his own message moved it within its event (implied, not repeated).
    expect(events.filter((e) => e.__typename === 'ReadReceipt')).toEqual([]);
    // Event numbers ascend; superseded ones (49 of the edits) are skipped, nothing is reordered.
    const seqs = events.map((e) => e.eventSeq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    // In pages that never split an event, with the same result.
    const paged = await catchUp(bob, c, cursor, 1);
    expect(paged.pages).toBeGreaterThan(3);
    expect(paged.events.map((e) => e.eventSeq)).toEqual(seqs);
  });

  it('carries membership, renames and receipts too', async () => {
    const [alice, bob, carol, dave] = [await user('alice'), await user('bob'), await user('carol'), await user('dave')];
    const c = await group(alice, [bob, carol]);
    await send(alice, c, 'hello');
    await alice.ok('mutation($c: ID!, $u: [ID!]!) { addMembers(conversationId: $c, userIds: $u) { id } }', { c, u: [dave.id] });
    await alice.ok('mutation($c: ID!) { renameConversation(conversationId: $c, title: "Renamed") { title } }', { c });
    await carol.ok('mutation($c: ID!) { markRead(conversationId: $c, seq: 1) { id } }', { c });
    await alice.ok('mutation($c: ID!) { leaveConversation(conversationId: $c) }', { c });
    const { events } = await catchUp(bob, c, 0);
    const summary = events.map((e) =>
      e.__typename === 'MessageEvent'
        ? `message ${e.message.seq}`
        : e.__typename === 'MemberEvent'
          ? `${e.action} ${e.user.id === dave.id ? 'dave' : e.user.id === alice.id ? 'alice' : e.user.id}${e.newOwner ? ` owner ${e.newOwner.id === bob.id ? 'bob' : e.newOwner.id}` : ''}`
          : e.__typename === 'ReadReceipt'
            ? `read ${e.user.id === carol.id ? 'carol' : e.user.id} ${e.lastReadSeq}`
            : `renamed ${e.title}`,
    );
    expect(summary).toEqual(['message 1', 'JOINED dave', 'renamed Renamed', 'read carol 1', 'LEFT alice owner bob']);
    // Dave joined caught up: his read position is the last seq at his join.
    expect(events.find((e) => e.__typename === 'MemberEvent' && e.action === 'JOINED').joinedAtSeq).toBe(1);
  });
});

describe.each(TRANSPORTS)('the events subscription, over %s', (transport) => {
  it('continues from the catch-up cursor live, with every kind of event, each once and in order', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await group(alice, [bob]);
    await send(alice, c, 'before');
    const { cursor } = await catchUp(bob, c, 0);
    const sub = bob.subscribeVia(transport, EVENTS, { cursors: [{ conversationId: c, afterEventSeq: cursor }] });
    await server.live(1);
    await server.listening(bob.id);
    await send(alice, c, 'live');
    await edit(alice, c, 2, 'live, edited');
    await react(alice, c, 2, '❤️');
    await send(alice, c, 'in thread', { threadRootSeq: 2 });
    await bob.ok('mutation($c: ID!) { markRead(conversationId: $c, seq: 3) { id } }', { c });
    await alice.ok('mutation($c: ID!) { renameConversation(conversationId: $c, title: "Live") { id } }', { c });
    await del(alice, c, 1);
    await sub.until((s) => s.data.some((d) => d.events.__typename === 'MessageEvent' && d.events.action === 'DELETED'), 10_000, 'the deletion');
    const events = sub.data.map((d) => d.events);
    expect(events.map((e) => e.eventSeq)).toEqual(Array.from({ length: events.length }, (_, i) => cursor + 1 + i));
    expect(events.map((e) => (e.__typename === 'MessageEvent' ? e.action : e.__typename))).toEqual([
      'SENT',
      'EDITED',
      'REACTION_ADDED',
      'SENT',
      'ReadReceipt',
      'ConversationRenamed',
      'DELETED',
    ]);
    expect(events[2]).toMatchObject({ reaction: '❤️', actor: { id: alice.id }, message: { reactions: [{ reaction: '❤️', count: 1 }] } });
    expect(events[3]).toMatchObject({ message: { seq: 3 }, threadRoot: { seq: 2, threadReplyCount: 1 } });
  });

  it('refuses a cursor beyond the log instead of skipping what the client never had', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await dm(alice, bob);
    await send(alice, c, 'one');
    const sub = bob.subscribeVia(transport, EVENTS, { cursors: [{ conversationId: c, afterEventSeq: 5 }] });
    await sub.until((s) => s.ended || s.results.length > 0, 10_000, 'an answer');
    expect(sub.errorCode).toBe('BAD_USER_INPUT');
  });

  it('delivers an event whose announcement was lost, though nothing follows it', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await dm(alice, bob);
    await send(alice, c, 'original');
    const sub = bob.subscribeVia(transport, EVENTS, { cursors: [{ conversationId: c, afterEventSeq: 0 }] });
    await sub.count(1);
    // What editMessage commits, without its announcement.
    await db.query(
      `WITH e AS (UPDATE conversations SET last_event_seq = last_event_seq + 1 WHERE id = $1 RETURNING last_event_seq)
       UPDATE messages SET body = 'quietly edited', edited_at = now(), event_seq = (SELECT last_event_seq FROM e) WHERE conversation_id = $1 AND seq = 1`,
      [c],
    );
    await sub.count(2, 10_000);
    expect(sub.data[1].events).toMatchObject({ eventSeq: 2, action: 'UPDATED', catchUp: true, message: { body: 'quietly edited' } });
  });
});

describe('write limits', () => {
  it('counts edits, deletions and reactions against the same budget as sends', async () => {
    const limited = await TestServer.start({ DATABASE_URL: db.url, SEND_RATE_PER_SECOND: '1', SEND_BURST: '3' });
    try {
      const [alice, bob] = [await limited.user(uid('alice'), 'alice'), await limited.user(uid('bob'), 'bob')];
      const c = await dm(alice, bob);
      await send(alice, c, 'one'); // 1
      await edit(alice, c, 1, 'one, edited'); // 2
      await react(alice, c, 1, '👍'); // 3
      const refused = await del(alice, c, 1);
      expect(code(refused)).toBe('RATE_LIMITED');
      expect((refused.errors?.[0]?.extensions as { retryAfterMs?: number }).retryAfterMs).toBeGreaterThan(0);
      const stored = await db.query('SELECT deleted_at FROM messages WHERE conversation_id = $1', [c]);
      expect(stored[0]!.deleted_at).toBeNull();
    } finally {
      await limited.stop();
    }
  });
});
