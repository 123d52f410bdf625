import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { TestServer, uid } from '../../test/support/server.js';
import { ChatError, documents, type ChatClient, type ChatEvent, type Cursors, type Message } from '../src/index.js';
import { range, session, waitFor } from './helpers.js';

let db: TestDatabase;
let server: TestServer;
const sessions: ChatClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
});

afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  await server?.stop();
  await db?.drop();
});

async function users<const Names extends string[]>(...names: Names): Promise<{ [K in keyof Names]: string }> {
  const ids = names.map(uid) as { [K in keyof Names]: string };
  for (const id of ids) await server.user(id);
  return ids;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ChatError);
  return (error as ChatError).code;
}

describe('typed helpers', () => {
  it('cover conversations, members, history and read positions', async () => {
    const [aliceId, bobId, carolId] = await users('alice', 'bob', 'carol');
    const alice = await session(server, aliceId, sessions);
    const bob = await session(server, bobId, sessions);

    // Names come from the tokens' `name` claim (the test tokens use the id).
    expect(await alice.chat.viewer()).toEqual({ id: aliceId, name: aliceId });
    expect(await alice.chat.user(bobId)).toEqual({ id: bobId, name: bobId });
    const dm = await alice.chat.startDirectConversation(bobId);
    expect(dm).toMatchObject({ kind: 'DIRECT', title: null, lastSeq: 0, memberCount: 2, viewerRole: 'MEMBER' });
    expect((await alice.chat.startDirectConversation(bobId)).id).toBe(dm.id);
    const group = await alice.chat.createGroup('Team', [bobId]);
    expect(group).toMatchObject({ kind: 'GROUP', title: 'Team', memberCount: 2, viewerRole: 'OWNER' });
    expect((await alice.chat.addMembers(group.id, [carolId])).memberCount).toBe(3);

    for (let i = 1; i <= 7; i++) await alice.chat.send(group.id, `g${i}`);
    const page1 = await bob.chat.conversations({ first: 1 });
    expect(page1.conversations.map((c) => c.id)).toEqual([group.id]);
    expect(page1.hasNextPage).toBe(true);
    const page2 = await bob.chat.conversations({ first: 1, after: page1.endCursor });
    expect(page2.conversations.map((c) => c.id)).toEqual([dm.id]);
    expect(page2.hasNextPage).toBe(false);
    expect(page1.conversations[0]).toMatchObject({ lastSeq: 7, unreadCount: 7, lastMessage: { seq: 7, body: 'g7', sender: { id: aliceId, name: aliceId } } });

    const members = await bob.chat.members(group.id);
    expect(members.members.map((m) => [m.user.id, m.role]).sort()).toEqual([[aliceId, 'OWNER'], [bobId, 'MEMBER'], [carolId, 'MEMBER']].sort());

    const newest = await bob.chat.messages(group.id, { last: 3 });
    expect([newest.messages.map((m) => m.seq), newest.hasMore]).toEqual([[5, 6, 7], true]);
    const older = await bob.chat.messages(group.id, { before: 5, last: 10 });
    expect([older.messages.map((m) => m.seq), older.hasMore]).toEqual([[1, 2, 3, 4], false]);
    const since = await bob.chat.messagesSince(group.id, 2, { first: 3 });
    expect(since).toMatchObject({ hasMore: true, nextAfterSeq: 5, lastSeq: 7 });
    expect(since.messages.map((m) => m.body)).toEqual(['g3', 'g4', 'g5']);

    expect((await bob.chat.markRead(group.id, 5)).unreadCount).toBe(2);
    expect((await bob.chat.conversation(group.id)).lastReadSeq).toBe(5);
    expect(await bob.chat.setTyping(group.id)).toBe(true);
    expect(await bob.chat.leaveConversation(group.id)).toBe(group.id);
    expect((await alice.chat.removeMember(group.id, carolId)).memberCount).toBe(1);
  });

  it('reject with the server’s error codes', async () => {
    const [aliceId, bobId, eveId] = await users('alice', 'bob', 'eve');
    const alice = await session(server, aliceId, sessions);
    const eve = await session(server, eveId, sessions);
    const dm = await alice.chat.startDirectConversation(bobId);
    expect(await codeOf(alice.chat.conversation('4a3b2c1d-0000-4000-8000-000000000000'))).toBe('NOT_FOUND');
    expect(await codeOf(eve.chat.messages(dm.id))).toBe('FORBIDDEN');
    expect(await codeOf(alice.chat.messagesSince(dm.id, 5))).toBe('BAD_USER_INPUT');
    const error = await alice.chat.createGroup('  ', []).then(
      () => undefined,
      (e: ChatError) => e,
    );
    expect([error?.code, error?.field]).toEqual(['BAD_USER_INPUT', 'title']);
    expect(await codeOf(alice.chat.removeMember(dm.id, bobId))).toBe('BAD_USER_INPUT');
  });

  it('run custom typed documents with request()', async () => {
    const [aliceId] = await users('alice');
    const alice = await session(server, aliceId, sessions);
    const data = await alice.chat.request(documents.ViewerDocument, {});
    expect(data.viewer.id).toBe(aliceId);
  });
});

