import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { settle, TestServer, TRANSPORTS, uid, type TestUser } from './support/server.js';

let db: TestDatabase;
let server: TestServer;
const users: TestUser[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
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

const MESSAGE_ADDED = `subscription($c: ID!, $after: Int) {
  messageAdded(conversationId: $c, afterSeq: $after) { id seq body conversationId sender { id name } createdAt }
}`;
const INBOX = `subscription($cursors: [ConversationCursor!]) {
  inbox(cursors: $cursors) {
    __typename
    ... on Message { seq body conversationId }
    ... on ConversationJoined { conversationId conversation { title memberCount } }
    ... on ConversationLeft { conversationId reason }
  }
}`;
const SEND = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq } }';

async function send(u: TestUser, c: string, body: string): Promise<number> {
  return (await u.ok(SEND, { c, b: body, m: uid('m') })).sendMessage.seq;
}
async function dm(a: TestUser, b: TestUser): Promise<string> {
  return (await a.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: b.id })).startDirectConversation.id;
}
async function group(owner: TestUser, members: TestUser[], title = 'g'): Promise<string> {
  return (await owner.ok('mutation($t: String!, $m: [ID!]!) { createGroup(title: $t, memberIds: $m) { id } }', { t: title, m: members.map((m) => m.id) })).createGroup.id;
}
const seqs = (data: any[]) => data.map((d) => d.messageAdded.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

// Every subscription behaviour holds over each transport (as graphql-ws runs one
// suite over every server adapter): WebSocket and Server-Sent Events.
describe.each(TRANSPORTS)('over %s', (transport) => {
  describe('messageAdded', () => {
    it('delivers messages live, in order, with the full payload', async () => {
      const [alice, bob] = [await user('alice'), await user('bob')];
      const c = await dm(alice, bob);
      const live = server.app.realtime.hub.stats().live;
      const sub = bob.subscribeVia(transport, MESSAGE_ADDED, { c });
      await server.live(live + 1);
      for (let i = 1; i <= 3; i++) await send(alice, c, `hello ${i}`);
      await sub.count(3);
      expect(seqs(sub.data)).toEqual([1, 2, 3]);
      expect(sub.data[0].messageAdded).toMatchObject({ seq: 1, body: 'hello 1', conversationId: c, sender: { id: alice.id, name: 'alice' } });
      expect(new Date(sub.data[0].messageAdded.createdAt).getTime()).toBeGreaterThan(Date.now() - 60_000);
    });

    it('replays what is stored after the cursor, then continues live', async () => {
      const [alice, bob] = [await user('alice'), await user('bob')];
      const c = await dm(alice, bob);
      for (let i = 1; i <= 5; i++) await send(alice, c, `m${i}`);
      const sub = bob.subscribeVia(transport, MESSAGE_ADDED, { c, after: 2 });
      await sub.count(3);
      await send(bob, c, 'm6');
      await send(alice, c, 'm7');
      await sub.count(5);
      await settle(200);
      expect(seqs(sub.data)).toEqual([3, 4, 5, 6, 7]);
      expect(sub.data.map((d) => d.messageAdded.body)).toEqual(['m3', 'm4', 'm5', 'm6', 'm7']);
    });

    it('resumes from an old cursor while new messages keep arriving: every seq once, in order', async () => {
      const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
      const c = await group(alice, [bob, carol]);
      for (let i = 1; i <= 250; i++) await send(i % 2 ? alice : carol, c, `old ${i}`);
      // Keep sending while the subscriber replays 250 stored messages (more than one page).
      const sending = (async () => {
        for (let i = 1; i <= 60; i++) await send(i % 2 ? alice : carol, c, `new ${i}`);
      })();
      const sub = bob.subscribeVia(transport, MESSAGE_ADDED, { c, after: 0 });
      await sending;
      await sub.count(310, 20_000);
      await settle(200);
      expect(seqs(sub.data)).toEqual(range(1, 310));
    });

    it('orders racing senders: each seq exactly once, in order, for every subscriber', async () => {
      const [alice, bob, carol, dave] = [await user('alice'), await user('bob'), await user('carol'), await user('dave')];
      const c = await group(alice, [bob, carol, dave]);
      const live = server.app.realtime.hub.stats().live;
      const subs = [dave.subscribeVia(transport, MESSAGE_ADDED, { c }), dave.subscribeVia(transport, MESSAGE_ADDED, { c }), bob.subscribeVia(transport, MESSAGE_ADDED, { c })];
      await server.live(live + 3);
      await Promise.all(
        [alice, bob, carol].map(async (sender) => {
          for (let i = 0; i < 30; i++) await send(sender, c, `${sender.id} ${i}`);
        }),
      );
      for (const sub of subs) {
        await sub.count(90);
        expect(seqs(sub.data)).toEqual(range(1, 90));
      }
    });

    it('fills the gap when a committed message was never published', async () => {
      const [alice, bob] = [await user('alice'), await user('bob')];
      const c = await dm(alice, bob);
      const sub = bob.subscribeVia(transport, MESSAGE_ADDED, { c, after: 0 });
      await send(alice, c, 'one');
      await sub.count(1);
      // A send that committed but whose publish was lost (an instance crashed
      // between commit and publish, or Redis dropped it): only the database has it.
      await db.query(
        `WITH conv AS (UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq)
         INSERT INTO messages (conversation_id, seq, id, sender_id, body, client_message_id)
         SELECT $1, last_seq, gen_random_uuid(), $2, 'lost in transit', 'lost-1' FROM conv`,
        [c, alice.id],
      );
      await send(alice, c, 'three');
      await sub.count(3);
      expect(sub.data.map((d) => [d.messageAdded.seq, d.messageAdded.body])).toEqual([
        [1, 'one'],
        [2, 'lost in transit'],
        [3, 'three'],
      ]);
    });

    it('gives different selections their own payloads, and identical ones identical payloads', async () => {
      const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
      const c = await group(alice, [bob, carol]);
      const full = bob.subscribeVia(transport, 'subscription($c: ID!) { messageAdded(conversationId: $c, afterSeq: 0) { seq body } }', { c });
      const lean = carol.subscribeVia(transport, 'subscription($c: ID!) { messageAdded(conversationId: $c, afterSeq: 0) { seq } }', { c });
      const aliased = carol.subscribeVia(transport, 'subscription($c: ID!, $b: Boolean!) { m: messageAdded(conversationId: $c, afterSeq: 0) { seq text: body @include(if: $b) } }', { c, b: false });
      const same = bob.subscribeVia(transport, 'subscription($c: ID!) { messageAdded(conversationId: $c, afterSeq: 0) { seq body } }', { c });
      await send(alice, c, 'shape');
      await Promise.all([full.count(1), lean.count(1), aliased.count(1), same.count(1)]);
      expect(full.results[0]).toEqual({ data: { messageAdded: { seq: 1, body: 'shape' } } });
      expect(lean.results[0]).toEqual({ data: { messageAdded: { seq: 1 } } });
      expect(aliased.results[0]).toEqual({ data: { m: { seq: 1 } } });
      expect(same.results[0]).toEqual(full.results[0]);
    });

    it('refuses non-members, unknown conversations and bad cursors with typed errors', async () => {
      const [alice, bob, eve] = [await user('alice'), await user('bob'), await user('eve')];
      const c = await dm(alice, bob);
      await send(alice, c, 'secret');
      const cases: [TestUser, Record<string, unknown>, string][] = [
        [eve, { c, after: 0 }, 'FORBIDDEN'],
        [alice, { c: '4a3b2c1d-0000-4000-8000-000000000000' }, 'NOT_FOUND'],
        [alice, { c, after: -1 }, 'BAD_USER_INPUT'],
        [alice, { c, after: 2 }, 'BAD_USER_INPUT'],
      ];
      for (const [who, variables, code] of cases) {
        const sub = who.subscribeVia(transport, MESSAGE_ADDED, variables);
        await sub.until((s) => s.results.length > 0 || s.error !== undefined || s.completed, 5000, code);
        const errors = (sub.results[0]?.errors ?? (sub.error as any)) as any[];
        expect(errors?.[0]?.extensions?.code).toBe(code);
        expect(sub.results.every((r) => !r.data)).toBe(true);
      }
    });

    it('authorizes subscription starts that arrive together (checked in one statement per conversation): members in, others out', async () => {
      const members = await Promise.all(Array.from({ length: 12 }, (_, i) => user(`member${i}`)));
      const [owner, ...rest] = members;
      const [eve, dan] = [await user('eve'), await user('dan')];
      const g = await group(owner!, rest, 'burst');
      const other = await dm(owner!, dan);
      await send(owner!, g, 'hello group');
      await send(dan, other, 'hello owner');
      // All at once: the members of g, an outsider of g, dan and the owner on the other conversation, and an unknown one.
      const subs = [
        ...members.map((m) => [m.subscribeVia(transport, MESSAGE_ADDED, { c: g, after: 0 }), 'hello group'] as const),
        [eve.subscribeVia(transport, MESSAGE_ADDED, { c: g, after: 0 }), 'FORBIDDEN'] as const,
        [eve.subscribeVia(transport, MESSAGE_ADDED, { c: other, after: 0 }), 'FORBIDDEN'] as const,
        [dan.subscribeVia(transport, MESSAGE_ADDED, { c: other, after: 0 }), 'hello owner'] as const,
        [owner!.subscribeVia(transport, MESSAGE_ADDED, { c: other, after: 0 }), 'hello owner'] as const,
        [dan.subscribeVia(transport, MESSAGE_ADDED, { c: '4a3b2c1d-0000-4000-8000-00000000000b', after: 0 }), 'NOT_FOUND'] as const,
      ];
      for (const [sub, expected] of subs) {
        await sub.until((s) => s.results.length > 0 || s.error !== undefined || s.completed, 5000, expected);
        const errors = (sub.results[0]?.errors ?? (sub.error as any)) as any[] | undefined;
        if (expected === 'FORBIDDEN' || expected === 'NOT_FOUND') expect(errors?.[0]?.extensions?.code).toBe(expected);
        else expect([errors, sub.data.map((d) => d.messageAdded.body)]).toEqual([undefined, [expected]]);
      }
    });

    it('stops a removed member at once, with FORBIDDEN', async () => {
      const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
      const c = await group(alice, [bob, carol]);
      const sub = carol.subscribeVia(transport, MESSAGE_ADDED, { c, after: 0 });
      await send(alice, c, 'before');
      await sub.count(1);
      await alice.ok('mutation($c: ID!, $u: ID!) { removeMember(conversationId: $c, userId: $u) { id } }', { c, u: carol.id });
      await sub.until((s) => s.error !== undefined || s.completed, 5000, 'the end');
      await send(alice, c, 'after');
      await settle(300);
      expect(sub.data.map((d) => d?.messageAdded?.body).filter(Boolean)).toEqual(['before']);
      const error = (sub.error as any[])?.[0] ?? sub.results.at(-1)?.errors?.[0];
      expect(error?.extensions?.code).toBe('FORBIDDEN');
    });
  });

  describe('inbox', () => {
    it('delivers every conversation on one subscription, including ones joined later', async () => {
      const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
      const direct = await dm(alice, bob);
      const sub = alice.subscribeVia(transport, INBOX);
      await server.live(1);
      await server.listening(alice.id);
      await send(bob, direct, 'dm 1');
      await sub.until((s) => s.data.some((d) => d.inbox.body === 'dm 1'), 5000, 'dm 1');
      // Carol makes a group with Alice after Alice subscribed.
      const g = await group(carol, [alice], 'Later');
      await send(carol, g, 'group 1');
      await send(bob, direct, 'dm 2');
      await send(carol, g, 'group 2');
      await sub.until((s) => s.data.filter((d) => d.inbox.__typename === 'Message').length >= 4, 5000, 'four messages');
      const events = sub.data.map((d) => d.inbox);
      const joined = events.findIndex((e) => e.__typename === 'ConversationJoined' && e.conversationId === g);
      expect(joined).toBeGreaterThanOrEqual(0);
      expect(events[joined].conversation).toEqual({ title: 'Later', memberCount: 2 });
      const firstGroupMessage = events.findIndex((e) => e.conversationId === g && e.__typename === 'Message');
      expect(joined).toBeLessThan(firstGroupMessage);
      const bodies = (conversation: string) => events.filter((e) => e.__typename === 'Message' && e.conversationId === conversation).map((e) => e.seq);
      expect(bodies(direct)).toEqual([1, 2]);
      expect(bodies(g)).toEqual([1, 2]);
    });

    it('tells exactly where a joined conversation starts (afterSeq), and announces unknown conversations when asked', async () => {
      const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
      const known = await dm(alice, bob);
      const unknown = await dm(alice, carol);
      await send(bob, known, 'k1');
      for (let i = 1; i <= 3; i++) await send(carol, unknown, `u${i}`);
      const query = `subscription($cursors: [ConversationCursor!], $announce: Boolean) {
        inbox(cursors: $cursors, announce: $announce) {
          __typename
          ... on Message { conversationId seq }
          ... on ConversationJoined { conversationId afterSeq }
        }
      }`;
      const sub = alice.subscribeVia(transport, query, { cursors: [{ conversationId: known, afterSeq: 0 }], announce: true });
      await sub.count(2);
      // The conversation without a cursor is announced with the seq the stream starts after; the known one replays.
      expect(sub.data.map((d) => d.inbox)).toEqual([
        { __typename: 'ConversationJoined', conversationId: unknown, afterSeq: 3 },
        { __typename: 'Message', conversationId: known, seq: 1 },
      ]);
      // A live join: a group with history gains alice; afterSeq is the seq at the join, not later.
      const g = await group(bob, [carol], 'history');
      for (let i = 0; i < 4; i++) await send(bob, g, `before ${i}`);
      await bob.ok('mutation($c: ID!, $u: [ID!]!) { addMembers(conversationId: $c, userIds: $u) { id } }', { c: g, u: [alice.id] });
      await send(carol, g, 'after the join');
      await send(carol, unknown, 'u4');
      await sub.until((s) => s.data.some((d) => d.inbox.conversationId === g && d.inbox.seq === 5) && s.data.some((d) => d.inbox.seq === 4), 5000, 'live messages');
      const events = sub.data.map((d) => d.inbox);
      expect(events).toContainEqual({ __typename: 'ConversationJoined', conversationId: g, afterSeq: 4 });
      expect(events.filter((e) => e.conversationId === g && e.__typename === 'Message').map((e) => e.seq)).toEqual([5]);
      expect(events.filter((e) => e.conversationId === unknown && e.__typename === 'Message').map((e) => e.seq)).toEqual([4]);
    });

    it('starts from the inbox version read at sign-in; when it moved before the subscription started, the check resyncs once and repeats nothing', async () => {
      // A server of its own whose periodic check does not run by itself: the test runs it.
      const quiet = await TestServer.start({ DATABASE_URL: db.url, DELIVERY_CHECK_MS: '60000' });
      try {
        // Alice's row is written at her first request, which returns her inbox version (0).
        const [alice, bob] = [await quiet.user(uid('alice'), 'alice'), await quiet.user(uid('bob'), 'bob')];
        users.push(alice, bob);
        // The conversation moves it to 1 before she subscribes: the version from sign-in is stale.
        const direct = await dm(alice, bob);
        await send(bob, direct, 'before');
        const sub = alice.subscribeVia(transport, INBOX, { cursors: [{ conversationId: direct, afterSeq: 0 }] });
        await quiet.listening(alice.id);
        const hub = quiet.app.realtime.hub;
        expect(hub.inboxVersion(alice.id)).toBe(0); // taken from sign-in: no read on the subscription start
        await sub.until((s) => s.data.length >= 1, 5000, 'the replayed message');
        await hub.check();
        expect(hub.inboxVersion(alice.id)).toBe(1);
        await send(bob, direct, 'after');
        await sub.until((s) => s.data.length >= 2, 5000, 'the live message');
        await settle();
        expect(sub.data.map((d) => d.inbox)).toEqual([
          { __typename: 'Message', conversationId: direct, seq: 1, body: 'before' },
          { __typename: 'Message', conversationId: direct, seq: 2, body: 'after' },
        ]);
        expect(sub.error).toBeUndefined();
        await alice.closeSockets();
      } finally {
        await quiet.stop();
      }
    });

    it('resumes each conversation from its own cursor', async () => {
      const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
      const one = await dm(alice, bob);
      const two = await dm(alice, carol);
      for (let i = 0; i < 4; i++) await send(bob, one, `one ${i}`);
      for (let i = 0; i < 3; i++) await send(carol, two, `two ${i}`);
      const sub = alice.subscribeVia(transport, INBOX, { cursors: [{ conversationId: one, afterSeq: 2 }, { conversationId: two, afterSeq: 0 }] });
      await sub.count(5);
      await send(bob, one, 'one live');
      await sub.count(6);
      const of = (c: string) => sub.data.filter((d) => d.inbox.conversationId === c).map((d) => d.inbox.seq);
      expect(of(one)).toEqual([3, 4, 5]);
      expect(of(two)).toEqual([1, 2, 3]);
    });

    it('announces leaving and removal, and delivers nothing from that conversation afterwards', async () => {
      const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
      const g = await group(alice, [bob, carol]);
      const sub = carol.subscribeVia(transport, INBOX, { cursors: [{ conversationId: g, afterSeq: 0 }] });
      await send(alice, g, 'hi all');
      await sub.count(1);
      await alice.ok('mutation($c: ID!, $u: ID!) { removeMember(conversationId: $c, userId: $u) { id } }', { c: g, u: carol.id });
      await sub.until((s) => s.data.some((d) => d.inbox.__typename === 'ConversationLeft'), 5000, 'ConversationLeft');
      await send(alice, g, 'carol is gone');
      await settle(300);
      const events = sub.data.map((d) => d.inbox);
      expect(events.map((e) => e.__typename)).toEqual(['Message', 'ConversationLeft']);
      expect(events[1]).toEqual({ __typename: 'ConversationLeft', conversationId: g, reason: 'REMOVED' });
    });
  });
});

describe('WebSocket protocol', () => {
  it('refuses a connection without a valid token with 4403', async () => {
    for (const payload of [{}, { authorization: 'Bearer nonsense' }]) {
      const code = await new Promise<number>((resolve) => {
        const socket = new WebSocket(server.wsUrl, 'graphql-transport-ws');
        socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload })));
        socket.on('close', (closeCode) => resolve(closeCode));
      });
      expect(code).toBe(4403);
    }
  });

  it('closes a socket whose token expires, with 4403', async () => {
    const eve = await server.user(uid('eve'), 'Eve', { expiresIn: '2s' });
    const code = await new Promise<number>((resolve) => {
      const socket = new WebSocket(server.wsUrl, 'graphql-transport-ws');
      socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${eve.token}` } })));
      socket.on('close', (closeCode) => resolve(closeCode));
    });
    expect(code).toBe(4403);
  }, 30_000);
});