describe('listening', () => {
  it('delivers through an async iterator, filtered by conversation, and ends it on close', async () => {
    const [aliceId, bobId, carolId] = await users('alice', 'bob', 'carol');
    const alice = await session(server, aliceId, sessions);
    const bob = await session(server, bobId, sessions);
    const one = (await alice.chat.startDirectConversation(bobId)).id;
    const two = (await alice.chat.createGroup('two', [bobId, carolId])).id;
    await bob.chat.ready();
    await server.listening(bobId);

    const collected: Message[] = [];
    const consuming = (async () => {
      for await (const message of bob.chat.incoming({ conversationId: two })) {
        collected.push(message);
        // A slow consumer still sees everything, in order.
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const events: ChatEvent[] = [];
    const eventsDone = (async () => {
      for await (const event of bob.chat.events()) events.push(event);
    })();
    for (let i = 1; i <= 5; i++) {
      await alice.chat.send(one, `one ${i}`);
      await alice.chat.send(two, `two ${i}`);
    }
    await waitFor(() => collected.length === 5, 'five messages of two');
    await bob.until(one, 5);
    await bob.chat.close();
    await Promise.all([consuming, eventsDone]);
    expect(collected.map((m) => [m.conversationId, m.seq])).toEqual(range(1, 5).map((seq) => [two, seq]));
    expect(events.filter((e) => e.type === 'message')).toHaveLength(10);
    expect(bob.chat.status).toBe('closed');
    expect(await codeOf(bob.chat.ready())).toBe('CLOSED');
  });

  it('stops an iterator on break and keeps delivering to other listeners when one throws', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const alice = await session(server, aliceId, sessions);
    const bob = await session(server, bobId, sessions);
    const c = (await alice.chat.startDirectConversation(bobId)).id;
    await bob.chat.ready();
    await server.listening(bobId);
    const off = bob.chat.onMessage(() => {
      throw new Error('a buggy listener');
    });
    const first = (async () => {
      for await (const message of bob.chat.incoming()) return message.seq;
      return undefined;
    })();
    for (let i = 1; i <= 3; i++) await alice.chat.send(c, `m${i}`);
    await bob.until(c, 3);
    expect(await first).toBe(1);
    expect(bob.seqs(c)).toEqual([1, 2, 3]);
    expect(bob.errors.some((e) => /buggy listener/.test(e.message))).toBe(true);
    off();
  });

  it('gives two sessions of one user (two tabs, two devices) every message, their own included', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const phone = await session(server, aliceId, sessions);
    const laptop = await session(server, aliceId, sessions);
    const bob = await session(server, bobId, sessions);
    const c = (await bob.chat.startDirectConversation(aliceId)).id;
    await Promise.all([phone.chat.ready(), laptop.chat.ready()]);
    await bob.chat.send(c, 'hi alice');
    // Both sessions know the conversation before they send in it: a session that first hears of a
    // conversation from its own send's answer follows it from there (earlier messages are history,
    // client/src/sequencer.ts acceptSent), which a loaded machine made happen here.
    await Promise.all([phone.until(c, 1), laptop.until(c, 1)]);
    await phone.chat.send(c, 'from my phone');
    await laptop.chat.send(c, 'from my laptop');
    await Promise.all([phone.until(c, 3), laptop.until(c, 3)]);
    const bodies = ['hi alice', 'from my phone', 'from my laptop'];
    expect(phone.messages.map((m) => m.body)).toEqual(bodies);
    expect(laptop.messages.map((m) => m.body)).toEqual(bodies);
  });

  it('reports cursor changes in batches, as plain JSON', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const alice = await session(server, aliceId, sessions);
    const bob = await session(server, bobId, sessions);
    const c = (await alice.chat.startDirectConversation(bobId)).id;
    await bob.chat.ready();
    await server.listening(bobId);
    // Bob's session learns of the conversation (cursor 0) first, so that only the messages' changes are counted.
    await waitFor(() => c in bob.chat.getCursors(), 'the new conversation in the cursors');
    const snapshots: string[] = [];
    bob.chat.onCursorsChange((cursors) => snapshots.push(JSON.stringify(cursors)));
    await Promise.all(range(1, 20).map((i) => alice.chat.send(c, `m${i}`)));
    await bob.until(c, 20);
    await waitFor(() => (JSON.parse(snapshots.at(-1) ?? '{}') as Cursors)[c]?.afterSeq === 20, 'the last snapshot');
    expect(snapshots.length).toBeLessThanOrEqual(20);
    // The event cursor: everything of the conversation's log is applied (the sends are its last events).
    const { lastEventSeq } = await alice.chat.conversation(c);
    expect(bob.chat.getCursors()).toEqual({ [c]: { afterEventSeq: lastEventSeq, afterSeq: 20 } });
  });
});
